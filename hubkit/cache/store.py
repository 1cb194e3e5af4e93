"""The module cache shared with tensorflow_hub: the store and its upkeep.

The cache lives in `$TFHUB_CACHE_DIR` (default `<tmp>/tfhub_modules`; a
`file://` URL is read as its path) with tensorflow_hub's layout, so either
library reuses what the other fetched:

    <cache>/<sha1(handle)>/                  the module (SavedModel root)
    <cache>/<sha1(handle)>.descriptor.txt    which handle it is
    <cache>/<sha1(handle)>.manifest.json     hubkit's integrity record
    <cache>/<sha1(handle)>.lock              held while filling (`hubkit.cache.locking`)
    <cache>/<sha1(handle)>.<uuid>.tmp/       a download in progress

Concerns live in their own modules: `hubkit.cache.handles` says what a handle
names, `hubkit.cache.download` fetches over HTTP, `hubkit.cache.locking` holds the lock,
`hubkit.cache.archive` extracts with bounds, `hubkit.cache.manifest` records and checks
each entry. This module fills entries atomically and keeps the store
(`entries`, `verify`, `remove`, `prune`). A hit writes nothing, so a
read-only cache filled by another user works.

An entry tensorflow_hub fetched has no manifest: the first hubkit resolve
of its handle adopts it (trust on first use, docs/security.md) once it
passes the checks hubkit's own extraction makes and the op scan, and
records a manifest, so it is loaded offline and later tampering is caught.
Nothing here imports TensorFlow.
"""

import contextlib
import dataclasses
import datetime
import functools
import glob
import hashlib
import os
import re
import socket
import stat
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging

from hubkit.cache import archive
from hubkit.cache import download
from hubkit.cache import handles
from hubkit.module import layout
from hubkit.cache import locking
from hubkit.cache import manifest
from hubkit.module import metadata
from hubkit.errors import NotFoundError, UsageError
from hubkit.utils.progress import Progress
from hubkit.safety import verdicts
from hubkit.safety.ops import UnsafeModuleError

STALE_LOCK_SECONDS = locking.STALE_LOCK_SECONDS
_KEY = re.compile(r"[0-9a-f]{40}")


def default_cache_dir() -> str:
  """`$TFHUB_CACHE_DIR` (a path or `file://` URL), or tensorflow_hub's default
  `<tmp>/tfhub_modules`."""
  configured = os.environ.get("TFHUB_CACHE_DIR")
  if configured:
    return handles.local_path(configured)
  return os.path.join(tempfile.gettempdir(), "tfhub_modules")


def module_problems(module_dir: str) -> List[str]:
  """Returns why a cached folder is not a usable module (empty when it is)."""
  if not os.path.isdir(module_dir):
    return ["missing"]
  problems = []
  if not os.path.isfile(os.path.join(module_dir, "saved_model.pb")):
    problems.append("saved_model.pb is missing")
  variables = os.path.join(module_dir, "variables")
  if os.path.isdir(variables):
    if not os.path.isfile(os.path.join(variables, "variables.index")):
      problems.append("variables/variables.index is missing")
    shards = glob.glob(os.path.join(variables, "variables.data-*-of-*"))
    counts = {int(m.group(1)) for m in (re.search(r"-of-(\d+)$", s) for s in shards) if m}
    for count in counts:
      for i in range(count):
        name = f"variables.data-{i:05d}-of-{count:05d}"
        if not os.path.isfile(os.path.join(variables, name)):
          problems.append(f"variables/{name} is missing")
    if os.path.isfile(os.path.join(variables, "variables.index")) and not shards:
      problems.append("variables/variables.data-* shards are missing")
  try:
    record = metadata.read_metadata(module_dir)
  except UsageError:
    record = None
  for relpath in (record or {}).get("files", {}):
    if not os.path.isfile(os.path.join(module_dir, relpath)):
      problems.append(f"{relpath} is missing")
  return list(dict.fromkeys(problems))


@dataclasses.dataclass
class CacheEntry:
  """One cached module."""

  key: str
  path: str
  handle: Optional[str]
  size: int
  last_used: float
  problems: List[str]


class ModuleCache:
  """The module cache shared with tensorflow_hub.

  Example:

  ```python
  import hubkit

  cache = hubkit.ModuleCache()  # $TFHUB_CACHE_DIR or <tmp>/tfhub_modules
  path = cache.resolve("http://127.0.0.1:8765/hubkit/digits-features/1")
  for entry in cache.entries():
    print(entry.handle, entry.size)
  ```

  Args:
    cache_dir: the cache folder (a path or `file://` URL); defaults to
      `default_cache_dir()`.
    progress: show a progress bar (default: only on a terminal).
    stale_lock_seconds: how long another process's download may make no
      progress before its lock is taken over.
  """

  def __init__(
    self,
    cache_dir: Optional[str] = None,
    progress: Optional[bool] = None,
    stale_lock_seconds: float = STALE_LOCK_SECONDS,
  ):
    self.cache_dir = os.path.abspath(
      handles.local_path(os.fspath(cache_dir)) if cache_dir else default_cache_dir()
    )
    if os.path.exists(self.cache_dir) and not os.path.isdir(self.cache_dir):
      raise UsageError(
        f"the cache folder {self.cache_dir} is a file; set TFHUB_CACHE_DIR "
        "(or cache_dir) to a folder."
      )
    self._progress = progress
    self._stale_lock_seconds = stale_lock_seconds

  @staticmethod
  def key(handle: str) -> str:
    """The folder name for a handle: SHA-1 of the handle, as tensorflow_hub does."""
    return hashlib.sha1(handle.encode("utf8")).hexdigest()

  def path_for(self, handle: str) -> str:
    """The entry folder a handle is cached in."""
    return os.path.join(self.cache_dir, self.key(handle))

  def resolve(self, handle: str, safe_mode: bool = True, allow_ops: Sequence[str] = ()) -> str:
    """Returns a local module directory for a path, archive or URL handle.

    Local directories are returned as they are; archives and URLs are
    fetched into the cache once and reused after that (with no network).

    Args:
      handle: a SavedModel directory, a module archive or an http(s) URL.
      safe_mode: scan the module's ops (`hubkit.safety`) and refuse an unsafe
        one; a fetched module is scanned before it enters the cache, so a
        refused one leaves nothing there. False only for a module you trust.
      allow_ops: op types you reviewed and allow beyond the allow-list.

    Raises:
      NotFoundError: no such path (a FileNotFoundError too).
      UsageError: not a module; an unsafe archive entry or a limit exceeded.
      hubkit.errors.ArchiveError: the archive is not a readable tar (OSError).
      hubkit.errors.FetchError: the download failed or did not match its
        checksum (OSError).
      hubkit.safety.ops.UnsafeModuleError: `safe_mode` and the scan refused
        the module.
    """
    kind, where = handles.classify(handle)
    scan = functools.partial(_ensure_safe, allow_ops=allow_ops) if safe_mode else None
    if kind == handles.URL:
      return self._fetch(where, self._download, None, scan)
    if kind == handles.ARCHIVE:
      return self._fetch(where, self._extract_file, manifest.source_status(where), scan)
    if scan:
      scan(where)
    return where

  def _check_cache_dir(self) -> None:
    """Refuses a cache folder that users other than its owner may write into.

    A folder owned by someone else but closed to writes (a shared, read-only
    cache a team fills) is fine: its owner is trusted as the owner of
    site-packages is.
    """
    st = os.stat(self.cache_dir)
    if st.st_mode & 0o022:
      raise UsageError(
        f"the cache folder {self.cache_dir} is writable by other users, who "
        "could replace what hubkit loads from it; run "
        f"'chmod go-w {self.cache_dir}' or set TFHUB_CACHE_DIR to a folder of "
        "your own."
      )

  def entry_problems(self, module_dir: str, source: Optional[List[int]] = None) -> List[str]:
    """Why a cache entry is not a trustworthy hit (empty when it is).

    Args:
      module_dir: the entry folder.
      source: for a local archive handle, its current status; an entry made
        from another version of the file is stale.
    """
    problems = manifest.problems(module_dir)
    if not problems:
      problems = module_problems(module_dir)
    if not problems and source is not None:
      if (manifest.read(module_dir) or {}).get("source") != source:
        problems = ["the archive changed since it was extracted"]
    return problems

  def _fetch(
    self,
    handle: str,
    fill: Callable[[str, str, Dict[str, str]], str],
    source: Optional[List[int]],
    scan: Optional[Callable[[str], None]],
  ) -> str:
    created = not os.path.isdir(self.cache_dir)
    os.makedirs(self.cache_dir, exist_ok=True)
    try:
      return self._fetch_into_cache(handle, fill, source, scan)
    except BaseException:
      if created:  # a failed first fetch leaves no empty cache folder behind
        with contextlib.suppress(OSError):
          os.rmdir(self.cache_dir)
      raise

  def _hit(self, module_dir: str, scan: Optional[Callable[[str], None]]) -> str:
    if scan:
      scan(module_dir)
    # The descriptor's time records the last use, for `prune`; best effort,
    # so that a read-only cache still serves hits.
    with contextlib.suppress(OSError):
      os.utime(_descriptor_path(module_dir))
    return module_dir

  def _fetch_into_cache(
    self, handle: str, fill, source: Optional[List[int]], scan: Optional[Callable[[str], None]]
  ) -> str:
    module_dir = self.path_for(handle)
    self._check_cache_dir()
    problems = self.entry_problems(module_dir, source)
    if not problems:
      return self._hit(module_dir, scan)
    lock = locking.CacheLock(module_dir, handle, self._stale_lock_seconds)
    try:
      lock.acquire()
    except PermissionError as e:
      return self._read_only_hit(handle, module_dir, scan, e)
    try:
      # Another process may have finished while we waited for the lock.
      problems = self.entry_problems(module_dir, source)
      if not problems:
        return self._hit(module_dir, scan)
      if source is None and self._adopt(handle, module_dir, scan):
        return self._hit(module_dir, None)
      if os.path.lexists(module_dir):
        logging.warning(
          "cached copy of %s is not trusted (%s); fetching it again",
          handle,
          "; ".join(problems[:2]),
        )
        locking.remove_tree(module_dir)
      os.makedirs(lock.temp_dir)
      digests: Dict[str, str] = {}
      archive_sha256 = fill(handle, lock.temp_dir, digests)
      if scan:
        scan(lock.temp_dir)  # before it enters the cache: a refused one leaves nothing
      self._write_descriptor(handle, module_dir, lock.task_uid)
      if not self._move_into_place(lock.temp_dir, module_dir, source):
        return self._hit(module_dir, scan)
      # Recorded after the rename, so the files' status is final; until it
      # exists the entry is a miss, so a crash here costs a fetch, no trust.
      manifest.write(module_dir, handle, archive_sha256, source, digests)
      return module_dir
    finally:
      locking.remove_tree(lock.temp_dir)
      with contextlib.suppress(FileNotFoundError):
        os.remove(f"{_descriptor_path(module_dir)}.{lock.task_uid}")
      lock.release()

  def _adopt(self, handle: str, module_dir: str, scan: Optional[Callable[[str], None]]) -> bool:
    """Takes over an entry another client (tensorflow_hub) filled for this
    handle: trust on first use, after the checks hubkit's own extraction
    makes. Returns False, changing nothing, for an entry it cannot vouch for
    (it is then fetched again); an adopted entry is verified like any other
    from then on.
    """
    if manifest.read(module_dir) is not None or _descriptor_handle(module_dir) != handle:
      return False  # hubkit's own entry gone bad, or not made for this handle
    problems = adoption_problems(module_dir) or module_problems(module_dir)
    if not problems and scan:
      try:
        scan(module_dir)
      except UnsafeModuleError as e:
        problems = [str(e)]
    if problems:
      logging.warning(
        "the copy of %s that another client cached is not used (%s); fetching it again",
        handle,
        "; ".join(problems[:2]),
      )
      return False
    manifest.write(module_dir, handle, None)
    logging.info("adopted %s, cached by another client, into hubkit's cache records", handle)
    return True

  def _move_into_place(self, temp_dir: str, module_dir: str, source: Optional[List[int]]) -> bool:
    """Renames a finished download into place; False when another process
    (which took over a stale lock) put a trustworthy copy there meanwhile."""
    try:
      os.rename(temp_dir, module_dir)
      return True
    except OSError:
      if not os.path.lexists(module_dir):
        raise
    if not self.entry_problems(module_dir, source):
      logging.info("%s was cached by another process meanwhile; using its copy", module_dir)
      return False
    locking.remove_tree(module_dir)  # an untrusted copy: ours replaces it
    os.rename(temp_dir, module_dir)
    return True

  def _read_only_hit(
    self, handle: str, module_dir: str, scan: Optional[Callable[[str], None]], error: OSError
  ) -> str:
    """A cache hubkit cannot write to (filled by another user or by
    tensorflow_hub): a complete entry is used as it is, after the op scan."""
    if module_problems(module_dir):
      raise UsageError(
        f"{handle} is not cached completely in {self.cache_dir} and the cache is "
        f"not writable ({error.strerror}); set TFHUB_CACHE_DIR to a folder of "
        "your own."
      ) from error
    logging.warning(
      "using %s from the read-only cache %s without a hubkit manifest to verify it against",
      handle,
      self.cache_dir,
    )
    return self._hit(module_dir, scan)

  def _write_descriptor(self, handle: str, module_dir: str, task_uid: str) -> None:
    temp = f"{_descriptor_path(module_dir)}.{task_uid}"
    with open(temp, "w", encoding="utf-8") as f:
      f.write(
        f"Module: {handle}\nDownload Time: {datetime.datetime.today()}\n"
        f"Downloader Hostname: {socket.gethostname()} (PID:{os.getpid()})"
      )
    os.replace(temp, _descriptor_path(module_dir))

  def _extract_file(self, path: str, target: str, digests: Dict[str, str]) -> str:
    """Extracts a local archive (filling `digests`); returns its sha256."""
    with (
      open(path, "rb") as f,
      Progress(
        f"extracting {os.path.basename(path)}", os.path.getsize(path), enabled=self._progress
      ) as p,
    ):
      reader = download.HashingReader(f, p, path)
      archive.extract_module_archive(path, target, fileobj=reader, digests=digests)
      reader.drain()
    return reader.sha256.hexdigest()

  def _download(self, handle: str, target: str, digests: Dict[str, str]) -> str:
    return download.download_module(handle, target, digests, progress=self._progress)

  def entries(self) -> List[CacheEntry]:
    """Every module folder in the cache, with its handle and any problems."""
    if not os.path.isdir(self.cache_dir):
      return []
    result = []
    for name in sorted(os.listdir(self.cache_dir)):
      path = os.path.join(self.cache_dir, name)
      if _KEY.fullmatch(name) and os.path.lexists(path):
        result.append(self._entry(name, path, deep=False))
    return result

  def _entry(self, name: str, path: str, deep: bool) -> CacheEntry:
    has_descriptor = os.path.isfile(_descriptor_path(path))
    used = os.lstat(_descriptor_path(path) if has_descriptor else path).st_mtime
    problems = manifest.problems(path, deep=deep)
    if not os.path.islink(path):
      problems += module_problems(path)
      try:
        metadata.read_metadata(path)
      except UsageError:
        problems.append("assets.extra/hubkit.json is malformed")
    size = 0 if os.path.islink(path) else locking.dir_size(path)
    return CacheEntry(
      name, path, _descriptor_handle(path), size, used, list(dict.fromkeys(problems))
    )

  def verify(self) -> List[CacheEntry]:
    """Checks every entry deeply: its manifest (every file hashed again, no
    extra file, no link) and its completeness. Returns the entries with their
    problems."""
    return [self._entry(e.key, e.path, deep=True) for e in self.entries()]

  def remove(self, handle_or_key: str) -> str:
    """Deletes one cached module (by handle or cache key); returns its path.

    Raises:
      NotFoundError: nothing is cached under that handle.
    """
    if _KEY.fullmatch(handle_or_key):
      key = handle_or_key
    elif os.path.isfile(handles.local_path(handle_or_key)):
      key = self.key(os.path.abspath(handles.local_path(handle_or_key)))
    else:
      key = self.key(handle_or_key)
    path = os.path.join(self.cache_dir, key)
    if not os.path.lexists(path):
      raise NotFoundError(
        f"{handle_or_key} is not in the cache {self.cache_dir}; 'hubkit cache ls' lists what is."
      )
    with locking.CacheLock(path, handle_or_key, self._stale_lock_seconds):
      # Renamed first so that readers never see a half-deleted module.
      locking.remove_tree(path)
      for extra in (_descriptor_path(path), manifest.path_for(path)):
        with contextlib.suppress(FileNotFoundError):
          os.remove(extra)
    return path

  def prune(self, older_than_days: float) -> List[CacheEntry]:
    """Removes entries not used for more than `older_than_days`; returns them.

    Raises:
      UsageError: `older_than_days` is negative.
    """
    if older_than_days < 0:
      raise UsageError(f"older_than_days must be zero or more, not {older_than_days}.")
    cutoff = time.time() - older_than_days * 86400
    removed = [e for e in self.entries() if e.last_used < cutoff]
    for entry in removed:
      self.remove(entry.key)
    return removed


def _descriptor_path(module_dir: str) -> str:
  return module_dir + ".descriptor.txt"


def _descriptor_handle(module_dir: str) -> Optional[str]:
  """The handle an entry's descriptor names (hubkit and tensorflow_hub both
  write "Module: <handle>" first), or None."""
  try:
    descriptor = locking.read_text(_descriptor_path(module_dir)) or ""
  except (OSError, UnicodeDecodeError):
    return None
  match = re.search(r"^Module: (.*)$", descriptor, re.MULTILINE)
  return match.group(1) if match else None


def adoption_problems(module_dir: str) -> List[str]:
  """Why a folder another client cached cannot be adopted (empty when it can):
  what hubkit's own extraction refuses (`hubkit.cache.archive`), found on disk.

  Args:
    module_dir: the entry folder.
  """
  if os.path.islink(module_dir) or not os.path.isdir(module_dir):
    return ["the entry is a symbolic link or not a folder"]
  limits = archive.ExtractLimits.from_env()
  problems, entries, total = [], 0, 0
  for dirpath, dirnames, filenames in os.walk(module_dir):
    for name in dirnames + filenames:
      full = os.path.join(dirpath, name)
      relpath = os.path.relpath(full, module_dir).replace(os.sep, "/")
      st = os.lstat(full)
      entries, total = entries + 1, total + (st.st_size if stat.S_ISREG(st.st_mode) else 0)
      if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        problems.append(f"{relpath} is a link or special file")
      elif not layout.is_allowed(relpath):
        problems.append(f"{relpath} is outside the SavedModel allow-list")
  if entries > limits.max_entries:
    problems.append(f"it holds {entries} files and folders (limit {limits.max_entries})")
  if total > limits.max_bytes:
    problems.append(f"it holds {total} bytes (limit {limits.max_bytes})")
  return problems


def _ensure_safe(module_dir: str, allow_ops: Sequence[str]) -> None:
  verdicts.ensure_safe(module_dir, allow_ops)
