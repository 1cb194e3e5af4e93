"""A sweep of bad inputs over every command, tried as a new user would.

Each case must end with one line on stderr naming the problem, the
documented exit code (2: bad input, 1: the job failed), no traceback, and
nothing written or deleted in the folders the user owns.
"""

import os
import socket

import numpy as np
import pytest

from hubkit import cli
from hubkit import modules
from hubkit.registry import publishing


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  base = tmp_path_factory.mktemp("bad_input")
  module = modules.export_module("mul", str(base / "module"), config={"dim": 3})
  (base / "empty.npz").write_bytes(b"")
  (base / "garbage.npz").write_bytes(b"this is not a zip file")
  (base / "garbage.json").write_text("{not json")
  (base / "list.json").write_text("[1, 2]")
  (base / "empty.csv").write_text("")
  (base / "notes.txt").write_text("a text file")
  (base / "garbage.keras").write_bytes(b"not a keras zip")
  np.savez(base / "wrong_shape.npz", inputs=np.ones((4, 7), np.float32))
  np.savez(base / "wrong_keys.npz", a=np.ones(3))
  np.savez(base / "nan.npz", x=np.full((8, 3), np.nan, np.float32), y=np.zeros(8))
  (base / "occupied").mkdir()
  (base / "folder.tar.gz").mkdir()
  (base / "binary.json").write_bytes(b"\xff\xfe\x00binary")
  (base / "binary.csv").write_bytes(b"label,x\n\xff\xfe\x00,1\n")
  (base / "occupied" / "precious.txt").write_text("keep me")
  root = base / "root"
  publishing.publish_module(module, str(root), "me/mul/1")
  return {"base": base, "module": module, "root": str(root)}


def _snapshot(folder):
  found = {}
  for dirpath, dirnames, filenames in os.walk(folder):
    for name in dirnames + filenames:
      full = os.path.join(dirpath, name)
      found[full] = None if os.path.isdir(full) else os.path.getsize(full)
  return found


def _cases(w):
  b, m = str(w["base"]), w["module"]
  return [
    # check
    (["check", f"{b}/missing"], 2, "does not exist"),
    (["check", f"{b}/notes.txt"], 2, "not a module archive"),
    (["check", m, f"--json={b}"], 2, "is a directory"),
    (["check", m, f"--json={b}/notes.txt/report.json"], 2, "is not a directory"),
    (["check", m, f"--inputs={b}/garbage.npz"], 2, "garbage.npz"),
    (["check", m, f"--reference={b}/missing.keras"], 2, "does not exist"),
    (["check", m, f"--reference={b}/garbage.keras"], 2, "garbage.keras"),
    (["check", m, f"--inputs={b}/wrong_shape.npz"], 2, "has shape [4, 7]"),
    (["check", "http://127.0.0.1:9/me/x/1"], 2, "cannot reach"),
    (["check", m, "--tolerance=-1"], 2, "tolerance"),
    (["check", m, "--no_such_flag"], 2, "no_such_flag"),
    # /proc refuses new files even to root: hubkit's temporary sibling must not
    # stand in for the path and flag the user gave.
    (["check", m, "--json=/proc/hubkit_r.json"], 2, "cannot write /proc/hubkit_r.json (--json)"),
    # export-module
    (["export-module", "--module=nope", f"--export_dir={b}/out"], 2, "nope"),
    (["export-module", "--module=mul", f"--export_dir={b}/occupied"], 2, "already exists"),
    (["export-module", "--module=mul", f"--export_dir={b}/out", "--config={not json"], 2, "config"),
    (
      ["export-module", "--module=mul", f"--export_dir={b}/out", '--config={"dim": "x"}'],
      2,
      "must be int",
    ),
    (
      [
        "export-module",
        "--module=mlp_feature_vector",
        f"--export_dir={b}/out",
        '--config={"dropout_rate": 1}',
      ],
      2,
      "dropout_rate",
    ),
    (
      ["export-module", "--module=mul", f"--export_dir={b}/out", f"--weights={b}/empty.npz"],
      2,
      "empty.npz",
    ),
    (
      ["export-module", "--module=mul", f"--export_dir={b}/out", f"--name_map={b}/garbage.json"],
      2,
      "name_map",
    ),
    (
      ["export-module", "--module=mul", "--export_dir=/proc/hubkit_x"],
      2,
      "cannot write /proc/hubkit_x (--export_dir)",
    ),
    (
      ["export-module", "--module=mul", f"--export_dir={b}/out", f"--name_map={b}/binary.json"],
      2,
      "binary.json is not UTF-8 text",
    ),
    # export-keras
    (["export-keras", f"--model={b}/missing.keras", f"--export_dir={b}/out"], 2, "does not exist"),
    (["export-keras", f"--model={b}/notes.txt", f"--export_dir={b}/out"], 2, "notes.txt"),
    # pack
    (["pack", m, f"--output={b}/out.zip"], 2, ".tar.gz"),
    (["pack", m, f"--output={b}/m.tar.gz", "--task=text-embedding"], 2, "--handle"),
    (["pack", f"{b}/missing", f"--output={b}/m.tar.gz"], 2, "missing"),
    (["pack", m, f"--output={b}/folder.tar.gz"], 2, "folder.tar.gz (--output) already exists"),
    (
      ["pack", m, f"--output={b}/folder.tar.gz", "--overwrite"],
      2,
      "folder.tar.gz (--output) is a directory",
    ),
    # validate-card
    (["validate-card", f"{b}/missing.md"], 2, "missing.md"),
    # publish
    (["publish", m, f"--root={b}/notes.txt", "--handle=me/x/1"], 2, "notes.txt"),
    (["publish", m, f"--root={b}/r", "--handle=bad handle"], 2, "handle"),
    # serve
    (["serve", f"--root={b}/missing"], 2, "missing"),
    (["serve", f"--root={w['root']}", "--host=256.1.1.1"], 2, "256.1.1.1"),
    # cache
    (["cache"], 2, "needs an action"),
    (["cache", "NOSUCH"], 2, "unknown action 'NOSUCH'"),
    (["cache", "rm", "not-cached"], 2, "not in the cache"),
    (["cache", "ls", f"--cache_dir={b}/notes.txt"], 2, "notes.txt"),
    # finetune
    (
      [
        "finetune",
        f"--module={m}",
        f"--data={b}/garbage.npz",
        "--head=classification:2",
        f"--export_dir={b}/out",
      ],
      2,
      "garbage.npz",
    ),
    (
      [
        "finetune",
        f"--module={m}",
        f"--data={b}/empty.csv",
        "--head=classification:2",
        f"--export_dir={b}/out",
      ],
      2,
      "empty.csv",
    ),
    (
      [
        "finetune",
        f"--module={m}",
        f"--data={b}/wrong_keys.npz",
        "--head=classification:2",
        f"--export_dir={b}/out",
      ],
      2,
      "wrong_keys.npz",
    ),
    (
      [
        "finetune",
        f"--module={m}",
        f"--data={b}/nan.npz",
        "--head=regression:1",
        f"--export_dir={b}/out",
      ],
      2,
      "non-finite",
    ),
    (
      [
        "finetune",
        f"--module={m}",
        f"--data={b}/nan.npz",
        "--head=softmax",
        f"--export_dir={b}/out",
      ],
      2,
      "--head",
    ),
    (
      [
        "finetune",
        f"--module={m}",
        f"--data={b}/binary.csv",
        "--head=classification:2",
        f"--export_dir={b}/out",
      ],
      2,
      "binary.csv (--data) is not UTF-8 text",
    ),
    (
      [
        "finetune",
        f"--module={m}",
        f"--data={b}/nan.npz",
        "--head=classification:2",
        f"--export_dir={b}/out",
        "--classifier_dir=/proc/hubkit_c",
      ],
      2,
      "cannot write /proc/hubkit_c (--classifier_dir)",
    ),
    (
      [
        "finetune",
        f"--module={m}",
        f"--data={b}/nan.npz",
        "--head=classification:2",
        f"--export_dir={b}/out",
        f"--tensorboard_dir={b}/notes.txt",
      ],
      2,
      "tensorboard_dir",
    ),
    # demo
    (["demo", "--workdir=/proc/hubkit_demo"], 2, "/proc/hubkit_demo (--workdir)"),
    (["demo", f"--workdir={b}/occupied"], 2, "did not write"),
    # unknown command
    (["frobnicate"], 2, "unknown command"),
  ]


def test_every_case_fails_cleanly(world, capsys):
  failures = []
  for args, code, needle in _cases(world):
    before = _snapshot(world["base"])
    got = cli.main(["hubkit"] + args)
    captured = capsys.readouterr()
    err_lines = [l for l in captured.err.splitlines() if l.strip()]
    problems = []
    if got != code:
      problems.append(f"exit {got}, expected {code}")
    if "Traceback" in captured.err + captured.out:
      problems.append("printed a traceback")
    if len(err_lines) != 1 or "error:" not in err_lines[0]:
      problems.append(f"stderr is not one error line: {err_lines[-3:]}")
    elif needle.lower() not in err_lines[0].lower():
      problems.append(f"message does not name {needle!r}: {err_lines[0]}")
    elif ".tmp" in err_lines[0]:
      problems.append(f"message names a temporary file: {err_lines[0]}")
    if _snapshot(world["base"]) != before:
      problems.append("the folder changed")
    if problems:
      failures.append(f"hubkit {' '.join(args)}: {'; '.join(problems)}")
  assert not failures, "\n".join(failures)
  assert (world["base"] / "occupied" / "precious.txt").read_text() == "keep me"


def test_serve_on_a_busy_port_is_one_line(world, capsys):
  with socket.socket() as busy:
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    assert cli.main(["hubkit", "serve", f"--root={world['root']}", f"--port={port}"]) == 2
  err = capsys.readouterr().err
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and str(port) in err


def test_outputs_get_the_users_umask(world, tmp_path):
  old = os.umask(0o022)
  try:
    export = modules.export_module("mul", str(tmp_path / "shared"), config={"dim": 2})
  finally:
    os.umask(old)
  assert os.stat(export).st_mode & 0o777 == 0o755
  saved_model = os.path.join(export, "saved_model.pb")
  assert os.stat(saved_model).st_mode & 0o044 == 0o044  # readable by group and others


def test_unexpected_errors_are_one_line_unless_traceback_is_asked(world, capsys, monkeypatch):
  from hubkit.commands import validate_card

  def boom(args):
    raise RuntimeError("something nobody expected")

  monkeypatch.setattr(validate_card, "main", boom)
  assert cli.main(["hubkit", "validate-card", "x.md"]) == 1
  err = capsys.readouterr().err
  assert "RuntimeError: something nobody expected" in err and "--traceback" in err
  assert len(err.strip().splitlines()) == 1
  with pytest.raises(RuntimeError):
    cli.main(["hubkit", "validate-card", "x.md", "--traceback"])


def test_refusals_leave_no_empty_folders(world, tmp_path, monkeypatch):
  import hubkit

  stray = tmp_path / "stray_module"
  modules.export_module("mul", str(stray), config={"dim": 2})
  (stray / "notes.txt").write_text("not allowed in a module")
  root = tmp_path / "root"
  with pytest.raises(hubkit.UsageError):
    hubkit.publish_module(str(stray), str(root), "me/stray/1")
  assert not root.exists()
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
  with pytest.raises(hubkit.HubkitError):
    hubkit.resolve("http://127.0.0.1:9/me/unreachable/1")
  assert not (tmp_path / "cache").exists()
  assert (
    cli.main(
      [
        "hubkit",
        "export-module",
        "--module=mul",
        f"--export_dir={tmp_path}/o",
        f"--name_map={tmp_path}/map.json",
      ]
    )
    == 2
  )
  assert not (tmp_path / "o").exists()


def test_finetune_output_paths_are_checked_before_training(world, tmp_path):
  data = str(tmp_path / "d.npz")
  np.savez(data, x=np.ones((8, 3), np.float32), y=np.arange(8) % 2)
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  code = cli.main(
    [
      "hubkit",
      "finetune",
      f"--module={world['module']}",
      f"--data={data}",
      "--head=classification:2",
      f"--export_dir={tmp_path}/out",
      f"--classifier_dir={blocker}/classifier",
    ]
  )
  assert code == 2
  assert not (tmp_path / "out").exists()


def test_an_unwritable_report_is_refused_before_the_check_runs(world, capsys):
  assert cli.main(["hubkit", "check", world["module"], "--json=/proc/hubkit_r.json"]) == 2
  captured = capsys.readouterr()
  assert captured.out == "" and "(--json)" in captured.err
