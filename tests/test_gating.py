"""Gating a model repository like code: hubkit's pre-commit hook, run by the
real pre-commit tool, and the CI workflow users copy (docs/ci/)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

import broken_modules
from hubkit.checker import check

REPO = pathlib.Path(__file__).resolve().parents[1]


def _git(cwd, *args):
  subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_changed_files_name_the_modules_that_hold_them(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  broken_modules.valid("models/a")
  broken_modules.valid("models/b")
  (tmp_path / "models" / "m.tar.gz").write_bytes(b"")
  (tmp_path / "README.md").write_text("docs")
  changed = [
    "models/a/saved_model.pb",
    "models/a/variables/variables.index",
    "README.md",
    "models/b/assets.extra/hubkit.json",
    "models/m.tar.gz",
  ]
  assert check.modules_holding(changed) == ["models/a", "models/b", "models/m.tar.gz"]
  assert check.modules_holding(["README.md"]) == []


@pytest.mark.slow
def test_the_pre_commit_hook_passes_a_good_module_and_stops_a_broken_one(tmp_path):
  if shutil.which("git") is None:
    pytest.skip("git is needed")
  pre_commit = [sys.executable, "-m", "pre_commit"]
  repo = tmp_path / "models"
  repo.mkdir()
  _git(repo, "init", "-q")
  _git(repo, "config", "user.email", "ci@example.com")
  _git(repo, "config", "user.name", "ci")
  broken_modules.valid(str(repo / "good"))
  broken_modules.stray_file(str(repo / "broken"))
  (repo / "notes.md").write_text("not a module")
  _git(repo, "add", "-A")
  env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))
  # hubkit's own hook definition (.pre-commit-hooks.yaml), through try-repo.
  hook = [*pre_commit, "try-repo", str(REPO), "hubkit-check", "--verbose", "--files"]

  def run(*files):
    return subprocess.run(
      [*hook, *files], check=False, cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )

  good = run("good/saved_model.pb", "good/variables/variables.index", "notes.md")
  assert good.returncode == 0, good.stdout + good.stderr
  assert "Passed" in good.stdout and "conforms" in good.stdout
  both = run("good/saved_model.pb", "broken/notes.txt")
  assert both.returncode == 1, both.stdout + both.stderr
  assert "Failed" in both.stdout
  assert "layout.saved_model" in both.stdout and "notes.txt" in both.stdout
  assert "2 modules checked, 1 do not conform" in both.stdout
  unrelated = run("notes.md")
  assert unrelated.returncode == 0 and "no module among the changed files" in unrelated.stdout


def test_the_hook_definition_and_the_ci_workflow_are_valid():
  hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
  assert [h["id"] for h in hooks] == ["hubkit-check"]
  assert hooks[0]["entry"].split() == ["hubkit", "check", "--changed"]
  check_jsonschema = pytest.importorskip("check_jsonschema")
  vendor = pathlib.Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
  workflow = REPO / "docs" / "ci" / "hubkit-check.yml"
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "check_jsonschema",
      "--schemafile",
      str(vendor / "github-workflows.json"),
      str(workflow),
    ],
    check=False,
    capture_output=True,
    text=True,
  )
  assert result.returncode == 0, result.stdout + result.stderr
  steps = yaml.safe_load(workflow.read_text())["jobs"]["check"]["steps"]
  commands = [s.get("run", "") for s in steps]
  assert any(
    "hubkit check $MODULES --sarif=hubkit.sarif --junit=hubkit-junit.xml" in c for c in commands
  )
