"""Safe extraction of module archives (`.tar.gz` whose root is the SavedModel root).

An archive comes from someone else's machine, so every entry is checked
before anything is written: no absolute paths, no `..`, no symbolic or hard
links, no device files or FIFOs, and only paths the tfhub.dev allow-list
permits. Members are streamed to disk in chunks, so memory use does not grow
with the module's size.
"""

import gzip
import os
import posixpath
import shutil
import tarfile
import tempfile
from typing import BinaryIO, Callable, List, Optional
import zlib

from hubkit import layout
from hubkit.errors import UsageError

_CHUNK = 1 << 20


def _refuse(archive: str, entry: str, why: str) -> UsageError:
  return UsageError(f"refusing to extract {archive}: entry {entry!r} {why}; only publish "
                    "archives made by 'hubkit pack' (or tar -czf m.tar.gz -C module_dir .).")


def _normalized(archive: str, member: tarfile.TarInfo) -> Optional[str]:
  """Returns the member's safe relative path, None for the root entry, or raises."""
  name = member.name
  if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
    raise _refuse(archive, name, "has an absolute or Windows path")
  if ".." in name.split("/"):
    raise _refuse(archive, name, "climbs out of the module directory with '..'")
  if member.issym() or member.islnk():
    raise _refuse(archive, name, f"is a {'symbolic' if member.issym() else 'hard'} link")
  if not (member.isfile() or member.isdir()):
    raise _refuse(archive, name, "is a device, FIFO or other special file")
  relpath = posixpath.normpath(name)
  if relpath in (".", ""):
    if member.isfile():
      raise _refuse(archive, name, "is a file at the archive root's own path")
    return None
  if not layout.is_allowed(relpath):
    raise _refuse(archive, name, "is outside the SavedModel allow-list (saved_model.pb, "
                  "variables/, assets/, assets.extra/, fingerprint.pb, keras_metadata.pb)")
  return relpath


def extract_module_archive(archive: str, target_dir: str,
                           on_bytes: Optional[Callable[[int], None]] = None,
                           fileobj: Optional[BinaryIO] = None) -> List[str]:
  """Extracts a module archive into an existing, empty directory.

  The archive is read as a stream (tar mode "r|gz"), so it may come straight
  from a network response.

  Args:
    archive: path of the `.tar.gz` file, or its name (URL) when `fileobj`
      is given; used in messages.
    target_dir: the directory to fill (the caller makes it, usually a
      temporary sibling that it renames into place afterwards).
    on_bytes: called with the number of bytes written after each chunk
      (progress reporting).
    fileobj: read the archive from this binary stream instead of `archive`.

  Returns:
    The relative paths of the files written.

  Raises:
    UsageError: the archive is unreadable, truncated, not gzip/tar, holds an
      unsafe or non-allow-listed entry, or has no saved_model.pb.
  """
  written = []
  try:
    with tarfile.open(archive if fileobj is None else None, mode="r|gz",
                      fileobj=fileobj) as tar:
      for member in tar:
        relpath = _normalized(archive, member)
        if relpath is None:
          continue
        destination = os.path.join(target_dir, *relpath.split("/"))
        if member.isdir():
          os.makedirs(destination, exist_ok=True)
          continue
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        source = tar.extractfile(member)
        with source, open(destination, "xb") as out:
          for chunk in iter(lambda: source.read(_CHUNK), b""):
            out.write(chunk)
            if on_bytes:
              on_bytes(len(chunk))
        written.append(relpath)
  except FileExistsError as e:
    raise _refuse(archive, os.path.relpath(e.filename, target_dir), "appears twice") from e
  except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise UsageError(f"{archive} is not a complete .tar.gz module archive ({e}); download it "
                     "again or re-pack it with 'hubkit pack'.") from e
  except OSError as e:
    raise UsageError(f"cannot extract {archive}: {e.strerror or e} ({e.filename}); check the "
                     "path and free disk space.") from e
  if "saved_model.pb" not in written:
    raise UsageError(f"{archive} has no saved_model.pb at its root; the archive root must be "
                     "the SavedModel directory (tar -czf m.tar.gz -C module_dir .).")
  return written


def extract_to_temp(archive: str, parent: Optional[str] = None) -> str:
  """Extracts a module archive into a new temporary directory and returns it.

  The caller owns the directory (remove it with shutil.rmtree). On failure
  nothing is left behind.
  """
  target = tempfile.mkdtemp(prefix="hubkit_module_", dir=parent)
  try:
    extract_module_archive(archive, target)
  except BaseException:
    shutil.rmtree(target, ignore_errors=True)
    raise
  return target
