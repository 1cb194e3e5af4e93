"""`hubkit info`, the one module reader behind it, and the one hubkit.json writer."""

import json
import os

import pytest
import tensorflow as tf

import helpers
import hostile_modules
import hubkit
from hubkit.registry import card
from hubkit.module import check_records
from hubkit import cli
from hubkit.module import metadata
from hubkit import modules
from hubkit.module import reexport
from hubkit.checker import rule_table
from hubkit.safety import ops


@pytest.fixture(scope="module")
def text_module(tmp_path_factory):
  return modules.export_module("text_embedding", str(tmp_path_factory.mktemp("info") / "text"))


def test_info_describes_a_module_from_one_load(text_module, capsys):
  info = hubkit.module_info(text_module)
  assert info["inputs"] == [{"dtype": "string", "shape": [None]}]
  assert info["outputs"] == {"dtype": "float32", "shape": [None, 16]}
  assert info["takes_training"] is True and info["required_arguments"] == []
  table = tf.saved_model.load(text_module).embeddings
  assert info["num_parameters"] == table.shape.num_elements()
  assert info["variable_bytes"] == table.shape.num_elements() * 4
  assert info["signatures"]["serving_default"]["inputs"] == {
    "inputs": {"dtype": "string", "shape": [None]}
  }
  assert list(info["assets"]) == ["assets/vocab.txt"]
  assert info["provenance"]["source"]["kind"] == "module_library"
  assert info["custom_ops"] == [] and info["load_error"] is None
  assert cli.main(["hubkit", "info", text_module]) == 0
  out = capsys.readouterr().out
  assert "string [None]" in out and "float32 [None, 16]" in out and "vocab.txt" in out
  assert "none recorded" in out
  assert cli.main(["hubkit", "info", text_module, "--json"]) == 0
  assert json.loads(capsys.readouterr().out)["num_variables"] == info["num_variables"]


def test_info_reads_archives_and_refuses_unsafe_modules(text_module, tmp_path, capsys):
  archive = hubkit.pack_module(text_module, str(tmp_path / "t.tar.gz"))
  assert hubkit.module_info(archive)["outputs"]["shape"] == [None, 16]
  err = helpers.cli_error(capsys, ["info", str(tmp_path / "missing")])
  assert "does not exist" in err
  marker = str(tmp_path / "marker")
  hostile_modules.call_writes(str(tmp_path / "hostile"), marker)
  with pytest.raises(ops.UnsafeModuleError, match="WriteFile"):
    hubkit.module_info(str(tmp_path / "hostile"))
  assert not os.path.exists(marker)


def test_info_shows_the_last_check(tmp_path, capsys):
  module = modules.export_module("mul", str(tmp_path / "mul"), config={"dim": 2})
  assert check_records.load(module) is None
  assert cli.main(["hubkit", "check", module]) == 0
  capsys.readouterr()
  record = check_records.load(module)
  assert record["conforms"] is True and record["failed"] == []
  assert cli.main(["hubkit", "info", module]) == 0
  assert "conforms" in capsys.readouterr().out.split("last check")[1]
  # The record follows the content, not the path: a copy finds it, a change does not.
  archive = hubkit.pack_module(module, str(tmp_path / "mul.tar.gz"))
  assert hubkit.module_info(archive)["last_check"]["conforms"] is True


def test_reexported_text_module_keeps_its_interface_record(text_module, tmp_path):
  obj = tf.saved_model.load(text_module)
  path = reexport.export_loaded_module(obj, str(tmp_path / "again"), {"source": {"kind": "t"}})
  before, after = metadata.read_metadata(text_module), metadata.read_metadata(path)
  for key in ("inputs", "outputs", "takes_training", "num_variables", "signatures"):
    assert after[key] == before[key], key
  assert card.guess_task(after) == "text-embedding"


def test_a_rule_that_returns_a_tuple_is_not_a_pass(tmp_path):
  module = modules.export_module("mul", str(tmp_path / "mul"), config={"dim": 2})

  @rule_table.rule("test.tuple", "returns a tuple", fix="return a message", static=True)
  def returns_tuple(ctx):
    return ("pass", "looks fine")

  try:
    report = hubkit.check_module(module, unconfined=True)
  finally:
    rule_table.RULES[:] = [r for r in rule_table.RULES if r.id != "test.tuple"]
  result = report.result("test.tuple")
  assert result.status == "fail" and "returned tuple" in result.message
  assert not report.conforms


def test_cli_names_flags_where_the_library_names_arguments():
  from hubkit.commands import finetune as finetune_command

  assert (
    cli._as_flags("`keras_version`=4 is wrong; pass `overwrite`, see `training`", finetune_command)
    == "--keras=4 is wrong; pass --overwrite, see `training`"
  )
