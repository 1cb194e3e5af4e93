"""Says who signed a module: which trusted public key verifies its signature.

Exits 0 when one of the trusted keys (--trusted_keys, else
$HUBKIT_TRUSTED_KEYS) verifies every file of the module, 1 when the module is
unsigned, signed by another key or changed since.

Example:
  hubkit verify http://127.0.0.1:8765/me/features/1 --trusted_keys=team.pub.pem
"""

from typing import List

from absl import flags

from hubkit.commands import _common
from hubkit.errors import UsageError

FLAGS = flags.FlagValues()
flags.DEFINE_list(
  "trusted_keys",
  None,
  "PEM public keys to verify with (default: $HUBKIT_TRUSTED_KEYS).",
  flag_values=FLAGS,
)


def main(args: List[str]) -> int:
  handle = _common.one_positional("verify", "module handle", args)
  from hubkit.cache import resolver
  from hubkit.safety import signing

  keys = signing.trusted_keys(FLAGS.trusted_keys)
  if not keys:
    raise UsageError(
      f"no trusted keys: pass --trusted_keys=KEY.pem or set ${signing.TRUSTED_KEYS_ENV}."
    )
  with resolver.local_module(handle) as module_dir:
    key = signing.verify_module(module_dir, keys)
  print(f"{handle}: signed by {key} (sha256 {signing.key_fingerprint(key)}); files unchanged")
  return 0
