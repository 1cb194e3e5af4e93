"""hubkit's resolver against what tensorflow_hub's own resolver tests specify.

The behaviours below are those of tensorflow_hub's `resolver_test.py`,
`compressed_module_resolver_test.py` and the cache parts of `e2e_test.py`,
re-stated for `hubkit.resolve` / `hubkit.ModuleCache` (hubkit's deliberate
differences are in docs/publishing.md and tested in test_security.py).
"""

import contextlib
import functools
import http.server
import os
import re
import shutil
import socket
import ssl
import tarfile
import threading
import time
import uuid

import pytest
import tensorflow as tf
import tensorflow_hub as hub

import hubkit
from hubkit.cache import store
from hubkit.cache import download
from hubkit.cache import locking
from hubkit.cache import manifest


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args):
    pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
  """A plain static web server (no hubkit) over a folder of module archives."""
  root = tmp_path_factory.mktemp("static_site")
  module = tf.Module()
  module.v = tf.Variable([1.0, 2.0])
  module.__call__ = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([None, 2])])
  module_dir = str(root / "module")
  tf.saved_model.save(module, module_dir)
  files = sorted(
    os.path.relpath(os.path.join(d, f), module_dir)
    for d, _, names in os.walk(module_dir)
    for f in names
  )
  entries = sorted({os.path.dirname(f) for f in files} - {""}) + files
  for name, mode in (("m.tar.gz", "w:gz"), ("m.tar", "w")):
    with tarfile.open(root / name, mode) as tar:
      for entry in entries:  # folders first, as `tar` writes them
        tar.add(os.path.join(module_dir, entry), arcname=entry, recursive=False)
  (root / "bad.tar.gz").write_bytes(b"bad_archive")
  handler = functools.partial(_QuietHandler, directory=str(root))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "root": root, "files": files}
  server.shutdown()
  server.server_close()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
  return str(tmp_path / "cache")


def _listing(path):
  return sorted(
    os.path.relpath(os.path.join(d, f), path) for d, _, names in os.walk(path) for f in names
  )


@pytest.mark.parametrize("name", ["m.tar.gz", "m.tar"])
def test_gzip_and_plain_tar_archives_resolve_by_url_and_path(site, name, cache_dir):
  path = hubkit.resolve(f"{site['url']}/{name}")
  assert path.startswith(cache_dir) and _listing(path) == site["files"]
  local = hubkit.resolve(str(site["root"] / name))
  assert _listing(local) == site["files"]


def test_descriptor_and_cache_layout_match_tensorflow_hub(site, cache_dir):
  handle = f"{site['url']}/m.tar.gz"
  path = hubkit.resolve(handle)
  assert os.path.basename(path) == store.ModuleCache.key(handle)
  with open(path + ".descriptor.txt", encoding="utf-8") as f:
    descriptor = f.read()
  assert re.fullmatch(
    rf"Module: {re.escape(handle)}\nDownload Time: .*\n"
    rf"Downloader Hostname: {re.escape(socket.gethostname())} \(PID:{os.getpid()}\)",
    descriptor,
  )
  # tensorflow_hub finds the same folder and does not download again.
  assert hub.resolve(handle) == path
  key = os.path.basename(path)
  assert sorted(os.listdir(cache_dir)) == [key, f"{key}.descriptor.txt", f"{key}.manifest.json"]


def test_second_resolve_does_not_touch_the_module_files(site):
  handle = f"{site['url']}/m.tar.gz"
  path = hubkit.resolve(handle)
  times = [os.stat(os.path.join(path, f)).st_mtime_ns for f in site["files"]]
  assert hubkit.resolve(handle) == path
  assert times == [os.stat(os.path.join(path, f)).st_mtime_ns for f in site["files"]]


def test_file_url_cache_dir_is_its_path(site, tmp_path, monkeypatch):
  target = tmp_path / "file_url_cache"
  monkeypatch.setenv("TFHUB_CACHE_DIR", f"file://{target}")
  monkeypatch.chdir(tmp_path)
  path = hubkit.resolve(f"{site['url']}/m.tar.gz")
  assert os.path.dirname(path) == str(target)
  assert not os.path.exists(tmp_path / "file:")
  assert store.default_cache_dir() == str(target)
  # A file:// handle names the local path too.
  assert hubkit.resolve(f"file://{site['root'] / 'module'}") == str(site["root"] / "module")


@pytest.mark.parametrize(
  "value,mode", [("", ssl.CERT_REQUIRED), ("TRUE", ssl.CERT_REQUIRED), ("true", ssl.CERT_NONE)]
)
def test_disable_cert_validation_env(monkeypatch, value, mode):
  monkeypatch.setenv("TFHUB_DISABLE_CERT_VALIDATION", value)
  context = download.ssl_context()
  assert context.verify_mode == mode
  assert context.check_hostname == (mode == ssl.CERT_REQUIRED)


def test_errors_are_the_builtin_classes_hub_callers_catch(site, tmp_path):
  with pytest.raises(OSError, match="does not exist"):
    hubkit.resolve(str(tmp_path / "missing"))
  with pytest.raises(FileNotFoundError):
    hubkit.load(str(tmp_path / "missing"))
  with pytest.raises(OSError, match="does not appear to be a valid module"):
    hubkit.resolve(f"{site['url']}/bad.tar.gz")
  with pytest.raises(OSError, match="answered 404"):
    hubkit.resolve(f"{site['url']}/nothing.tar.gz")
  with pytest.raises(OSError, match="cannot reach"):
    hubkit.resolve("http://127.0.0.1:9/m.tar.gz")
  with pytest.raises(ValueError, match="unsupported handle scheme 'gs'"):
    hubkit.resolve("gs://bucket/module")
  with pytest.raises(ValueError, match="must be a string"):
    hubkit.resolve(42)
  # hubkit's own classes, for callers that want them.
  with pytest.raises(hubkit.FetchError):
    hubkit.resolve(f"{site['url']}/nothing.tar.gz")
  with pytest.raises(hubkit.ArchiveError):
    hubkit.resolve(f"{site['url']}/bad.tar.gz")


class _ResetHandler(http.server.BaseHTTPRequestHandler):
  """Sends half of an archive, then resets the connection."""

  payload = b""

  def do_GET(self):
    self.send_response(200)
    self.send_header("Content-Length", str(len(self.payload)))
    self.end_headers()
    self.wfile.write(self.payload[: len(self.payload) // 2])
    self.wfile.flush()
    self.connection.setsockopt(
      socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    self.connection.close()

  def log_message(self, *args):
    pass


def test_connection_reset_mid_download_is_a_fetch_error(site, cache_dir):
  handler = type("H", (_ResetHandler,), {"payload": (site["root"] / "m.tar").read_bytes()})
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    with pytest.raises(hubkit.FetchError, match="broke off|truncated") as caught:
      hubkit.resolve(f"http://127.0.0.1:{server.server_address[1]}/m.tar")
  finally:
    server.shutdown()
    server.server_close()
  assert "disk space" not in str(caught.value) and isinstance(caught.value, OSError)
  assert not os.listdir(cache_dir) if os.path.isdir(cache_dir) else True


def _plant_entry(module_cache, handle, source_dir, with_manifest):
  """What another process leaves: a finished entry (hubkit's, with a manifest,
  or a bare one as tensorflow_hub writes)."""
  target = module_cache.path_for(handle)
  shutil.copytree(source_dir, target)
  if with_manifest:
    manifest.write(target, handle, None)
  return target


@pytest.mark.parametrize("with_manifest", [True, False])
def test_module_finished_by_another_process_during_download(site, monkeypatch, with_manifest):
  handle = f"{site['url']}/m.tar.gz"
  module_cache = store.ModuleCache()
  real = download.download_module

  def racing_download(h, target, digests, progress=None):
    sha = real(h, target, digests, progress)
    # Meanwhile (after taking over a stale lock) another process finished.
    _plant_entry(module_cache, h, str(site["root"] / "module"), with_manifest)
    return sha

  monkeypatch.setattr(download, "download_module", racing_download)
  path = module_cache.resolve(handle)
  assert path == module_cache.path_for(handle)
  assert _listing(path) == site["files"] and not module_cache.entry_problems(path)
  # Nothing is left behind: no lock, no temporary folder.
  assert sorted(os.listdir(module_cache.cache_dir)) == sorted(
    [
      os.path.basename(path),
      os.path.basename(path) + ".descriptor.txt",
      os.path.basename(path) + ".manifest.json",
    ]
  )


def _locked_by_another_host(site, stale_lock_seconds):
  """A cache whose entry for m.tar.gz is locked by a process on another host,
  with its (empty) download folder. Returns (cache, handle, module_dir, temp)."""
  handle = f"{site['url']}/m.tar.gz"
  module_cache = store.ModuleCache(stale_lock_seconds=stale_lock_seconds)
  os.makedirs(module_cache.cache_dir, mode=0o755)
  module_dir = module_cache.path_for(handle)
  task = uuid.uuid4().hex
  with open(locking.lock_path(module_dir), "w", encoding="utf-8") as f:
    f.write(f"otherhost.example.4242.{task}")
  temp = locking.temp_path(module_dir, task)
  os.makedirs(temp)
  return module_cache, handle, module_dir, temp


def test_abandoned_lock_is_taken_over_after_the_stale_timeout(site):
  module_cache, handle, module_dir, temp = _locked_by_another_host(site, 0.5)
  start = time.monotonic()
  path = module_cache.resolve(handle)
  assert 0.5 <= time.monotonic() - start < 30
  assert _listing(path) == site["files"]
  assert not os.path.exists(locking.lock_path(module_dir))
  assert not os.path.exists(temp)


def test_waiter_keeps_waiting_while_the_owner_makes_progress(site):
  module_cache, handle, module_dir, temp = _locked_by_another_host(site, 0.6)
  fetched = []
  real = download.download_module

  def owner():
    # Grows its download folder for 2 s (over three stale timeouts), then
    # finishes the entry and releases the lock.
    for i in range(10):
      with open(os.path.join(temp, f"part{i}"), "wb") as f:
        f.write(b"x" * 100)
      time.sleep(0.2)
    _plant_entry(module_cache, handle, str(site["root"] / "module"), with_manifest=True)
    shutil.rmtree(temp)
    os.remove(locking.lock_path(module_dir))

  thread = threading.Thread(target=owner)
  thread.start()
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(download, "download_module", lambda *a, **k: fetched.append(1) or real(*a, **k))
    path = module_cache.resolve(handle)
  thread.join()
  assert path == module_dir and not fetched  # the waiter used the owner's module


def test_lock_holder_sees_its_lock_released_and_files_cleaned_on_failure(site, monkeypatch):
  handle = f"{site['url']}/m.tar.gz"
  module_cache = store.ModuleCache()

  def killed(h, target, digests, progress=None):
    os.remove(locking.lock_path(module_cache.path_for(h)))  # the lock was lost
    raise OSError("Download aborted.")

  monkeypatch.setattr(download, "download_module", killed)
  with pytest.raises(OSError, match="Download aborted"):
    module_cache.resolve(handle)
  assert not os.path.exists(module_cache.cache_dir)  # nothing left, not even the folder


def test_read_only_cache_serves_hits(site, monkeypatch):
  handle = f"{site['url']}/m.tar.gz"
  module_cache = store.ModuleCache()
  path = module_cache.resolve(handle)
  # Another user's cache: nothing in it may be written, and its files'
  # status differs from the recorded one (a copied cache).
  for name in site["files"]:
    os.utime(os.path.join(path, name), (1, 1))

  def refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")

  monkeypatch.setattr(os, "utime", refuse)
  monkeypatch.setattr(manifest, "_save", refuse)
  monkeypatch.setattr(locking.CacheLock, "acquire", refuse)
  assert module_cache.resolve(handle) == path


def test_read_only_cache_filled_by_tensorflow_hub_is_used(site, monkeypatch):
  handle = f"{site['url']}/m.tar.gz"
  path = hub.resolve(handle)  # no hubkit manifest
  monkeypatch.setattr(
    locking.CacheLock, "acquire", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied"))
  )
  assert hubkit.resolve(handle) == path
  # An incomplete entry in a cache hubkit cannot write is an error that says so.
  os.remove(os.path.join(path, "saved_model.pb"))
  with pytest.raises(ValueError, match="not writable"):
    hubkit.resolve(handle)


def test_cache_owned_by_another_user_but_closed_to_writes_is_used(site, cache_dir):
  handle = f"{site['url']}/m.tar.gz"
  path = hubkit.resolve(handle)
  os.chown(cache_dir, 65534, 65534)
  os.chmod(cache_dir, 0o755)
  assert hubkit.resolve(handle) == path
  os.chmod(cache_dir, 0o777)
  with pytest.raises(ValueError, match="writable by other users"):
    hubkit.resolve(handle)
  os.chmod(cache_dir, 0o755)
  with contextlib.suppress(PermissionError):
    os.chown(cache_dir, os.getuid(), os.getgid())
