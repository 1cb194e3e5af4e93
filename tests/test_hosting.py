"""Tests for hubkit publish and the registry server (a real HTTP server on 127.0.0.1)."""

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

import hubkit
from hubkit import cli
from hubkit import modules
from hubkit.registry import http_server
from hubkit.utils.digest import sha256_file


@pytest.fixture(scope="module")
def published(tmp_path_factory):
  base = tmp_path_factory.mktemp("registry")
  one = modules.export_module("mul", str(base / "mul"), config={"dim": 2})
  other = modules.export_module("mul", str(base / "mul3"), config={"dim": 3})
  root = str(base / "root")
  archive = hubkit.publish_module(one, root, "me/mul/1")
  return {"root": root, "module": one, "other": other, "archive": archive}


def _get(url, method="GET"):
  return urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10)


def test_publish_layout_and_immutability(published, capsys):
  root = published["root"]
  model_dir = os.path.join(root, "me", "mul")
  # A static tree: the handle path is the archive itself (static servers
  # ignore ?tf-hub-format=compressed), its digest and other files beside it.
  assert sorted(os.listdir(model_dir)) == ["1", "1.d", "1.sha256", "1.tar.gz", "index.html"]
  assert published["archive"] == os.path.join(model_dir, "1.tar.gz")
  assert sorted(os.listdir(os.path.join(model_dir, "1.d"))) == [
    "README.md",
    "index.html",
    "model-instance-metadata.json",
  ]
  with open(os.path.join(model_dir, "1.sha256")) as f:
    assert f.read() == sha256_file(os.path.join(model_dir, "1")) + "  1\n"
  with (
    open(os.path.join(model_dir, "1.tar.gz"), "rb") as a,
    open(os.path.join(model_dir, "1"), "rb") as b,
  ):
    assert a.read() == b.read()
  with open(os.path.join(root, "index.json")) as f:
    assert json.load(f) == {"modules": [{"handle": "me/mul", "versions": [1]}]}
  version_dir = os.path.join(model_dir, "1.d")
  assert hubkit.validate_card(os.path.join(version_dir, "README.md")) == []
  # The same content again is a no-op; other content under the same handle is refused.
  assert hubkit.publish_module(published["module"], root, "me/mul/1") == published["archive"]
  with pytest.raises(hubkit.UsageError, match="already published with different content.*me/mul/2"):
    hubkit.publish_module(published["other"], root, "me/mul/1")
  assert (
    cli.main(["hubkit", "publish", published["other"], f"--root={root}", "--handle=Me/Mul/one"])
    == 2
  )
  assert "must be publisher/name/version" in capsys.readouterr().err
  assert (
    cli.main(
      [
        "hubkit",
        "publish",
        published["other"],
        f"--root={root}",
        "--handle=me/mul/2",
        "--allow_breaking",  # dim 2 -> 3 breaks consumers of version 1
      ]
    )
    == 0
  )
  with open(os.path.join(root, "me", "mul", "2.d", "diff.json")) as f:
    assert json.load(f)["breaking"] is True
  with open(os.path.join(root, "index.json")) as f:
    assert json.load(f) == {"modules": [{"handle": "me/mul", "versions": [2, 1]}]}
  assert not [n for n in os.listdir(os.path.join(root, "me", "mul")) if n.endswith(".tmp")]


def test_server_speaks_the_hosting_protocol(published):
  with open(published["archive"], "rb") as f:
    body = f.read()
  with http_server.serving(published["root"]) as server:
    url = f"{server.url}/me/mul/1"
    head = _get(url + "?tf-hub-format=compressed", "HEAD")
    assert head.status == 200 and head.read() == b""
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert server.downloads["me/mul/1"] == 0  # HEAD is not a download
    get = _get(url + "?tf-hub-format=compressed")
    assert get.read() == body and server.downloads["me/mul/1"] == 1
    assert _get(url).read().decode().startswith("# Module me/mul/1")
    for path, code, text in [
      ("/me/mul/9", 404, b"no module published as me/mul/9"),
      ("/me/../../etc/passwd", 400, b"no module at"),
      ("/%2e%2e/%2e%2e/etc", 400, b"no module at"),
      ("/me/mul/1?tf-hub-format=uncompressed", 400, b"use tf-hub-format=compressed"),
    ]:
      with pytest.raises(urllib.error.HTTPError) as error:
        _get(server.url + path)
      assert error.value.code == code and text in error.value.read(), path


def test_serve_command_runs_until_stopped(published):
  proc = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "from hubkit.cli import run; run()",
      "serve",
      f"--root={published['root']}",
      "--port=0",
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  try:
    line = proc.stdout.readline()
    assert line.startswith("serving ") and " at http://127.0.0.1:" in line
    url = line.split(" at ")[1].strip()
    assert _get(f"{url}/me/mul/1?tf-hub-format=compressed").status == 200
  finally:
    proc.terminate()
    proc.wait(timeout=10)


def test_serve_refuses_missing_root(tmp_path, capsys):
  assert cli.main(["hubkit", "serve", f"--root={tmp_path / 'nope'}"]) == 2
  assert "is not a directory" in capsys.readouterr().err
