"""Signed modules, with OpenSSF model-signing (the format kagglehub uploads use).

`hubkit publish --signing_key=KEY.pem` signs every file of the module with an
elliptic-curve private key; the signature (a Sigstore bundle) travels inside
the archive as `assets.extra/model.sig`, which the signature itself leaves
out. Where trusted public keys are configured (`HUBKIT_TRUSTED_KEYS`, PEM
paths separated by `:`, or a `trusted_keys` argument), `hubkit.resolve`,
`hubkit.load`, `hubkit.KerasLayer` and `hubkit check` refuse a module that is
unsigned, signed by another key or changed after signing.

Example:

  from hubkit.safety import signing
  signature = signing.sign_module("/tmp/mlp", "key.pem", "/tmp/mlp.sig")
  signing.verify_module(extracted_dir, ["pub.pem"])  # the key that signed it
"""

import hashlib
import os
from typing import List, Optional, Sequence

from hubkit.errors import HubkitError, UsageError

SIGNATURE_RELPATH = "assets.extra/model.sig"
TRUSTED_KEYS_ENV = "HUBKIT_TRUSTED_KEYS"


class SignatureError(HubkitError):
  """A module is unsigned, signed by an untrusted key, or changed since."""


def _libraries():
  try:
    from model_signing import hashing
    from model_signing import signing
    from model_signing import verifying
  except ImportError as e:
    raise UsageError("signing needs OpenSSF model-signing: pip install 'hubkit[signing]'.") from e
  return hashing, signing, verifying


def _hashing_config(hashing, module_dir: str):
  # The signature file is not part of what it signs.
  return hashing.Config().set_ignored_paths(
    paths=[os.path.join(module_dir, SIGNATURE_RELPATH)], ignore_git_paths=False
  )


def trusted_keys(explicit: Optional[Sequence[str]] = None) -> List[str]:
  """The public keys to verify with: `explicit`, else $HUBKIT_TRUSTED_KEYS.

  Raises:
    UsageError: a key file that does not exist.
  """
  keys = (
    list(explicit)
    if explicit is not None
    else [k for k in os.environ.get(TRUSTED_KEYS_ENV, "").split(os.pathsep) if k]
  )
  missing = [k for k in keys if not os.path.isfile(k)]
  if missing:
    raise UsageError(
      f"trusted key {missing[0]} does not exist; fix `trusted_keys` or ${TRUSTED_KEYS_ENV}."
    )
  return keys


def key_fingerprint(public_key: str) -> str:
  """The sha256 of a PEM public key file, as `hubkit verify` names signers."""
  with open(public_key, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


def sign_module(module_dir: str, private_key: str, signature_path: str) -> str:
  """Signs every file of `module_dir` (but an existing signature) into
  `signature_path`.

  Raises:
    UsageError: model-signing missing, or a key it cannot use.
  """
  hashing, signing, _ = _libraries()
  if not os.path.isfile(private_key):
    raise UsageError(f"`signing_key` {private_key} does not exist; pass a PEM private key.")
  try:
    signing.Config().use_elliptic_key_signer(private_key=private_key).set_hashing_config(
      _hashing_config(hashing, module_dir)
    ).sign(module_dir, signature_path)
  except ValueError as e:
    raise UsageError(
      f"cannot sign with {private_key} ({str(e).splitlines()[0][:120]}); pass an "
      "unencrypted elliptic-curve PEM private key."
    ) from e
  return signature_path


def verify_module(module_dir: str, keys: Sequence[str]) -> str:
  """Returns the trusted key that signed `module_dir` as it is now.

  Raises:
    SignatureError: no signature, or none of `keys` verifies the files.
  """
  hashing, _, verifying = _libraries()
  signature = os.path.join(module_dir, SIGNATURE_RELPATH)
  if not os.path.isfile(signature):
    raise SignatureError(
      f"{module_dir} is not signed ({SIGNATURE_RELPATH} is missing) and trusted keys are "
      f"configured; use a module published with --signing_key, or unset ${TRUSTED_KEYS_ENV}."
    )
  reasons = []
  for key in keys:
    try:
      verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(
        _hashing_config(hashing, module_dir)
      ).verify(module_dir, signature)
      return key
    except Exception as e:  # a hostile signature file may fail anywhere in parsing
      reasons.append((str(e).splitlines() or [type(e).__name__])[0][:100])
  raise SignatureError(
    f"the signature of {module_dir} does not verify with any trusted key "
    f"({reasons[0] if reasons else 'no keys'}): the module was changed or signed by someone "
    "else; do not load it."
  )
