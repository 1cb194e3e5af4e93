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
