"""Kaggle Models interop: a module where `kagglehub` finds it, offline.

tfhub.dev's models now live on Kaggle Models, and users load them with
`kagglehub.model_download("owner/model/framework/variation/version")`, which
returns a local folder from kagglehub's cache when that version is there and
marked complete. `add_to_kagglehub_cache` puts a hubkit module (a directory,
archive or registry URL) into that cache layout:

    $KAGGLEHUB_CACHE/models/<owner>/<model>/<framework>/<variation>/<version>/  (the module)
    $KAGGLEHUB_CACHE/models/<owner>/<model>/<framework>/<variation>/<version>.complete

so that the real kagglehub returns it with no network. The module is
scanned first (a module others will load from the cache must be safe), the
folder is written to a temporary sibling and renamed, and the completion
marker is written last: a kill leaves no version kagglehub would take.

Example:

  from hubkit.registry import kaggle
  kaggle.add_to_kagglehub_cache("/tmp/mlp", "me/mlp/tensorFlow2/default/1")
  # kagglehub.model_download("me/mlp/tensorFlow2/default/1") -> that folder
"""

import filecmp
import os
import re
from typing import Optional, Sequence, Tuple

from hubkit.utils import atomic
from hubkit.module import layout
from hubkit.cache import resolver
from hubkit.errors import UsageError

CACHE_ENV = "KAGGLEHUB_CACHE"
# The framework kagglehub and Kaggle Models use for TF2 SavedModels.
SAVED_MODEL_FRAMEWORK = "tensorFlow2"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def kagglehub_cache_dir() -> str:
  """$KAGGLEHUB_CACHE, or kagglehub's default ~/.cache/kagglehub."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "kagglehub")


def parse_kaggle_handle(handle: str) -> Tuple[str, str, str, str, int]:
  """Splits owner/model/framework/variation/version.

  Raises:
    UsageError: not five safe segments with an integer version >= 1.
  """
  parts = handle.strip("/").split("/")
  if (
    len(parts) != 5
    or not all(_SEGMENT.match(p) and ".." not in p for p in parts)
    or not parts[4].isdigit()
    or int(parts[4]) < 1
  ):
    raise UsageError(
      f"`kaggle_handle` {handle!r} must be owner/model/framework/variation/version, e.g. "
      f"me/digits/{SAVED_MODEL_FRAMEWORK}/default/1."
    )
  return parts[0], parts[1], parts[2], parts[3], int(parts[4])


def _same_files(a: str, b: str) -> bool:
  files = sorted(layout.iter_files(a))
  return files == sorted(layout.iter_files(b)) and all(
    filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False) for f in files
  )


def add_to_kagglehub_cache(
  handle: str,
  kaggle_handle: str,
  cache_dir: Optional[str] = None,
  overwrite: bool = False,
  safe_mode: bool = True,
  allow_ops: Sequence[str] = (),
) -> str:
  """Installs a module as a kagglehub model version, complete and offline.

  Args:
    handle: the module (directory, archive or URL).
    kaggle_handle: owner/model/framework/variation/version for kagglehub.
    cache_dir: kagglehub's cache (default `kagglehub_cache_dir()`).
    overwrite: replace a version already there with other content.
    safe_mode: refuse a module whose ops reach outside the process.
    allow_ops: op types you reviewed and allow beyond the allow-list.

  Returns:
    The folder kagglehub.model_download returns for `kaggle_handle`.

  Raises:
    UsageError: a bad handle, a module failing layout.saved_model, or the
      version already cached with other content and no `overwrite`.
    hubkit.safety.ops.UnsafeModuleError: `safe_mode` refuses the module.
  """
  owner, model, framework, variation, version = parse_kaggle_handle(kaggle_handle)
  base = os.path.join(
    cache_dir or kagglehub_cache_dir(), "models", owner, model, framework, variation
  )
  target = os.path.join(base, str(version))
  marker = os.path.join(base, f"{version}.complete")
  with resolver.local_module(handle, safe_mode=safe_mode, allow_ops=allow_ops) as module_dir:
    from hubkit.registry import pack

    files = pack.check_layout(module_dir)
    if os.path.exists(marker) and os.path.isdir(target):
      if _same_files(module_dir, target):
        return target
      if not overwrite:
        raise UsageError(
          f"{kaggle_handle} is already in kagglehub's cache with other content; use another "
          "version or pass `overwrite`."
        )
    # The marker goes first when replacing and last when adding: kagglehub
    # never takes a version whose folder is being written.
    if os.path.exists(marker):
      os.remove(marker)
    with atomic.atomic_directory(target, overwrite=True) as tmp:
      layout.copy_files(module_dir, tmp, files)
  with atomic.atomic_file(marker, "w") as f:
    f.write("")
  return target
