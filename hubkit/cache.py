"""Resolve module handles to local directories through a shared, safe cache.

The cache lives in `$TFHUB_CACHE_DIR` (default `<tmp>/tfhub_modules`) with
tensorflow_hub's layout, so either library reuses what the other fetched:

    <cache>/<sha1(handle)>/                  the module (SavedModel root)
    <cache>/<sha1(handle)>.descriptor.txt    which handle it is
    <cache>/<sha1(handle)>.lock              held while downloading: host.pid.uuid
    <cache>/<sha1(handle)>.<uuid>.tmp/       the download in progress

hubkit adds what tensorflow_hub lacks: a folder without saved_model.pb or
with missing variable shards is a miss, not a crash (tensorflow/hub#575); the
archive's sha256 is checked against the server's ETag while it streams;
extraction refuses unsafe entries and is bounded (`archive.ExtractLimits`);
every entry has a manifest beside it (`<sha1>.manifest.json`, see
`hubkit.manifest`) and a hit is trusted only if the folder still matches it
(an entry without one, a symbolic link or a changed file is fetched again);
a lock left by a dead process is taken over at once, and a lock file's
contents are parsed against their exact format, never used as a path; a
cache folder other users can write to is refused. Nothing here imports
TensorFlow except `load`.
"""

import contextlib
import dataclasses
import functools
import datetime
import glob
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence
import urllib.error
import urllib.parse
import urllib.request
import uuid

from absl import logging

from hubkit import archive
from hubkit import layout
from hubkit import manifest
from hubkit import metadata
from hubkit.errors import HubkitError, UsageError
from hubkit.progress import Progress

_POLL_SECONDS = 0.2
# Like tensorflow_hub: a lock whose download makes no progress for this long
# is considered abandoned (its owner may live on another host).
STALE_LOCK_SECONDS = 600
_TIMEOUT_SECONDS = 60
# tensorflow_hub's lock contents: hostname.pid.uuid4-hex.
_LOCK_FORMAT = re.compile(r"(?P<host>[A-Za-z0-9][A-Za-z0-9._-]{0,252})\.(?P<pid>[0-9]{1,10})"
                          r"\.(?P<task>[0-9a-f]{32})")


def default_cache_dir() -> str:
  """Returns `$TFHUB_CACHE_DIR`, or tensorflow_hub's default `<tmp>/tfhub_modules`."""
  return os.environ.get("TFHUB_CACHE_DIR") or os.path.join(tempfile.gettempdir(),
                                                           "tfhub_modules")


def is_url(handle: str) -> bool:
  return urllib.parse.urlsplit(handle).scheme in ("http", "https")


def _compressed_url(handle: str) -> str:
  parts = urllib.parse.urlsplit(handle)
  query = urllib.parse.parse_qsl(parts.query) + [("tf-hub-format", "compressed")]
  return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


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
  record = _read_record(module_dir)
  for relpath in (record or {}).get("files", {}):
    if not os.path.isfile(os.path.join(module_dir, relpath)):
      problems.append(f"{relpath} is missing")
  return list(dict.fromkeys(problems))


def _read_record(module_dir: str) -> Optional[Dict[str, Any]]:
  try:
    return metadata.read_metadata(module_dir)
  except UsageError:
    return None


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _dir_size(path: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
             for f in files if os.path.exists(os.path.join(d, f)))


class _HashingReader:
  """Wraps a response: hashes and counts what is read, reports progress."""

  def __init__(self, raw: BinaryIO, progress: Progress):
    self._raw, self._progress = raw, progress
    self.sha256 = hashlib.sha256()
    self.size = 0

  def read(self, size: int = -1) -> bytes:
    data = self._raw.read(size)
    self.sha256.update(data)
    self.size += len(data)
    self._progress.add(len(data))
    return data

  def drain(self) -> None:
    while self.read(1 << 16):
      pass


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
    cache_dir: the cache folder; defaults to `default_cache_dir()`.
    progress: show a progress bar (default: only on a terminal).
    stale_lock_seconds: how long a lock may show no download progress before
      it is taken over.
  """

  def __init__(self, cache_dir: Optional[str] = None, progress: Optional[bool] = None,
               stale_lock_seconds: float = STALE_LOCK_SECONDS):
    self.cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    if os.path.exists(self.cache_dir) and not os.path.isdir(self.cache_dir):
      raise UsageError(f"the cache folder {self.cache_dir} is a file; set TFHUB_CACHE_DIR "
                       "(or --cache_dir) to a folder.")
    self._progress = progress
    self._stale_lock_seconds = stale_lock_seconds

  def key(self, handle: str) -> str:
    """The folder name for a handle: SHA-1 of the handle, as tensorflow_hub does."""
    return hashlib.sha1(handle.encode("utf8")).hexdigest()

  def path_for(self, handle: str) -> str:
    return os.path.join(self.cache_dir, self.key(handle))

  def resolve(self, handle: str, safe_mode: bool = True,
              allow_ops: Sequence[str] = ()) -> str:
    """Returns a local module directory for a path, archive or URL handle.

    Local directories are returned as they are; archives and URLs are
    fetched into the cache once and reused after that (with no network).

    Args:
      handle: a SavedModel directory, a `.tar.gz` archive or an http(s) URL.
      safe_mode: scan the module's ops (`hubkit.safety`) and refuse an unsafe
        one; a fetched module is scanned before it enters the cache, so a
        refused one leaves nothing there. False only for a module you trust.
      allow_ops: op types you reviewed and allow beyond the allow-list.

    Raises:
      UsageError: no such path, not a module, an unsafe or corrupt archive.
      HubkitError: the download failed or did not match its checksum.
      hubkit.safety.ops.UnsafeModuleError: `safe_mode` and the scan refused
        the module.
    """
    handle = os.fspath(handle)
    scan = functools.partial(_ensure_safe, allow_ops=allow_ops) if safe_mode else None
    if is_url(handle):
      return self._fetch(handle, self._download, None, scan)
    if os.path.isdir(handle):
      if not layout.has_saved_model(handle):
        raise UsageError(f"{handle} is not a SavedModel: it has no saved_model.pb.")
      if scan:
        scan(handle)
      return os.path.abspath(handle)
    if os.path.isfile(handle):
      if not handle.endswith((".tar.gz", ".tgz")):
        raise UsageError(f"{handle} is a file but not a .tar.gz module archive.")
      path = os.path.abspath(handle)
      return self._fetch(path, lambda h, tmp, digests: self._extract_file(path, tmp, digests),
                         manifest.source_status(path), scan)
    raise UsageError(f"module handle {handle!r} is not an existing directory, a .tar.gz "
                     "archive or an http(s) URL.")

  def _check_cache_dir(self) -> None:
    """Refuses a cache folder that another user could write into."""
    st = os.stat(self.cache_dir)
    if st.st_mode & 0o022 or st.st_uid not in (os.geteuid(), 0):
      raise UsageError(f"the cache folder {self.cache_dir} is writable by, or belongs to, "
                       "another user, who could replace what hubkit loads from it; run "
                       f"'chmod go-w {self.cache_dir}' or set TFHUB_CACHE_DIR to a folder of "
                       "your own.")

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

  def _fetch(self, handle: str, fill, source: Optional[List[int]],
             scan: Optional[Callable[[str], None]]) -> str:
    created = not os.path.isdir(self.cache_dir)
    os.makedirs(self.cache_dir, exist_ok=True)
    try:
      return self._fetch_into_cache(handle, fill, source, scan)
    except BaseException:
      if created:  # a failed first fetch leaves no empty cache folder behind
        with contextlib.suppress(OSError):
          os.rmdir(self.cache_dir)
      raise

  def _fetch_into_cache(self, handle: str, fill, source: Optional[List[int]],
                        scan: Optional[Callable[[str], None]]) -> str:
    module_dir = self.path_for(handle)
    self._check_cache_dir()
    if not self.entry_problems(module_dir, source):
      if scan:
        scan(module_dir)
      # The descriptor's time records the last use, for `prune`.
      with contextlib.suppress(FileNotFoundError):
        os.utime(self._descriptor(module_dir))
      return module_dir
    lock = module_dir + ".lock"
    task_uid = uuid.uuid4().hex
    contents = f"{socket.gethostname()}.{os.getpid()}.{task_uid}"
    tmp = f"{module_dir}.{task_uid}.tmp"
    self._acquire(lock, contents, handle)
    try:
      # Another process may have finished while we waited for the lock.
      problems = self.entry_problems(module_dir, source)
      if not problems:
        if scan:
          scan(module_dir)
        return module_dir
      if os.path.lexists(module_dir):
        logging.warning("cached copy of %s is not trusted (%s); fetching it again",
                        handle, "; ".join(problems[:2]))
        _remove_entry(module_dir)
      os.makedirs(tmp)
      digests: Dict[str, str] = {}
      archive_sha256 = fill(handle, tmp, digests)
      if scan:
        scan(tmp)  # before it enters the cache: a refused module leaves nothing there
      with open(self._descriptor(module_dir) + f".{task_uid}", "w", encoding="utf-8") as f:
        f.write(f"Module: {handle}\nDownload Time: {datetime.datetime.today()}\n"
                f"Downloader Hostname: {socket.gethostname()} (PID:{os.getpid()})")
      os.replace(self._descriptor(module_dir) + f".{task_uid}", self._descriptor(module_dir))
      os.rename(tmp, module_dir)
      # Recorded after the rename, so the files' status is final; until it
      # exists the entry is a miss, so a crash here costs a fetch, no trust.
      manifest.write(module_dir, handle, archive_sha256, source, digests)
      return module_dir
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
      with contextlib.suppress(FileNotFoundError):
        os.remove(self._descriptor(module_dir) + f".{task_uid}")
      self._release(lock, contents)

  @staticmethod
  def _descriptor(module_dir: str) -> str:
    return module_dir + ".descriptor.txt"

  def _acquire(self, lock: str, contents: str, handle: str) -> None:
    """Takes the lock file, waiting for (or recovering from) another owner."""
    watched, last_size, last_change = None, -1, time.monotonic()
    while True:
      try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        pass
      else:
        with os.fdopen(fd, "w") as f:
          f.write(contents)
        return
      owner = _read_text(lock)
      if owner is None:
        continue  # released between our attempt and the read
      parsed = _LOCK_FORMAT.fullmatch(owner.strip())
      if parsed and self._owner_is_dead(parsed):
        logging.warning("taking over the lock of %s left by a dead process (%s)", handle,
                        parsed.group(0))
        self._break_lock(lock, owner, parsed)
        continue
      if owner != watched:
        watched, last_size, last_change = owner, -1, time.monotonic()
      size = self._owner_progress(lock, parsed)
      if size != last_size:
        last_size, last_change = size, time.monotonic()
      elif time.monotonic() - last_change > self._stale_lock_seconds:
        logging.warning("the download of %s by %r made no progress for %g s; taking over",
                        handle, owner[:120], self._stale_lock_seconds)
        self._break_lock(lock, owner, parsed)
        continue
      time.sleep(_POLL_SECONDS)

  @staticmethod
  def _owner_is_dead(parsed: "re.Match") -> bool:
    return parsed.group("host") == socket.gethostname() and not _pid_alive(
        int(parsed.group("pid")))

  def _owner_temp(self, lock: str, parsed: Optional["re.Match"]) -> Optional[str]:
    """The lock owner's download folder, found by listing (never built from the
    lock's contents), or None."""
    if parsed is None:
      return None
    wanted = f"{os.path.basename(lock)[:-len('.lock')]}.{parsed.group('task')}.tmp"
    for name in os.listdir(self.cache_dir):
      if name == wanted:
        return os.path.join(self.cache_dir, name)
    return None

  def _owner_progress(self, lock: str, parsed: Optional["re.Match"]) -> int:
    temp = self._owner_temp(lock, parsed)
    return _dir_size(temp) if temp and not os.path.islink(temp) else -1

  def _break_lock(self, lock: str, owner: str, parsed: Optional["re.Match"]) -> None:
    if _read_text(lock) == owner:
      with contextlib.suppress(FileNotFoundError):
        os.remove(lock)
      temp = self._owner_temp(lock, parsed)
      if temp:
        _remove_entry(temp)

  @staticmethod
  def _release(lock: str, contents: str) -> None:
    if _read_text(lock) == contents:
      with contextlib.suppress(FileNotFoundError):
        os.remove(lock)

  def _extract_file(self, path: str, target: str, digests: Dict[str, str]) -> str:
    """Extracts a local archive (filling `digests`); returns its sha256."""
    with open(path, "rb") as f, Progress(f"extracting {os.path.basename(path)}",
                                         os.path.getsize(path), enabled=self._progress) as p:
      reader = _HashingReader(f, p)
      archive.extract_module_archive(path, target, fileobj=reader, digests=digests)
      reader.drain()
    return reader.sha256.hexdigest()

  def _download(self, handle: str, target: str, digests: Dict[str, str]) -> str:
    """Downloads and extracts a URL handle (filling `digests`); returns the
    archive's sha256."""
    url = _compressed_url(handle)
    try:
      response = urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS)  # pylint: disable=consider-using-with
    except urllib.error.HTTPError as e:
      detail = e.read(200).decode("utf-8", "replace").strip()
      raise HubkitError(f"{handle}: the server answered {e.code} {e.reason}"
                        + (f" ({detail})" if detail else "") + "; check the handle.") from e
    except (urllib.error.URLError, OSError) as e:
      reason = getattr(e, "reason", e)
      raise HubkitError(f"cannot reach {handle} ({reason}); check the URL and network, or "
                        "use a cached copy.") from e
    with response:
      expected_size = response.headers.get("Content-Length")
      etag = (response.headers.get("ETag") or "").strip('"')
      with Progress(f"downloading {handle}", int(expected_size) if expected_size else None,
                    enabled=self._progress) as progress:
        reader = _HashingReader(response, progress)
        try:
          archive.extract_module_archive(handle, target, fileobj=reader, digests=digests)
          reader.drain()
        except (OSError, EOFError) as e:
          raise HubkitError(f"the download of {handle} broke off ({e}); try again.") from e
    if expected_size and reader.size != int(expected_size):
      raise HubkitError(f"the download of {handle} is truncated ({reader.size} of "
                        f"{expected_size} bytes); try again.")
    if re.fullmatch(r"[0-9a-f]{64}", etag) and reader.sha256.hexdigest() != etag:
      raise HubkitError(f"the archive of {handle} does not match its checksum (sha256 "
                        f"{reader.sha256.hexdigest()[:12]}…, server ETag {etag[:12]}…); "
                        "nothing was cached; the server copy may be corrupt.")
    return reader.sha256.hexdigest()

  def entries(self) -> List[CacheEntry]:
    """Every module folder in the cache, with its handle and any problems."""
    if not os.path.isdir(self.cache_dir):
      return []
    result = []
    for name in sorted(os.listdir(self.cache_dir)):
      path = os.path.join(self.cache_dir, name)
      if not re.fullmatch(r"[0-9a-f]{40}", name) or not os.path.lexists(path):
        continue
      result.append(self._entry(name, path, deep=False))
    return result

  def _entry(self, name: str, path: str, deep: bool) -> CacheEntry:
    descriptor = _read_text(self._descriptor(path)) or ""
    match = re.search(r"^Module: (.*)$", descriptor, re.MULTILINE)
    used = os.lstat(self._descriptor(path) if descriptor else path).st_mtime
    problems = manifest.problems(path, deep=deep)
    if not os.path.islink(path):
      problems += module_problems(path)
      try:
        metadata.read_metadata(path)
      except UsageError:
        problems.append("assets.extra/hubkit.json is malformed")
    size = 0 if os.path.islink(path) else _dir_size(path)
    return CacheEntry(name, path, match.group(1) if match else None, size, used,
                      list(dict.fromkeys(problems)))

  def verify(self) -> List[CacheEntry]:
    """Checks every entry deeply: its manifest (every file hashed again, no
    extra file, no link) and its completeness. Returns the entries with their
    problems."""
    if not os.path.isdir(self.cache_dir):
      return []
    return [self._entry(e.key, e.path, deep=True) for e in self.entries()]

  def remove(self, handle_or_key: str) -> str:
    """Deletes one cached module (by handle or cache key); returns its path.

    Raises:
      UsageError: nothing is cached under that handle.
    """
    key = handle_or_key if re.fullmatch(r"[0-9a-f]{40}", handle_or_key) else self.key(
        os.path.abspath(handle_or_key) if os.path.isfile(handle_or_key) else handle_or_key)
    path = os.path.join(self.cache_dir, key)
    if not os.path.lexists(path):
      raise UsageError(f"{handle_or_key} is not in the cache {self.cache_dir}; "
                       "'hubkit cache ls' lists what is.")
    lock, contents = path + ".lock", f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex}"
    self._acquire(lock, contents, handle_or_key)
    try:
      # Rename first so that readers never see a half-deleted module.
      _remove_entry(path)
      for extra in (self._descriptor(path), manifest.path_for(path)):
        with contextlib.suppress(FileNotFoundError):
          os.remove(extra)
    finally:
      self._release(lock, contents)
    return path

  def prune(self, older_than_days: float) -> List[CacheEntry]:
    """Removes entries not used for more than `older_than_days`; returns them."""
    if older_than_days < 0:
      raise UsageError("--older-than must be zero or more days.")
    cutoff = time.time() - older_than_days * 86400
    removed = [e for e in self.entries() if e.last_used < cutoff]
    for entry in removed:
      self.remove(entry.key)
    return removed


def _remove_entry(path: str) -> None:
  """Removes a cache folder, or just the link when it is a symbolic link.

  The folder is renamed first, so that readers never see it half-deleted.
  """
  if os.path.islink(path):
    os.remove(path)
    return
  doomed = f"{path}.{uuid.uuid4().hex}.tmp"
  os.rename(path, doomed)
  shutil.rmtree(doomed, ignore_errors=True)


def _read_text(path: str) -> Optional[str]:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read()
  except FileNotFoundError:
    return None


def _ensure_safe(module_dir: str, allow_ops: Sequence[str]) -> None:
  # Imported here: the scan needs TensorFlow's protos, the rest of the cache
  # does not.
  from hubkit.safety import verdicts  # pylint: disable=g-import-not-at-top
  verdicts.ensure_safe(module_dir, allow_ops)


def resolve(handle: str, safe_mode: bool = True, allow_ops: Sequence[str] = ()) -> str:
  """Returns a local SavedModel directory for a path, `.tar.gz` or URL handle,
  using the cache in `$TFHUB_CACHE_DIR` (see `ModuleCache.resolve`)."""
  return ModuleCache().resolve(handle, safe_mode=safe_mode, allow_ops=allow_ops)


def load(handle: str, safe_mode: bool = True, allow_ops: Sequence[str] = (), **kwargs) -> Any:
  """`tf.saved_model.load(resolve(handle), **kwargs)`, after an op scan.

  Args:
    handle: a directory, `.tar.gz` or http(s) handle.
    safe_mode: scan the module first and refuse one whose ops reach outside
      the process (the verdict is remembered per content digest); pass False
      only for a module you trust.
    allow_ops: op types you reviewed and allow beyond the allow-list.
    **kwargs: passed to `tf.saved_model.load` (e.g. `options`).

  Raises:
    UsageError, HubkitError: as for `resolve`.
    hubkit.safety.ops.UnsafeModuleError: the scan refused the module.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.saved_model.load(resolve(handle, safe_mode=safe_mode, allow_ops=allow_ops),
                             **kwargs)
