"""Tests for the `hubkit` dispatcher: help, unknown commands, bad flags."""

import subprocess
import sys

import helpers
from hubkit import cli


def test_help_lists_every_command(capsys):
  assert cli.main(["hubkit", "--help"]) == 0
  out = capsys.readouterr().out
  for name in cli.COMMANDS:
    assert f"  {name}" in out


def test_no_command_prints_usage_and_fails(capsys):
  assert cli.main(["hubkit"]) == 2
  assert "usage: hubkit <command>" in capsys.readouterr().out


def test_unknown_command_names_valid_ones(capsys):
  err = helpers.cli_error(capsys, ["exprot-module"])
  assert "unknown command 'exprot-module'" in err and "export-module" in err


def test_bad_flag_is_one_line_exit_2(capsys):
  err = helpers.cli_error(capsys, ["demo", "--epochs=zero"])
  assert "hubkit demo --help" in err


def test_command_help_shows_its_flags(capsys):
  assert cli.main(["hubkit", "demo", "--help"]) == 0
  out = capsys.readouterr().out
  assert "--workdir" in out and "--epochs" in out


def test_stray_positional_argument_is_refused(capsys):
  assert cli.main(["hubkit", "demo", "oops"]) == 2
  assert "unexpected argument(s) oops" in capsys.readouterr().err


def test_console_entry_point_runs():
  # The installed console script, not the in-process dispatcher.
  proc = subprocess.run(
    [sys.executable, "-c", "from hubkit.cli import run; run()", "--help"],
    capture_output=True,
    text=True,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr
  assert "export-keras" in proc.stdout


def test_check_shows_each_rule_live_on_a_terminal_only(tmp_path, capsys, monkeypatch):
  from hubkit import modules

  module = modules.export_module("mul", str(tmp_path / "mul"), config={"dim": 2})
  (tmp_path / "mul" / "notes.txt").write_text("stray")  # fails a static rule: fast
  assert cli.main(["hubkit", "check", module]) == 1
  piped = capsys.readouterr()
  assert "layout.saved_model" in piped.out and "layout.saved_model" not in piped.err
  monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
  assert cli.main(["hubkit", "check", module]) == 1
  live = capsys.readouterr()
  lines = [l for l in live.err.splitlines() if l.startswith("  ")]
  assert lines[0].split()[:2] == ["layout.saved_model", "fail"] and lines[0].endswith(" s")
  assert any(l.split()[:2] == ["consumer.keras3_layer", "skip"] for l in lines)
  assert live.out == piped.out  # the final table is the same either way


def test_pack_never_starts_tensorflow(tmp_path):
  from hubkit import modules

  module = modules.export_module("mul", str(tmp_path / "mul"), config={"dim": 2})
  script = (
    "import sys; from hubkit import cli; "
    f"code = cli.main(['hubkit', 'pack', {module!r}, '--output={tmp_path / 'm.tar.gz'}']); "
    "print(code, 'tensorflow' in sys.modules)"
  )
  out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
  assert out.stdout.split()[-2:] == ["0", "False"], out.stdout + out.stderr
