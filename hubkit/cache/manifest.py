"""The integrity record of a cache entry, kept *outside* the module folder.

    <cache>/<sha1(handle)>/                 the module
    <cache>/<sha1(handle)>.manifest.json    this record

It holds the handle, the sha256 of the archive the entry came from and, for
every file of the module, its size and sha256, plus the file's
(inode, size, mtime, ctime) when the record was written. A cache hit is
trusted only when the folder holds exactly those regular files (no link, no
extra file) and each one still has the recorded status; the kernel sets
ctime on every change and no unprivileged process can set it back, so an
unchanged status means unchanged bytes and the hit costs a few `lstat`s. A
file whose status changed (a copied or restored cache) is hashed again and
accepted only if its digest matches. `hubkit cache verify` always hashes.

Nothing here imports TensorFlow.
"""

import json
import os
import stat
from typing import Any, Dict, List, Optional

from hubkit.module import layout
from hubkit.utils.atomic import atomic_file
from hubkit.utils.digest import sha256_file

SUFFIX = ".manifest.json"
_FORMAT = 1


def path_for(module_dir: str) -> str:
  """The manifest file of a cache entry folder."""
  return module_dir.rstrip(os.sep) + SUFFIX


def _status(st: os.stat_result) -> List[int]:
  return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def write(
  module_dir: str,
  handle: str,
  archive_sha256: Optional[str],
  source: Optional[List[int]] = None,
  digests: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
  """Records every file of a freshly filled entry (call after the rename).

  Args:
    module_dir: the entry folder, in its final place.
    handle: the handle it was fetched for.
    archive_sha256: the sha256 of the archive it was extracted from.
    source: for a local archive, its (inode, size, mtime, ctime), so that a
      changed archive file is extracted again.
    digests: the files' sha256, if computed already (while extracting);
      files missing from it are hashed here.

  Returns:
    The record written.
  """
  files = {}
  for relpath in layout.iter_files(module_dir):
    full = os.path.join(module_dir, relpath)
    known = (digests or {}).get(relpath)
    files[relpath] = {
      "sha256": known or sha256_file(full),
      "status": _status(os.lstat(full)),
    }
  record = {
    "format": _FORMAT,
    "handle": handle,
    "archive_sha256": archive_sha256,
    "source": source,
    "files": files,
  }
  _save(module_dir, record)
  return record


def _save(module_dir: str, record: Dict[str, Any]) -> None:
  with atomic_file(path_for(module_dir), "w") as f:
    json.dump(record, f, indent=1, sort_keys=True)


def read(module_dir: str) -> Optional[Dict[str, Any]]:
  """The entry's record, or None when it is missing or malformed."""
  try:
    with open(path_for(module_dir), encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
    return None
  if not all(
    isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in record["files"].values()
  ):
    return None
  return record


def source_status(path: str) -> List[int]:
  """The status recorded for a local archive handle."""
  return _status(os.stat(path))


def problems(module_dir: str, deep: bool = False) -> List[str]:
  """Why an entry cannot be trusted (empty when it can).

  Args:
    module_dir: the entry folder.
    deep: hash every file even when its status is unchanged.

  Returns:
    One phrase per problem: a symbolic link, no (or a malformed) manifest, a
    missing, extra, non-regular or changed file.
  """
  if os.path.islink(module_dir):
    return ["the entry is a symbolic link"]
  if not os.path.isdir(module_dir):
    return ["missing"]
  record = read(module_dir)
  if record is None:
    return ["it has no valid manifest (it was not fetched by hubkit, or was planted)"]
  found, refreshed = [], False
  on_disk = set()
  for dirpath, dirnames, filenames in os.walk(module_dir):
    for name in dirnames + filenames:
      full = os.path.join(dirpath, name)
      relpath = os.path.relpath(full, module_dir).replace(os.sep, "/")
      st = os.lstat(full)
      if stat.S_ISLNK(st.st_mode) or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        found.append(f"{relpath} is a link or special file")
      elif stat.S_ISREG(st.st_mode):
        on_disk.add(relpath)
  for relpath in sorted(on_disk - set(record["files"])):
    found.append(f"{relpath} is not in the manifest")
  for relpath, entry in sorted(record["files"].items()):
    full = os.path.join(module_dir, relpath)
    if relpath not in on_disk:
      found.append(f"{relpath} is missing")
      continue
    current = _status(os.lstat(full))
    if not deep and current == entry.get("status"):
      continue
    if sha256_file(full) != entry["sha256"]:
      found.append(f"{relpath} does not match its recorded sha256")
    elif current != entry.get("status"):
      entry["status"], refreshed = current, True
  if refreshed and not found:
    # Best effort: a read-only shared cache stays usable, it just rehashes
    # the changed files on every hit.
    try:
      _save(module_dir, record)
    except OSError:
      pass
  return found
