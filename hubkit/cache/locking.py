"""The download lock of one cache entry, compatible with tensorflow_hub's.

While a process fills `<cache>/<key>/` it holds `<cache>/<key>.lock`, whose
contents are `hostname.pid.uuid-hex`, and downloads into
`<cache>/<key>.<uuid-hex>.tmp/`. Another process waits while that folder
grows and takes the lock over when it stops growing for `stale_seconds`, or
at once when the owner is a dead process on this host. The lock's contents
are parsed against their exact format and never used to build a path: the
owner's download folder is found by listing the cache.
"""

import contextlib
import os
import re
import shutil
import socket
import time
import uuid
from typing import Optional

from absl import logging

# tensorflow_hub waits 10 minutes for a download that makes no progress.
STALE_LOCK_SECONDS = 600.0
POLL_SECONDS = 0.2
_LOCK_FORMAT = re.compile(
  r"(?P<host>[A-Za-z0-9][A-Za-z0-9._-]{0,252})\.(?P<pid>[0-9]{1,10})"
  r"\.(?P<task>[0-9a-f]{32})"
)


def lock_path(module_dir: str) -> str:
  """`<cache>/<key>.lock` for `<cache>/<key>`."""
  return os.path.normpath(module_dir) + ".lock"


def temp_path(module_dir: str, task_uid: str) -> str:
  """`<cache>/<key>.<task_uid>.tmp`, the download folder of one task."""
  return f"{os.path.normpath(module_dir)}.{task_uid}.tmp"


def read_text(path: str) -> Optional[str]:
  """The file's text, or None when it does not exist."""
  try:
    with open(path, encoding="utf-8") as f:
      return f.read()
  except FileNotFoundError:
    return None


def dir_size(path: str) -> int:
  """Bytes of the regular files below `path` (0 when it vanished)."""
  total = 0
  for folder, _, files in os.walk(path):
    for name in files:
      with contextlib.suppress(OSError):
        total += os.lstat(os.path.join(folder, name)).st_size
  return total


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class CacheLock:
  """Holds `<module_dir>.lock` for the duration of a `with` block.

  Example:

  ```python
  with CacheLock("/tmp/tfhub_modules/0a1b…", "http://host/m/1") as lock:
    os.makedirs(lock.temp_dir)   # download here, then rename into place
  ```

  Args:
    module_dir: the cache entry the lock protects.
    handle: the module handle, for log messages.
    stale_seconds: how long the owner's download folder may stop growing
      before the lock is taken over.
    poll_seconds: how often a waiter looks again.
  """

  def __init__(
    self,
    module_dir: str,
    handle: str,
    stale_seconds: float = STALE_LOCK_SECONDS,
    poll_seconds: float = POLL_SECONDS,
  ):
    self.module_dir = os.path.normpath(module_dir)
    self.path = lock_path(module_dir)
    self.task_uid = uuid.uuid4().hex
    self.contents = f"{socket.gethostname()}.{os.getpid()}.{self.task_uid}"
    self.temp_dir = temp_path(module_dir, self.task_uid)
    self._handle = handle
    self._stale_seconds = stale_seconds
    self._poll_seconds = poll_seconds

  def __enter__(self) -> "CacheLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  def acquire(self) -> None:
    """Takes the lock, waiting for (or recovering from) another owner."""
    watched, last_size, last_change = None, -1, time.monotonic()
    while True:
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        pass
      else:
        with os.fdopen(fd, "w") as f:
          f.write(self.contents)
        return
      owner = read_text(self.path)
      if owner is None:
        continue  # released between our attempt and the read
      parsed = _LOCK_FORMAT.fullmatch(owner.strip())
      if parsed and self._owner_is_dead(parsed):
        logging.warning(
          "taking over the lock of %s left by a dead process (%s)", self._handle, parsed.group(0)
        )
        self._break(owner, parsed)
        continue
      if owner != watched:
        watched, last_size, last_change = owner, -1, time.monotonic()
      size = self._owner_progress(parsed)
      if size != last_size:
        last_size, last_change = size, time.monotonic()
      elif time.monotonic() - last_change > self._stale_seconds:
        logging.warning(
          "the download of %s by %r made no progress for %g s; taking over",
          self._handle,
          owner[:120],
          self._stale_seconds,
        )
        self._break(owner, parsed)
        continue
      time.sleep(self._poll_seconds)

  def release(self) -> None:
    """Removes the lock file if it is still ours (it may have been taken over)."""
    if read_text(self.path) == self.contents:
      with contextlib.suppress(FileNotFoundError):
        os.remove(self.path)

  @staticmethod
  def _owner_is_dead(parsed: "re.Match") -> bool:
    return parsed.group("host") == socket.gethostname() and not _pid_alive(int(parsed.group("pid")))

  def _owner_temp(self, parsed: Optional["re.Match"]) -> Optional[str]:
    """The owner's download folder, found by listing (never built from the
    lock's contents), or None."""
    if parsed is None:
      return None
    wanted = os.path.basename(temp_path(self.module_dir, parsed.group("task")))
    parent = os.path.dirname(self.path)
    for name in os.listdir(parent):
      if name == wanted:
        return os.path.join(parent, name)
    return None

  def _owner_progress(self, parsed: Optional["re.Match"]) -> int:
    temp = self._owner_temp(parsed)
    return dir_size(temp) if temp and not os.path.islink(temp) else -1

  def _break(self, owner: str, parsed: Optional["re.Match"]) -> None:
    if read_text(self.path) != owner:
      return
    with contextlib.suppress(FileNotFoundError):
      os.remove(self.path)
    temp = self._owner_temp(parsed)
    if temp:
      remove_tree(temp)


def remove_tree(path: str) -> None:
  """Removes a cache folder, or just the link when it is a symbolic link.

  The folder is renamed first, so that readers never see it half-deleted.
  """
  if os.path.islink(path):
    os.remove(path)
    return
  doomed = f"{path}.{uuid.uuid4().hex}.tmp"
  try:
    os.rename(path, doomed)
  except FileNotFoundError:
    return
  shutil.rmtree(doomed, ignore_errors=True)
