"""Hostile modules, archives, caches, configs and clients: hubkit refuses them,
and nothing outside a scratch directory is ever written (each test plants a
marker path and asserts it does not exist afterwards)."""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

import keras
import numpy as np
import pytest

import hostile_modules
import helpers
import hubkit
from hubkit.cache import archive
from hubkit import cli
from hubkit import modules
from hubkit.registry import http_server
from hubkit.registry import root_layout
from hubkit.safety import ops

# What each hostile module's scan must name.
EXPECTED_OPS = {
  "call_writes": "WriteFile",
  "initializer_writes": "WriteFile",
  "restore_writes": "WriteFile",
  "tf1_main_op_writes": "WriteFile",
  "dataset_exfiltrates": "DatasetToTFRecord",
  "table_reads_foreign_file": "InitializeTableFromTextFileV2",
  "pbtxt_writes": "WriteFile",
}


def _private_dir(prefix):
  # Not under /tmp or /root: paths there count as leaked by layout.saved_model,
  # and the confinement test needs a module that passes every static rule.
  parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else "/var/tmp"
  return tempfile.mkdtemp(prefix=prefix, dir=parent)


@pytest.fixture(scope="module")
def corpus():
  base = _private_dir("hubkit_hostile_")
  built = {}
  for name, build in hostile_modules.HOSTILE.items():
    marker = os.path.join(base, f"{name}.marker")
    built[name] = (build(os.path.join(base, name), marker), marker)
    if os.path.exists(marker):
      os.remove(marker)  # building may run the code once; the tests start clean
  yield built
  shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def good_module(tmp_path_factory):
  return modules.export_module(
    "mul", str(tmp_path_factory.mktemp("good") / "mul"), config={"dim": 2}
  )


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub_cache"))
  return str(tmp_path / "tfhub_cache")


def _tar(module_dir, path):
  with tarfile.open(path, "w:gz") as tar:
    for name in sorted(os.listdir(module_dir)):
      tar.add(os.path.join(module_dir, name), arcname=name)
  return path


def _publish_raw(root, handle, archive_path):
  """Places an archive in a registry root as is (publish_module would refuse)."""
  version_dir = os.path.join(root, *handle.split("/"))
  os.makedirs(version_dir)
  shutil.copy(archive_path, os.path.join(version_dir, root_layout.ARCHIVE_NAME))
  with open(os.path.join(version_dir, root_layout.CARD_NAME), "w") as f:
    f.write(f"# Module {handle}\n")


@pytest.mark.parametrize("name", sorted(hostile_modules.HOSTILE))
def test_scan_names_the_unsafe_op(corpus, name):
  findings, _, _ = ops.scan(corpus[name][0])
  assert EXPECTED_OPS[name] in {f.op for f in findings}, findings


@pytest.mark.parametrize("name", sorted(hostile_modules.HOSTILE))
def test_check_condemns_without_running(corpus, name, capsys):
  path, marker = corpus[name]
  assert cli.main(["hubkit", "check", path]) == 1
  out = capsys.readouterr()
  assert "Traceback" not in out.err + out.out
  assert not os.path.exists(marker)
  report = hubkit.check_module(path)
  assert report.result("security.ops").status == "fail"
  assert EXPECTED_OPS[name] in report.result("security.ops").message
  for rule_id in ("interface.call", "consumer.hub_keras_layer", "roundtrip.reexport"):
    result = report.result(rule_id)
    assert result.status == "skip" and "never loads or calls" in result.message
  assert not os.path.exists(marker)


def test_reading_own_assets_is_allowed(tmp_path):
  import tensorflow as tf

  vocabulary = tmp_path / "vocab.txt"
  vocabulary.write_text("a\nb\n")
  obj = tf.train.Checkpoint()
  obj.asset = tf.saved_model.Asset(str(vocabulary))
  # Given a path, TextFileInitializer tracks the file as an asset itself.
  obj.table = helpers.vocabulary_table(str(vocabulary))
  obj.__call__ = tf.function(
    lambda x: (
      obj.table.lookup(x) + tf.cast(tf.strings.length(tf.io.read_file(obj.asset)), tf.int64)
    ),
    input_signature=[tf.TensorSpec([None], tf.string)],
  )
  path = str(tmp_path / "reader")
  tf.saved_model.save(obj, path)
  vocabulary.unlink()  # the module must only need its own copy
  assert ops.scan(path)[0] == []
  loaded = hubkit.load(path)
  assert loaded(tf.constant(["b", "zzz"])).numpy().tolist() == [5, 3]


def _cache_entries(cache_dir):
  return sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []


def test_tf1_module_reading_its_asset_is_allowed(tmp_path):
  import tensorflow as tf

  vocabulary = tmp_path / "vocab.txt"
  vocabulary.write_text("a\nb\n")
  path = str(tmp_path / "tf1")
  with tf.Graph().as_default():
    words = tf.compat.v1.placeholder(tf.string, [None], name="words")
    asset = tf.constant(str(vocabulary), name="asset_path")
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, asset)
    table = tf.compat.v1.lookup.StaticHashTable(
      tf.compat.v1.lookup.TextFileInitializer(
        asset,
        tf.string,
        tf.lookup.TextFileIndex.WHOLE_LINE,
        tf.int64,
        tf.lookup.TextFileIndex.LINE_NUMBER,
      ),
      -1,
    )
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.tables_initializer())
      builder = tf.compat.v1.saved_model.Builder(path)
      builder.add_meta_graph_and_variables(
        session,
        ["serve"],
        main_op=tf.compat.v1.tables_initializer(),
        assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
        signature_def_map={
          "serving_default": tf.compat.v1.saved_model.predict_signature_def(
            {"words": words}, {"ids": table.lookup(words)}
          )
        },
      )
      builder.save()
  vocabulary.unlink()
  assert ops.scan(path)[0] == []
  served = hubkit.load(path).signatures["serving_default"]
  assert served(words=tf.constant(["b", "z"]))["ids"].numpy().tolist() == [1, -1]


def test_check_condemns_archives_and_urls_without_running(corpus, tmp_path, fresh_cache):
  path, marker = corpus["call_writes"]
  tarball = _tar(path, str(tmp_path / "hostile.tar.gz"))
  assert cli.main(["hubkit", "check", tarball]) == 1
  root = str(tmp_path / "root")
  _publish_raw(root, "evil/writer/1", tarball)
  with http_server.serving(root) as server:
    url = f"{server.url}/evil/writer/1"
    assert cli.main(["hubkit", "check", url]) == 1
    # The condemned download does not stay in the cache...
    assert _cache_entries(fresh_cache) == []
    # ...and the consumers refuse it before it enters the cache at all.
    for consume in (hubkit.resolve, hubkit.load, hubkit.KerasLayer):
      with pytest.raises(ops.UnsafeModuleError, match="WriteFile"):
        consume(url)
      assert _cache_entries(fresh_cache) == []
    with pytest.raises(ops.UnsafeModuleError):
      hubkit.resolve(tarball)
    assert _cache_entries(fresh_cache) == []
  assert not os.path.exists(marker)


@pytest.mark.parametrize("name", sorted(hostile_modules.HOSTILE))
def test_consumers_refuse_before_loading(corpus, name, tmp_path):
  path, marker = corpus[name]
  with pytest.raises(ops.UnsafeModuleError, match=EXPECTED_OPS[name]):
    hubkit.load(path)
  with pytest.raises(ops.UnsafeModuleError, match="safe_mode=False"):
    hubkit.KerasLayer(path)
  data = str(tmp_path / "d.npz")
  np.savez(data, x=np.ones((8, 3), np.float32), y=np.arange(8) % 2)
  code = cli.main(
    [
      "hubkit",
      "finetune",
      f"--module={path}",
      f"--data={data}",
      "--head=classification:2",
      f"--export_dir={tmp_path / 'out'}",
    ]
  )
  assert code == 1
  assert not os.path.exists(marker) and not os.path.exists(tmp_path / "out")


def test_second_safe_load_reuses_the_verdict(good_module):
  from hubkit.safety import verdicts

  verdicts._VERDICTS.clear()
  start = time.perf_counter()
  verdicts.ensure_safe(good_module)
  first = time.perf_counter() - start
  start = time.perf_counter()
  verdicts.ensure_safe(good_module)
  second = time.perf_counter() - start
  assert len(verdicts._VERDICTS) == 1
  assert second < first


@pytest.mark.slow
@pytest.mark.parametrize("name", ["call_writes", "initializer_writes"])
def test_confinement_contains_a_module_that_slips_past_the_scan(corpus, name):
  path, marker = corpus[name]
  # The user "reviewed" WriteFile and allowed it: now only confinement stands
  # between the module and the machine.
  report = hubkit.check_module(path, allow_ops=["WriteFile"])
  assert report.result("security.ops").status == "pass"
  assert "Landlock" in report.figures["confinement"]
  assert not report.conforms
  assert "PermissionDenied" in " ".join(r.message for r in report.results)
  assert not os.path.exists(marker)


def test_confined_process_cannot_write_outside_scratch_or_connect(tmp_path):
  scratch, marker = tmp_path / "scratch", tmp_path / "marker"
  scratch.mkdir()
  listener = socket.socket()
  listener.bind(("127.0.0.1", 0))
  listener.listen()
  port = listener.getsockname()[1]
  script = f"""
import os, socket
from hubkit.safety import confine
confine.confine_self({str(scratch)!r})
open({str(scratch / "ok")!r}, 'w').write('fine')
for attempt in ("write", "connect"):
  try:
    if attempt == "write":
      open({str(marker)!r}, 'w').write('pwned')
    else:
      socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print(attempt, "ALLOWED")
  except OSError as e:
    print(attempt, "refused", e.errno)
"""
  out = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
  ).stdout
  listener.close()
  assert "write refused" in out and "connect refused" in out, out
  assert (scratch / "ok").read_text() == "fine"
  assert not marker.exists()


def _sparse_archive(tmp_path):
  if shutil.which("tar") is None:
    pytest.skip("GNU tar is needed to write a sparse member")
  src = tmp_path / "sparse_src" / "variables"
  src.mkdir(parents=True)
  with open(src / "variables.data-00000-of-00001", "wb") as f:
    f.truncate(1 << 30)
  out = str(tmp_path / "sparse.tar.gz")
  subprocess.run(
    ["tar", "--sparse", "-czf", out, "-C", str(tmp_path / "sparse_src"), "."], check=True
  )
  return out


def _bomb_archive(tmp_path):
  out = str(tmp_path / "bomb.tar.gz")
  zeros = 80 << 20
  with tarfile.open(out, "w:gz", compresslevel=1) as tar:
    info = tarfile.TarInfo("variables/variables.data-00000-of-00001")
    info.size = zeros
    tar.addfile(info, io.BytesIO(bytes(zeros)))
  return out


def _many_archive(tmp_path):
  out = str(tmp_path / "many.tar.gz")
  with tarfile.open(out, "w:gz") as tar:
    for i in range(archive.ExtractLimits().max_entries + 1):
      tar.addfile(tarfile.TarInfo(f"assets/f{i}"), io.BytesIO(b""))
  return out


def _deep_archive(tmp_path):
  out = str(tmp_path / "deep.tar.gz")
  with tarfile.open(out, "w:gz") as tar:
    info = tarfile.TarInfo("assets/" + "d/" * 3000 + "x")
    info.size = 1
    tar.addfile(info, io.BytesIO(b"x"))
  return out


ARCHIVES = {
  "bomb": (_bomb_archive, "fold"),
  "sparse": (_sparse_archive, "sparse"),
  "many": (_many_archive, "entries"),
  "deep": (_deep_archive, "characters long"),
}


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_archive_limits_refuse_with_nothing_left(kind, tmp_path, fresh_cache, capsys, monkeypatch):
  build, message = ARCHIVES[kind]
  path = build(tmp_path)
  # A temporary folder of this test's own: other tests (other pytest-xdist
  # workers) make and remove theirs in the shared one meanwhile.
  (tmp_path / "tmp").mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
  before = set(os.listdir(tempfile.gettempdir()))
  assert message in helpers.cli_error(capsys, ["check", path])
  with pytest.raises(hubkit.UsageError, match=message):
    hubkit.resolve(path)
  leftovers = [
    n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("hubkit_")
  ]
  assert leftovers == []
  assert (
    not os.path.exists(fresh_cache)
    or [n for n in os.listdir(fresh_cache) if not n.endswith(".lock")] == []
  )


def test_extract_limits_come_from_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv("HUBKIT_MAX_EXTRACT_ENTRIES", "3")
  assert archive.ExtractLimits.from_env().max_entries == 3
  monkeypatch.setenv("HUBKIT_MAX_EXTRACT_BYTES", "lots")
  with pytest.raises(hubkit.UsageError, match="HUBKIT_MAX_EXTRACT_BYTES"):
    archive.ExtractLimits.from_env()


@pytest.fixture(scope="module")
def server(good_module, tmp_path_factory):
  root = str(tmp_path_factory.mktemp("security_root"))
  for name in ("swap", "plant", "link", "lock", "json", "keras"):
    hubkit.publish_module(good_module, root, f"me/{name}/1")
  with http_server.serving(root) as running:
    yield running


def test_swapped_cache_file_is_fetched_again(server, corpus, fresh_cache):
  url = f"{server.url}/me/swap/1"
  path = hubkit.resolve(url)
  hostile = corpus["call_writes"][0]
  shutil.copy(os.path.join(hostile, "saved_model.pb"), os.path.join(path, "saved_model.pb"))
  os.remove(os.path.join(path, "assets.extra", "hubkit.json"))
  assert cli.main(["hubkit", "cache", "verify"]) == 1
  downloads = server.downloads["me/swap/1"]
  assert hubkit.resolve(url) == path
  assert server.downloads["me/swap/1"] == downloads + 1
  assert ops.scan(path)[0] == []
  assert cli.main(["hubkit", "cache", "verify"]) == 0


def test_planted_and_symlinked_entries_are_not_loaded(server, corpus, fresh_cache, tmp_path):
  hostile, marker = corpus["call_writes"]
  module_cache = hubkit.ModuleCache()
  never = "http://127.0.0.1:9/me/never-downloaded/1"  # nothing listens on port 9
  os.makedirs(fresh_cache)
  shutil.copytree(hostile, module_cache.path_for(never))
  with pytest.raises(hubkit.HubkitError, match="cannot reach"):
    hubkit.load(never, safe_mode=False)
  url = f"{server.url}/me/link/1"
  os.symlink(hostile, module_cache.path_for(url))
  path = hubkit.resolve(url)
  assert not os.path.islink(path) and ops.scan(path)[0] == []
  assert os.path.isdir(hostile) and not os.path.exists(marker)


def test_crafted_lock_cannot_delete_a_directory(server, fresh_cache, tmp_path):
  victim = tmp_path / "victim"
  victim.mkdir()
  (victim / "precious").write_text("keep")
  url = f"{server.url}/me/lock/1"
  module_cache = hubkit.ModuleCache(stale_lock_seconds=0.5)
  os.makedirs(fresh_cache)
  with open(module_cache.path_for(url) + ".lock", "w") as f:
    f.write(f"{socket.gethostname()}.999999999.x/../../../{victim}")
  assert module_cache.resolve(url) == module_cache.path_for(url)
  assert (victim / "precious").read_text() == "keep"


def test_stale_lock_of_a_live_process_is_taken_over(server, fresh_cache):
  url = f"{server.url}/me/lock/1"
  module_cache = hubkit.ModuleCache(stale_lock_seconds=0.5)
  os.makedirs(fresh_cache)
  lock = module_cache.path_for(url) + ".lock"
  with open(lock, "w") as f:
    f.write(f"other-host.{os.getpid()}.{'0' * 32}")
  start = time.monotonic()
  assert module_cache.resolve(url) == module_cache.path_for(url)
  assert 0.5 <= time.monotonic() - start < 30 and not os.path.exists(lock)


def test_malformed_metadata_is_an_entry_problem(server, fresh_cache, capsys):
  url = f"{server.url}/me/json/1"
  path = hubkit.resolve(url)
  with open(os.path.join(path, "assets.extra", "hubkit.json"), "w") as f:
    json.dump([1, 2, 3], f)
  assert cli.main(["hubkit", "cache", "ls"]) == 0
  out = capsys.readouterr().out
  assert "BROKEN" in out and "Traceback" not in out
  assert hubkit.resolve(url) == path  # fetched again, then trusted
  assert hubkit.read_metadata(path)["files"]


def test_cache_folder_writable_by_others_is_refused(server, fresh_cache):
  os.makedirs(fresh_cache)
  os.chmod(fresh_cache, 0o777)
  with pytest.raises(hubkit.UsageError, match="chmod go-w"):
    hubkit.resolve(f"{server.url}/me/plant/1")


def test_keras_safe_mode_refuses_to_rebuild_the_layer(server, tmp_path):
  url = f"{server.url}/me/keras/1"
  model = keras.Sequential([keras.Input((2,)), hubkit.KerasLayer(url)])
  saved = str(tmp_path / "model.keras")
  model.save(saved)
  downloads = server.downloads["me/keras/1"]
  with pytest.raises(ValueError, match="safe mode"):
    keras.saving.load_model(saved)
  assert server.downloads["me/keras/1"] == downloads
  restored = keras.saving.load_model(saved, safe_mode=False)
  x = np.ones((1, 2), np.float32)
  np.testing.assert_allclose(restored(x), model(x))


def _raw_get(url, path, timeout=10):
  host, port = url.split("//")[1].split(":")
  with socket.create_connection((host, int(port)), timeout=timeout) as s:
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
      data += chunk
  return data


def test_server_holds_up(good_module, tmp_path, monkeypatch):
  root = str(tmp_path / "root")
  hubkit.publish_module(good_module, root, "me/ok/1")
  hubkit.publish_module(good_module, root, "me/nocard/1")
  os.remove(os.path.join(root, "me", "nocard", "1.d", root_layout.CARD_NAME))
  secret = tmp_path / "secret.tar.gz"
  secret.write_bytes(b"secret")
  os.makedirs(os.path.join(root, "me", "link", "1"))
  os.symlink(secret, os.path.join(root, "me", "link", "1", root_layout.ARCHIVE_NAME))
  os.makedirs(os.path.join(root, "me", "link2"))
  os.symlink(secret, os.path.join(root, "me", "link2", "1"))  # the static layout
  monkeypatch.setattr(http_server._Handler, "timeout", 1)
  with http_server.serving(root) as server:
    server._slots = __import__("threading").BoundedSemaphore(2)
    assert b" 404 " in _raw_get(server.url, "/me/nocard/1").split(b"\r\n")[0] + b" "
    assert b"secret" not in _raw_get(server.url, "/me/link/1?tf-hub-format=compressed")
    assert b"secret" not in _raw_get(server.url, "/me/link2/1?tf-hub-format=compressed")
    idle = [socket.create_connection(server_address_of(server)) for _ in range(2)]
    refused = _raw_get(server.url, "/me/ok/1")
    assert refused.startswith(b"HTTP/1.1 503")
    time.sleep(2.5)  # the idle connections time out and free their slots
    served = _raw_get(server.url, "/me/ok/1?tf-hub-format=compressed")
    assert served.startswith(b"HTTP/1.1 200")
    digest = open(os.path.join(root, "me", "ok", "1.sha256")).read(64)
    assert f'ETag: "{digest}"'.encode() in served
    for s in idle:
      s.close()


def test_static_files_never_leave_the_root(good_module, tmp_path):
  """The pages and other files are served like a static server's, but no
  link, hidden file or encoded path reaches what lies outside the root."""
  root = tmp_path / "root"
  hubkit.publish_module(good_module, str(root), "me/ok/1")
  outside = tmp_path / "outside"
  outside.mkdir()
  (outside / "secret.html").write_text("TOP-SECRET-CONTENT")
  (outside / "index.html").write_text("TOP-SECRET-CONTENT")
  os.symlink(outside / "secret.html", root / "me" / "ok" / "1.d" / "leak.html")
  os.symlink(outside, root / "me" / "ok" / "linked.d")
  os.symlink(outside, root / "linked")
  (root / ".hidden.html").write_text("TOP-SECRET-CONTENT")
  with http_server.serving(str(root)) as server:
    assert _raw_get(server.url, "/me/ok/1.d/").startswith(b"HTTP/1.1 200")
    for path in (
      "/me/ok/1.d/leak.html",
      "/me/ok/linked.d/secret.html",
      "/me/ok/linked.d/",
      "/linked/",
      "/linked/index.html",
      "/.hidden.html",
      "/me/ok/1.d/%2e%2e/%2e%2e/%2e%2e/outside/secret.html",
      "/me/ok/1.d/../../../outside/secret.html",
    ):
      reply = _raw_get(server.url, path)
      assert b"TOP-SECRET-CONTENT" not in reply, path
      assert reply.split(b" ")[1] in (b"400", b"404"), (path, reply[:40])


def server_address_of(server):
  return server.server_address[:2]


def test_without_confinement_the_dynamic_rules_are_refused(good_module, monkeypatch, capsys):
  from hubkit.checker import child

  # The real child, on a kernel that offers no Landlock.
  script = (
    "import sys; from hubkit.checker import child; from hubkit.safety import confine; "
    "confine.landlock_abi = lambda: 0; sys.exit(child.main())"
  )
  monkeypatch.setattr(child, "_child_argv", lambda: [sys.executable, "-c", script])
  report = hubkit.check_module(good_module)
  assert not report.conforms and "no Landlock" in report.incomplete
  assert report.result("layout.saved_model").status == "pass"
  assert report.result("consumer.keras3_layer").status == "skip"
  assert "--unconfined" in report.result("consumer.keras3_layer").message
  assert cli.main(["hubkit", "check", good_module]) == 2
  assert "check incomplete" in capsys.readouterr().out
  assert hubkit.check_module(good_module, unconfined=True).conforms


def test_a_hanging_check_is_stopped_at_the_timeout(good_module, monkeypatch):
  from hubkit.checker import child

  monkeypatch.setattr(
    child, "_child_argv", lambda: [sys.executable, "-c", "import time; time.sleep(60)"]
  )
  start = time.monotonic()
  report = hubkit.check_module(good_module, timeout=2)
  assert time.monotonic() - start < 30
  first = report.result("interface.call")
  assert first.status == "fail" and "2 s time limit" in first.message
  assert report.result("roundtrip.reexport").status == "skip"
  assert "not run: stopped after" in report.result("roundtrip.reexport").message
  assert not report.conforms


@pytest.mark.slow
def test_allow_ops_lets_a_reviewed_op_through(tmp_path):
  import tensorflow as tf

  obj = tf.train.Checkpoint()

  def call(x, training=False):
    tf.print("batch", tf.shape(x))
    return tf.matmul(x, obj.w)

  hostile_modules._interface(obj, call)
  path = str(tmp_path / "printer")
  tf.saved_model.save(obj, path)
  refused = hubkit.check_module(path)
  assert refused.failed() == ["security.ops"]
  assert "PrintV2" in refused.result("security.ops").message
  report = hubkit.check_module(path, allow_ops=["PrintV2"])
  assert report.conforms, report.table()
  assert report.result("consumer.keras3_layer").status == "pass"
  with pytest.raises(ops.UnsafeModuleError, match="PrintV2"):
    hubkit.load(path)
  assert hubkit.load(path, allow_ops=["PrintV2"])(tf.ones([2, 3])).shape == (2, 1)


def test_allow_list_holds_no_op_that_reaches_outside():
  allowed = ops.allowed_ops()
  outside = {
    "WriteFile",
    "ReadFile",
    "MatchingFiles",
    "DeleteFile",
    "PrintV2",
    "PyFunc",
    "EagerPyFunc",
    "SaveV2",
    "RestoreV2",
    "MergeV2Checkpoints",
    "ImmutableConst",
    "DecodeProtoV2",
    "EncodeProto",
    "GenerateVocabRemapping",
    "XlaCustomCall",
    "InitializeTableFromTextFileV2",
    "CreateSummaryFileWriter",
    "WriteSummary",
    "TextLineReaderV2",
    "FIFOQueueV2",
    "RemoteCall",
    "CollectiveReduceV2",
    "_Send",
    "Send",
    "Recv",
    "DebugIdentityV2",
    "LoadAndRemapMatrix",
    "Timestamp",
  }
  assert not outside & allowed
  assert not [
    op for op in allowed if "Dataset" in op or "Iterator" in op.replace("IteratorGetNext", "")
  ]
  # Computation and own state that real exports use.
  assert {
    "MatMul",
    "Conv2D",
    "FusedBatchNormV3",
    "ReadVariableOp",
    "LookupTableFindV2",
    "StatefulPartitionedCall",
    "StringSplitV2",
    "RandomUniform",
    "XlaCallModule",
    "WordpieceTokenizeWithOffsets",
  } <= allowed


def test_a_module_that_rewrites_its_weights_when_called_cannot_poison_later_rules(tmp_path):
  import tensorflow as tf

  from hubkit.checker import runner
  from hubkit.checker.context import Context

  # Every training-mode call overwrites the weights: on the one load the rules
  # share, later rules would judge the poisoned values.
  obj = tf.train.Checkpoint()
  obj.w = tf.Variable([[1.0], [2.0], [3.0]])

  def call(x, training=False):
    if training:
      obj.w.assign(tf.fill([3, 1], 666.0))
    return tf.matmul(x, obj.w)

  obj.__call__ = tf.function(call)
  for training in (True, False):
    obj.__call__.get_concrete_function(hostile_modules.SPEC, training=training)
  obj.variables, obj.trainable_variables, obj.regularization_losses = [obj.w], [obj.w], []
  path = str(tmp_path / "poisoner")
  tf.saved_model.save(obj, path)

  ctx = Context(path, path)
  rules = {r.id: r for r in runner.rules()}
  done = {r: "pass" for r in rules}
  for rule_id in ("behavior.training_mode", "consumer.hub_keras_layer", "roundtrip.reexport"):
    runner.run_rules(ctx, [rules[rule_id]], done)
    # Each rule ran training calls; the next one starts from the load.
    np.testing.assert_array_equal(ctx.obj.w.numpy(), [[1.0], [2.0], [3.0]], err_msg=rule_id)
  assert ctx.figures["seconds"].keys() >= {"behavior.training_mode", "roundtrip.reexport"}


def test_a_function_named_inside_a_function_attribute_is_scanned(tmp_path):
  # A callee instantiated with a function-valued attribute runs that function:
  # an op type hidden there (nested in the attribute's own attributes) is a
  # finding like one named directly.
  path = hubkit.export_module("mul", str(tmp_path / "mul"))

  def hide_write_file(proto):
    library = proto.meta_graphs[0].graph_def.library.function
    plain = next(f for f in library if not any(n.op == "RestoreV2" for n in f.node_def))
    node = plain.node_def.add(name="nested", op="PartitionedCall")
    node.attr["f"].func.name = plain.signature.name
    node.attr["f"].func.attr["g"].func.name = "WriteFile"

  hostile_modules._edit_proto(path, hide_write_file)
  findings = ops.scan(path)[0]
  assert [(f.op, f.why) for f in findings] == [
    ("WriteFile", "calls a function the module does not define")
  ]
  with pytest.raises(ops.UnsafeModuleError, match="WriteFile"):
    hubkit.load(path)


def _as_tensorflow_hub_left_it(module_cache, url, module):
  """A cache entry as tensorflow_hub writes one: the folder and its descriptor."""
  os.makedirs(module_cache.cache_dir, exist_ok=True)
  path = module_cache.path_for(url)
  shutil.copytree(module, path, symlinks=True)
  with open(path + ".descriptor.txt", "w") as f:
    f.write(f"Module: {url}\nDownload Time: now\nDownloader Hostname: h (PID:1)")
  return path


def test_an_unsafe_entry_of_another_client_is_not_adopted(corpus, fresh_cache, tmp_path):
  hostile, marker = corpus["call_writes"]
  module_cache = hubkit.ModuleCache()
  url = "http://127.0.0.1:9/me/hub-left-it/1"  # nothing listens on port 9
  path = _as_tensorflow_hub_left_it(module_cache, url, hostile)
  with pytest.raises(hubkit.FetchError, match="cannot reach"):
    hubkit.load(url)
  assert not os.path.exists(path + ".manifest.json") and not os.path.exists(marker)


def test_an_entry_with_a_link_or_stray_file_is_not_adopted(good_module, fresh_cache, tmp_path):
  module_cache = hubkit.ModuleCache()
  outside = tmp_path / "outside.txt"
  outside.write_text("secret")
  for name, plant in (
    ("link", lambda p: os.symlink(outside, os.path.join(p, "assets", "vocab.txt"))),
    ("stray", lambda p: shutil.copy(outside, os.path.join(p, "run.sh"))),
  ):
    url = f"http://127.0.0.1:9/me/{name}/1"
    path = _as_tensorflow_hub_left_it(module_cache, url, good_module)
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    plant(path)
    with pytest.raises(hubkit.FetchError, match="cannot reach"):
      hubkit.resolve(url)
    assert not os.path.exists(path + ".manifest.json")
    assert outside.read_text() == "secret"
