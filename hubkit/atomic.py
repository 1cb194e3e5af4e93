"""Write directories and files so that readers never see half of them.

Everything hubkit writes goes to a temporary sibling first and is renamed into
place once complete: a crash, a kill or an exception leaves either the old
content or nothing, never a partial module.
"""

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from hubkit.errors import UsageError


def _check_target(path: str, overwrite: bool) -> None:
  if os.path.lexists(path) and not overwrite:
    raise UsageError(f"{path} already exists; choose another path or pass "
                     "overwrite=True (--overwrite on the command line).")
  parent = os.path.dirname(os.path.abspath(path))
  if os.path.exists(parent) and not os.path.isdir(parent):
    raise UsageError(f"cannot write {path}: {parent} is not a directory.")


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool = False) -> Iterator[str]:
  """Yields a temporary sibling directory that becomes `path` on success.

  Args:
    path: the directory to create.
    overwrite: replace an existing `path`. The old directory is only removed
      after the new one is complete.

  Yields:
    The temporary directory to fill. It is renamed to `path` when the block
    exits normally and deleted when it raises.

  Raises:
    UsageError: `path` exists and `overwrite` is False.
  """
  path = os.path.abspath(path)
  _check_target(path, overwrite)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                         dir=parent)
  try:
    yield tmp
    if os.path.lexists(path):
      old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old",
                             dir=parent)
      os.rename(path, os.path.join(old, "content"))
      os.rename(tmp, path)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "wb",
                overwrite: bool = True) -> Iterator[object]:
  """Yields a file object whose content replaces `path` only when complete.

  Args:
    path: the file to write.
    mode: "wb" or "w".
    overwrite: replace an existing file.

  Yields:
    An open file on a temporary sibling; it is renamed over `path` when the
    block exits normally and deleted when it raises.
  """
  path = os.path.abspath(path)
  _check_target(path, overwrite)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                             suffix=".tmp", dir=parent)
  try:
    with os.fdopen(fd, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise
