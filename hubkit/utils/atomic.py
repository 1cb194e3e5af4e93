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


def _umask() -> int:
  """The process umask, read without changing it where the kernel says it."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def as_if_created(path: str, is_dir: bool) -> None:
  """Gives a temporary file or directory the mode a plain create would have.

  mkstemp/mkdtemp create 0600/0700 entries; an export or archive must be
  readable by whoever the user's umask allows (colleagues, a web server).
  """
  os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


def _check_target(path: str, overwrite: bool, is_dir: bool) -> None:
  if os.path.lexists(path) and not overwrite:
    raise UsageError(
      f"{path} already exists; choose another path or pass "
      "overwrite=True (--overwrite on the command line)."
    )
  if not is_dir and os.path.isdir(path):
    raise UsageError(f"{path} is a directory; give a file path to write.")
  parent = os.path.dirname(os.path.abspath(path))
  if os.path.exists(parent) and not os.path.isdir(parent):
    raise UsageError(f"cannot write {path}: {parent} is not a directory.")


def _cannot_write(path: str, error: OSError) -> UsageError:
  """The user's path, not hubkit's temporary sibling, in an error."""
  reason = error.strerror or type(error).__name__
  return UsageError(f"cannot write {path}: {reason}; choose a path in a folder you can write.")


def check_output_file(path: str) -> None:
  """Refuses, before any work, an output file path that cannot be written.

  Raises:
    UsageError: `path` is a directory, its parent is a file, or the parent
      (or its nearest existing ancestor) does not accept new files.
  """
  path = os.path.abspath(path)
  if os.path.isdir(path):
    raise UsageError(f"{path} is a directory; give a file path to write.")
  check_parent_writable(path)


def check_parent_writable(path: str) -> None:
  """Refuses, before any work, a path whose folder cannot be created or written.

  Permission bits are not enough: root passes every `os.access` check, and
  pseudo file systems (/proc, /sys) or read-only mounts refuse new files
  whatever the bits say. So a probe file is created and removed in the
  nearest existing ancestor.

  Raises:
    UsageError: the nearest existing ancestor is a file or does not accept
      new files.
  """
  path = os.path.abspath(path)
  ancestor = os.path.dirname(path)
  while not os.path.exists(ancestor):
    ancestor = os.path.dirname(ancestor)
  if not os.path.isdir(ancestor):
    raise UsageError(f"cannot write {path}: {ancestor} is not a directory.")
  try:
    fd, probe = tempfile.mkstemp(prefix=".hubkit-probe.", dir=ancestor)
  except OSError as e:
    raise _cannot_write(path, e) from e
  os.close(fd)
  os.remove(probe)


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
    UsageError: `path` exists and `overwrite` is False, or its folder does
      not accept new entries (the message names `path`, never the
      temporary sibling).
  """
  path = os.path.abspath(path)
  _check_target(path, overwrite, is_dir=True)
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
  except OSError as e:
    raise _cannot_write(path, e) from e
  try:
    yield tmp
    as_if_created(tmp, is_dir=True)
    try:
      _move_into_place(tmp, path)
    except OSError as e:
      raise _cannot_write(path, e) from e
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def _move_into_place(tmp: str, path: str) -> None:
  """Renames the complete `tmp` to `path`, the old `path` aside until then."""
  if not os.path.lexists(path):
    os.rename(tmp, path)
    return
  old = tempfile.mkdtemp(
    prefix=f".{os.path.basename(path)}.", suffix=".old", dir=os.path.dirname(path)
  )
  os.rename(path, os.path.join(old, "content"))
  os.rename(tmp, path)
  shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "wb", overwrite: bool = True) -> Iterator[object]:
  """Yields a file object whose content replaces `path` only when complete.

  Args:
    path: the file to write.
    mode: "wb" or "w".
    overwrite: replace an existing file.

  Yields:
    An open file on a temporary sibling; it is renamed over `path` when the
    block exits normally and deleted when it raises.

  Raises:
    UsageError: `path` is a directory, exists and `overwrite` is False, or
      its folder does not accept new files (named as `path`).
  """
  path = os.path.abspath(path)
  _check_target(path, overwrite, is_dir=False)
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
  except OSError as e:
    raise _cannot_write(path, e) from e
  try:
    with os.fdopen(fd, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    as_if_created(tmp, is_dir=False)
    try:
      os.replace(tmp, path)
    except OSError as e:
      raise _cannot_write(path, e) from e
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise
