"""`hubkit.resolve` and `hubkit.load`: from a handle to a module, scanned first.

The counterparts of `tensorflow_hub.resolve` / `tensorflow_hub.load`. A
directory is used where it is; an archive or URL goes through the shared
cache (`hubkit.cache.store.ModuleCache`); every module is op-scanned before it is
loaded unless the caller trusts it. `local_module` gives the checker and
`hubkit info` a folder to read without scanning (they judge the ops
themselves) and without putting a local archive in the cache.
"""

import contextlib
import shutil
from typing import Any, Iterator, Optional, Sequence

from hubkit.cache import archive
from hubkit.cache import store
from hubkit.cache import handles
from hubkit.safety import signing
from hubkit.errors import NotFoundError


def resolve(
  handle: str,
  safe_mode: bool = True,
  allow_ops: Sequence[str] = (),
  trusted_keys: Optional[Sequence[str]] = None,
) -> str:
  """Returns a local SavedModel directory for a path, archive or URL handle,
  using the cache in `$TFHUB_CACHE_DIR` (see `ModuleCache.resolve`).

  Where trusted keys are given (or set in $HUBKIT_TRUSTED_KEYS) the module
  must carry a signature one of them verifies (`hubkit.safety.signing`); otherwise
  hubkit.safety.signing.SignatureError is raised and nothing is loaded."""
  keys = signing.trusted_keys(trusted_keys)
  path = store.ModuleCache().resolve(handle, safe_mode=safe_mode, allow_ops=allow_ops)
  verify_signature(handle, path, keys)
  return path


def verify_signature(handle: str, module_dir: str, keys: Sequence[str]) -> None:
  """Requires, when `keys` is not empty, that one of them verifies the
  module's signature (`hubkit.safety.signing.verify_module`).

  Raises:
    hubkit.safety.signing.SignatureError: none does; a refused archive or URL is
      also dropped from the cache, where nobody should find it again.
  """
  if not keys:
    return
  try:
    signing.verify_module(module_dir, keys)
  except signing.SignatureError:
    if handles.classify(handle)[0] != handles.DIRECTORY:
      with contextlib.suppress(NotFoundError):
        store.ModuleCache().remove(handle)
    raise


def load(
  handle: str,
  safe_mode: bool = True,
  allow_ops: Sequence[str] = (),
  trusted_keys: Optional[Sequence[str]] = None,
  **kwargs,
) -> Any:
  """`tf.saved_model.load(resolve(handle), **kwargs)`, after an op scan.

  Args:
    handle: a directory, archive or http(s) handle.
    safe_mode: scan the module first and refuse one whose ops reach outside
      the process (the verdict is remembered per content digest); pass False
      only for a module you trust.
    allow_ops: op types you reviewed and allow beyond the allow-list.
    trusted_keys: public keys one of which must have signed the module
      (default: $HUBKIT_TRUSTED_KEYS; none: no signature required).
    **kwargs: passed to `tf.saved_model.load` (e.g. `tags`, `options`).

  Raises:
    As `ModuleCache.resolve`: NotFoundError / FetchError / ArchiveError are
    OSErrors and UsageError is a ValueError, as hub callers expect.
  """
  import tensorflow as tf

  return tf.saved_model.load(
    resolve(handle, safe_mode=safe_mode, allow_ops=allow_ops, trusted_keys=trusted_keys), **kwargs
  )


@contextlib.contextmanager
def local_module(
  handle: str, safe_mode: bool = False, allow_ops: Sequence[str] = ()
) -> Iterator[str]:
  """Yields a directory holding the module, without putting a local archive
  in the cache.

  A directory is yielded as it is; a local archive is extracted (bounded)
  into a temporary folder removed afterwards; a URL is fetched into the
  cache. Without `safe_mode` nothing is scanned: for readers that judge the
  module themselves (`check`). With it, the ops are scanned first, for
  readers that go on to load the module (`info`, `diff`, `convert`).

  Args:
    handle: a directory, archive or http(s) handle.
    safe_mode: scan the module's ops and refuse an unsafe one.
    allow_ops: op types you reviewed and allow beyond the allow-list.

  Raises:
    As `handles.classify` and `ModuleCache.resolve`;
    hubkit.safety.ops.UnsafeModuleError when `safe_mode` refuses the module.
  """
  with _local_folder(handle) as module_dir:
    if safe_mode:
      from hubkit.safety import verdicts

      verdicts.ensure_safe(module_dir, allow_ops)
    yield module_dir


@contextlib.contextmanager
def _local_folder(handle: str) -> Iterator[str]:
  kind, where = handles.classify(handle)
  if kind == handles.DIRECTORY:
    yield where
  elif kind == handles.URL:
    yield store.ModuleCache().resolve(where, safe_mode=False)
  else:
    temp = archive.extract_to_temp(where)
    try:
      yield temp
    finally:
      shutil.rmtree(temp, ignore_errors=True)
