"""Tests for resolving and caching handles, against a real local server."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

import helpers
import hubkit
from hubkit.cache import manifest
from hubkit.cache import store
from hubkit import cli
from hubkit import modules
from hubkit.registry import http_server
from hubkit.registry import root_layout
from hubkit.module import layout

_RESOLVE = "import sys; from hubkit.cache import resolver; print(resolver.resolve(sys.argv[1]))"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  base = tmp_path_factory.mktemp("cache_registry")
  small = modules.export_module("mul", str(base / "mul"), config={"dim": 2})
  # About 1.6 MB of variables: big enough to kill a throttled download midway.
  big = modules.export_module(
    "mlp_feature_vector", str(base / "big"), config={"input_dim": 400, "hidden_units": [1000]}
  )
  root = str(base / "root")
  for name in ("hub-first", "hubkit-first", "race", "broken-cache", "checksum", "check", "cli"):
    hubkit.publish_module(small, root, f"me/{name}/1")
  hubkit.publish_module(big, root, "me/big/1")
  with http_server.serving(root) as running:
    running.small = small
    yield running


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub_cache"))
  return str(tmp_path / "tfhub_cache")


def _bad_archive(root, handle, entries):
  version_dir = os.path.join(root, *handle.split("/"))
  os.makedirs(version_dir)
  with open(os.path.join(version_dir, "README.md"), "w") as f:
    f.write("# Module " + handle)
  return helpers.write_tar(os.path.join(version_dir, root_layout.ARCHIVE_NAME), entries)


def test_tensorflow_hub_loads_from_hubkit_serve(server, fresh_cache):
  obj = hub.load(f"{server.url}/me/hub-first/1")
  np.testing.assert_allclose(obj(tf.constant([[2.0, 3.0]])).numpy(), [[2.0, 3.0]])
  # hubkit adopts tensorflow_hub's download (no second fetch) and records it...
  path = hubkit.resolve(f"{server.url}/me/hub-first/1")
  assert os.path.dirname(path) == fresh_cache
  assert server.downloads["me/hub-first/1"] == 1
  assert os.path.isfile(path + ".manifest.json")
  # ...and from then on both libraries use that copy.
  assert hubkit.resolve(f"{server.url}/me/hub-first/1") == path
  hub.load(f"{server.url}/me/hub-first/1")
  assert server.downloads["me/hub-first/1"] == 1


def test_tensorflow_hubs_download_is_loaded_offline_and_then_verified(tmp_path, fresh_cache):
  module = modules.export_module("mul", str(tmp_path / "mul"), config={"dim": 2})
  root = str(tmp_path / "root")
  hubkit.publish_module(module, root, "me/offline/1")
  with http_server.serving(root) as running:
    url = f"{running.url}/me/offline/1"
    expected = hub.load(url)(tf.constant([[2.0, 3.0]])).numpy()
  # The server is gone: only the copy tensorflow_hub left in the cache remains.
  obj = hubkit.load(url)
  np.testing.assert_allclose(obj(tf.constant([[2.0, 3.0]])).numpy(), expected)
  path = hubkit.ModuleCache().path_for(url)
  recorded = manifest.read(path)
  assert recorded["handle"] == url and sorted(recorded["files"]) == sorted(layout.iter_files(path))
  assert cli.main(["hubkit", "cache", "verify"]) == 0
  # Adopted entries are verified like hubkit's own: a changed weight is caught.
  shard = [f for f in os.listdir(os.path.join(path, "variables")) if "data" in f][0]
  with open(os.path.join(path, "variables", shard), "ab") as f:
    f.write(b"\0")
  assert cli.main(["hubkit", "cache", "verify"]) == 1
  with pytest.raises(hubkit.FetchError, match="cannot reach"):
    hubkit.resolve(url)


def test_tensorflow_hub_reuses_what_hubkit_downloaded(server, fresh_cache):
  url = f"{server.url}/me/hubkit-first/1"
  path = hubkit.resolve(url)
  assert path == os.path.join(fresh_cache, store.ModuleCache().key(url))
  with open(path + ".descriptor.txt") as f:
    assert f.readline().strip() == f"Module: {url}"
  assert hub.resolve(url) == path
  hubkit.load(url)
  assert server.downloads["me/hubkit-first/1"] == 1
  assert sorted(os.listdir(fresh_cache)) == sorted(
    [
      os.path.basename(path),
      os.path.basename(path) + ".descriptor.txt",
      os.path.basename(path) + ".manifest.json",
    ]
  )


def test_four_processes_download_once(server, fresh_cache):
  url = f"{server.url}/me/race/1"
  server.bytes_per_second = 20_000  # ~0.5 s per download, so the four overlap
  try:
    procs = [
      subprocess.Popen(
        [sys.executable, "-c", _RESOLVE, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
      )
      for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
  finally:
    server.bytes_per_second = 0
  assert [p.returncode for p in procs] == [0] * 4, results
  assert len({out.strip() for out, _ in results}) == 1
  assert server.downloads["me/race/1"] == 1
  assert not [n for n in os.listdir(fresh_cache) if n.endswith((".lock", ".tmp"))]


def test_killed_download_leaves_nothing_and_next_resolve_succeeds(server, fresh_cache):
  url = f"{server.url}/me/big/1"
  module_dir = store.ModuleCache().path_for(url)
  os.makedirs(fresh_cache)
  server.bytes_per_second = 400_000
  proc = subprocess.Popen(
    [sys.executable, "-c", _RESOLVE, url], env=dict(os.environ), stderr=subprocess.DEVNULL
  )
  try:
    deadline = time.monotonic() + 30
    while not any(n.endswith(".tmp") for n in os.listdir(fresh_cache)):
      assert time.monotonic() < deadline and proc.poll() is None, "the download never started"
      time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
  finally:
    server.bytes_per_second = 0
  assert not os.path.exists(module_dir)  # no partial module is visible
  assert os.path.exists(module_dir + ".lock")  # the dead process's lock is left behind
  path = hubkit.resolve(url)  # taken over at once: its owner is dead
  assert path == module_dir and not store.module_problems(path)
  assert not [n for n in os.listdir(fresh_cache) if n.endswith((".lock", ".tmp"))]


@pytest.mark.parametrize(
  "name, entries, message",
  [
    (
      "traversal",
      [("saved_model.pb", "file", b"x"), ("../../evil.txt", "file", b"x")],
      "'../../evil.txt' climbs out",
    ),
    (
      "symlink",
      [("saved_model.pb", "file", b"x"), ("variables/variables.index", "symlink", b"")],
      "'variables/variables.index' is a symbolic link",
    ),
    ("absolute", [("/etc/cron.d/evil", "file", b"x")], "absolute"),
    (
      "stray",
      [("saved_model.pb", "file", b"x"), ("run.sh", "file", b"x")],
      "'run.sh' is outside the SavedModel allow-list",
    ),
  ],
)
def test_unsafe_archives_are_refused(server, fresh_cache, name, entries, message):
  _bad_archive(server.root, f"bad/{name}/1", entries)
  url = f"{server.url}/bad/{name}/1"
  with pytest.raises(hubkit.UsageError, match=message):
    hubkit.resolve(url)
  assert not os.path.exists(store.ModuleCache().path_for(url))
  # A refused first fetch leaves not even the (empty) cache folder behind.
  assert not os.path.exists(fresh_cache)


def test_corrupt_and_truncated_archives_are_refused(server, fresh_cache):
  good = root_layout.published_archive(os.path.join(server.root, "me", "race", "1"))
  with open(good, "rb") as f:
    data = f.read()
  for name, payload in [
    ("corrupt", b"this is not gzip" * 10),
    ("truncated", data[: len(data) // 2]),
  ]:
    version_dir = os.path.join(server.root, "bad", name, "1")
    os.makedirs(version_dir)
    with open(os.path.join(version_dir, root_layout.ARCHIVE_NAME), "wb") as f:
      f.write(payload)
    with pytest.raises(hubkit.UsageError, match="does not appear to be a valid module archive"):
      hubkit.resolve(f"{server.url}/bad/{name}/1")
    assert not os.path.exists(store.ModuleCache().path_for(f"{server.url}/bad/{name}/1"))


def test_checksum_mismatch_is_refused(server, fresh_cache, monkeypatch):
  monkeypatch.setattr(server, "etag_for", lambda archive: "0" * 64)
  url = f"{server.url}/me/checksum/1"
  with pytest.raises(hubkit.HubkitError, match="does not match its checksum"):
    hubkit.resolve(url)
  assert not os.path.exists(store.ModuleCache().path_for(url))


def test_offline_resolve_and_incomplete_cache_is_a_miss(server, fresh_cache, tmp_path):
  url = f"{server.url}/me/broken-cache/1"
  path = hubkit.resolve(url)
  os.remove(os.path.join(path, "variables", "variables.index"))  # e.g. purged by the OS
  assert store.module_problems(path) == ["variables/variables.index is missing"]
  assert hubkit.resolve(url) == path and not store.module_problems(path)
  assert server.downloads["me/broken-cache/1"] == 2
  # Offline: a handle in the cache needs no server at all.
  root = str(tmp_path / "offline_root")
  hubkit.publish_module(server.small, root, "me/offline/1")
  with http_server.serving(root) as temporary:
    offline_url = f"{temporary.url}/me/offline/1"
    first = hubkit.resolve(offline_url)
  assert hubkit.resolve(offline_url) == first
  with pytest.raises(hubkit.HubkitError, match="cannot reach"):
    hubkit.resolve(offline_url.replace("/1", "/2"))


def test_local_archives_and_bad_handles(server, fresh_cache, tmp_path):
  archive = hubkit.pack_module(server.small, str(tmp_path / "m.tar.gz"))
  path = hubkit.resolve(archive)
  assert path.startswith(fresh_cache) and os.path.isfile(os.path.join(path, "saved_model.pb"))
  assert hubkit.resolve(server.small) == server.small
  with pytest.raises(hubkit.UsageError, match="does not exist; pass a SavedModel directory"):
    hubkit.resolve(str(tmp_path / "missing"))
  with pytest.raises(hubkit.HubkitError, match="answered 404"):
    hubkit.resolve(f"{server.url}/me/unknown/1")


def test_check_and_keras_layer_accept_url_handles(server, fresh_cache, capsys):
  url = f"{server.url}/me/check/1"
  assert cli.main(["hubkit", "check", url]) == 0
  assert "conforms" in capsys.readouterr().out
  layer = hubkit.KerasLayer(url)
  np.testing.assert_allclose(layer(tf.constant([[1.0, 4.0]])), [[1.0, 4.0]])
  assert server.downloads["me/check/1"] == 1


def test_cache_commands(server, fresh_cache, capsys):
  url = f"{server.url}/me/cli/1"
  path = hubkit.resolve(url)
  assert cli.main(["hubkit", "cache", "ls"]) == 0
  out = capsys.readouterr().out
  assert os.path.basename(path) in out and url in out and "1 module(s)" in out
  assert cli.main(["hubkit", "cache", "verify"]) == 0
  capsys.readouterr()
  with open(os.path.join(path, "assets.extra", "hubkit.json")) as f:
    listed = f.read()
  assert "saved_model.pb" in listed
  with open(os.path.join(path, "saved_model.pb"), "ab") as f:
    f.write(b"tampered")
  assert cli.main(["hubkit", "cache", "verify"]) == 1
  assert "saved_model.pb does not match its recorded sha256" in capsys.readouterr().out
  assert cli.main(["hubkit", "cache", "prune", "--older_than=1"]) == 0
  assert os.path.exists(path)
  os.utime(path + ".descriptor.txt", (time.time() - 3 * 86400,) * 2)
  assert cli.main(["hubkit", "cache", "prune", "--older_than=2"]) == 0
  assert "pruned 1 module(s)" in capsys.readouterr().out and not os.path.exists(path)
  hubkit.resolve(url)
  assert cli.main(["hubkit", "cache", "rm", url]) == 0
  assert not os.path.exists(path) and not os.path.exists(path + ".descriptor.txt")
  assert cli.main(["hubkit", "cache", "rm", url]) == 2
  assert "is not in the cache" in capsys.readouterr().err
  assert cli.main(["hubkit", "cache", "explode"]) == 2
  assert (
    "unknown action 'explode' for 'hubkit cache'; valid actions: ls, verify"
    in capsys.readouterr().err
  )
