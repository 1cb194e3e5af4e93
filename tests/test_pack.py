"""Tests for hubkit pack and the documentation cards."""

import json
import os
import tarfile

import pytest
import tensorflow as tf

import hubkit
from hubkit.registry import card
from hubkit import cli
from hubkit import modules


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
  return modules.export_module(
    "text_embedding",
    str(tmp_path_factory.mktemp("pack") / "text"),
    config={"vocabulary": ["a", "b"], "dim": 3},
  )


def test_pack_is_deterministic_and_rooted_at_the_savedmodel(module_dir, tmp_path):
  first = hubkit.pack_module(module_dir, str(tmp_path / "one.tar.gz"))
  os.utime(os.path.join(module_dir, "saved_model.pb"), (1, 1))  # times must not matter
  second = hubkit.pack_module(module_dir, str(tmp_path / "two.tar.gz"))
  with open(first, "rb") as a, open(second, "rb") as b:
    assert a.read() == b.read()
  with tarfile.open(first) as tar:
    members = tar.getmembers()
  names = [m.name for m in members]
  assert names == sorted(names) and "saved_model.pb" in names and "assets/vocab.txt" in names
  assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 and m.uname == "" for m in members)
  assert not any(n.startswith(("/", "./", "..")) for n in names)
  with open(first, "rb") as f:
    header = f.read(10)
  assert header[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0


def test_pack_refuses_bad_input(module_dir, tmp_path):
  with pytest.raises(hubkit.UsageError, match="must end in .tar.gz"):
    hubkit.pack_module(module_dir, str(tmp_path / "m.zip"))
  with pytest.raises(hubkit.UsageError, match="no saved_model.pb"):
    hubkit.pack_module(str(tmp_path), str(tmp_path / "m.tar.gz"))
  stray = tmp_path / "stray"
  tf.saved_model.save(tf.Module(), str(stray))
  (stray / "notes.txt").write_text("x")
  with pytest.raises(hubkit.UsageError, match="fails layout.saved_model: notes.txt"):
    hubkit.pack_module(str(stray), str(tmp_path / "m.tar.gz"))
  hubkit.pack_module(module_dir, str(tmp_path / "m.tar.gz"))
  with pytest.raises(hubkit.UsageError, match="already exists"):
    hubkit.pack_module(module_dir, str(tmp_path / "m.tar.gz"))
  assert sorted(os.listdir(tmp_path)) == ["m.tar.gz", "stray"]


def test_pack_cli_writes_a_valid_card_and_kaggle_metadata(module_dir, tmp_path, capsys):
  output = tmp_path / "out" / "text.tar.gz"
  assert (
    cli.main(
      [
        "hubkit",
        "pack",
        module_dir,
        f"--output={output}",
        "--handle=me/text/2",
        "--description=Tiny text embedding.",
        "--dataset=other",
        "--license=mit",
      ]
    )
    == 0
  )
  assert "sha256" in capsys.readouterr().out
  card_path = tmp_path / "out" / "text.md"
  text = card_path.read_text()
  assert text.splitlines()[0] == "# Module me/text/2"
  assert "<!-- asset-path: text.tar.gz -->" in text
  assert "<!-- task: text-embedding -->" in text and "<!-- fine-tunable: true -->" in text
  assert hubkit.validate_card(str(card_path)) == []
  kaggle = json.loads((tmp_path / "out" / "model-instance-metadata.json").read_text())
  assert kaggle["framework"] == "tensorFlow2" and kaggle["fineTunable"] is True
  assert kaggle["ownerSlug"] == "me" and kaggle["modelSlug"] == "text"
  assert kaggle["trainingData"] == ["other"] and kaggle["licenseName"] == "MIT"
  assert cli.main(["hubkit", "validate-card", str(card_path)]) == 0


VALID = """# Module me/model/1
A model.

<!-- asset-path: https://example.com/m.tar.gz -->
<!-- task: image-feature-vector -->
<!-- fine-tunable: true -->
<!-- format: saved_model_2 -->
"""


@pytest.mark.parametrize(
  "broken, message",
  [
    (VALID.replace("# Module me/model/1", "# Model me/model/1"), "line 1: must be '# Module"),
    (VALID.replace("A model.", ""), "line 2: must be a one-line description"),
    (VALID.replace("<!-- task: image-feature-vector -->\n", ""), "'<!-- task: ... -->' is missing"),
    (VALID.replace("saved_model_2", "onnx"), "line 7: format 'onnx' is not one of"),
    (VALID.replace("m.tar.gz", "m.zip"), "line 4: asset-path must end in .tar.gz"),
    (
      VALID + "<!-- asset-path: https://example.com/n.tar.gz -->\n",
      "line 8: asset-path appears 2 times",
    ),
    (VALID.replace("fine-tunable: true", "fine-tunable: maybe"), "line 6: fine-tunable must be"),
    (VALID + "<!-- colour: red -->\n", "line 8: unknown metadata key 'colour'"),
    (
      VALID.replace("image-feature-vector", "feature-vector"),
      "line 5: task 'feature-vector' is not a tfhub.dev tag value",
    ),
    (VALID + "<!-- license: Apache-2.0 -->\n", "line 8: license 'Apache-2.0' is not a tfhub"),
    (VALID + "<!-- dataset: toy -->\n", "line 8: dataset 'toy' is not a tfhub.dev tag value"),
    (VALID + "<!-- parent-model: me/m/1 -->\n", "line 8: unknown metadata key 'parent-model'"),
    (VALID + "Some text.\n", "line 8: only metadata lines may come before the first heading"),
    (
      VALID.replace("# Module", "# Lite").replace("m.tar.gz", "m.tflite"),
      "line 5: unknown metadata key 'task'",
    ),
  ],
)
def test_validate_card_names_each_problem_with_its_line(tmp_path, capsys, broken, message):
  path = tmp_path / "card.md"
  path.write_text(broken)
  problems = card.validate_card(str(path))
  assert any(message in p for p in problems), problems
  assert cli.main(["hubkit", "validate-card", str(path)]) == 1
  assert message in capsys.readouterr().out


def test_validate_card_valid_and_missing(tmp_path, capsys):
  path = tmp_path / "card.md"
  path.write_text(VALID)
  assert card.validate_card(str(path)) == []
  assert cli.main(["hubkit", "validate-card", str(tmp_path / "nope.md")]) == 2
  assert "cannot read card" in capsys.readouterr().err
