"""End-to-end test of the main job on the bundled digits example."""

import json
import os

import pytest

import hubkit
from hubkit import cli
from hubkit.module import layout


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
  workdir = tmp_path / "demo"
  assert cli.main(["hubkit", "demo", f"--workdir={workdir}", "--epochs=8", "--verbose=0"]) == 0
  out = capsys.readouterr().out
  module_dir = workdir / "feature_extractor"
  assert str(module_dir) in out
  assert (workdir / "classifier" / "saved_model.pb").exists()
  assert "conforms to the Reusable SavedModel interface" in out
  assert "/hubkit/digits-features/1: downloaded 1 time(s)" in out
  assert f"check of the re-export: {workdir / 'feature_extractor_finetuned'}: conforms" in out
  tuned = hubkit.read_metadata(str(workdir / "feature_extractor_finetuned"))
  assert tuned["source"]["parent"].endswith("/hubkit/digits-features/1")
  assert tuned["metrics"]["val_accuracy"] > 0.8
  assert (workdir / "registry" / "hubkit" / "digits-features" / "1.tar.gz").exists()
  assert str(workdir / "registry" / "index.html") in out
  # The version's page shows the check the demo ran before publishing.
  page = (workdir / "registry" / "hubkit" / "digits-features" / "1.d" / "index.html").read_text()
  assert "conforms to the Reusable SavedModel interface" in page
  assert "Digit features learnt on digits 0-4." in page
  assert layout.disallowed_paths(str(module_dir)) == []
  with open(module_dir / layout.METADATA_RELPATH) as f:
    record = json.load(f)
  assert record["outputs"]["shape"] == [None, 32]
  accuracies = {
    " ".join(line.split()[:-1]): float(line.split()[-1])
    for line in out.split("accuracy (held-out test split):")[1].splitlines()
    if line.startswith("  ")
  }
  assert len(accuracies) == 3, out
  source, frozen, finetuned = accuracies.values()
  # Chance is 20%; the digits are easy once features are learnt, and
  # fine-tuning the reused module must beat keeping it frozen.
  assert source > 0.9 and finetuned > 0.9 and frozen > 0.4, accuracies
  assert finetuned > frozen, accuracies
  assert not any(name.endswith(".tmp") for name in os.listdir(workdir))
