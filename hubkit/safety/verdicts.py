"""The op scan for consumers, remembered per content digest.

`hubkit.load`, `hubkit.KerasLayer` and `hubkit finetune` call `ensure_safe`
before `tf.saved_model.load`. The verdict depends only on the bytes of the
SavedModel proto, the allow-list and the ops the caller allowed, so it is
kept under the digest of those: a second load of the same module re-hashes
one small file and scans nothing.
"""

import os
import threading
from typing import Dict, Sequence, Tuple

from hubkit.safety import ops
from hubkit.utils.digest import sha256_file

_VERDICTS: Dict[Tuple[str, str, Tuple[str, ...]], str] = {}
_LOCK = threading.Lock()


def ensure_safe(module_dir: str, allow_ops: Sequence[str] = ()) -> None:
  """Refuses a module whose ops are not all allowed where they sit.

  Args:
    module_dir: the SavedModel directory about to be loaded.
    allow_ops: op types the caller reviewed and allows.

  Raises:
    ops.UnsafeModuleError: the module holds an op that is not allowed (the
      message names it, where it sits and the fix), or does not parse.
  """
  key = (
    sha256_file(ops.saved_model_proto_path(module_dir)),
    ops.allow_list_digest(),
    tuple(sorted(set(allow_ops))),
  )
  with _LOCK:
    verdict = _VERDICTS.get(key)
  if verdict is None:
    findings, _, _ = ops.scan(module_dir, allow_ops)
    verdict = ops.describe(findings) if findings else ""
    with _LOCK:
      _VERDICTS[key] = verdict
  if verdict:
    raise ops.UnsafeModuleError(
      f"refusing to load {os.path.basename(module_dir)}: {verdict} "
      "To load it anyway, pass safe_mode=False (--unsafe on the "
      "command line)."
    )
