"""Tests for `hubkit check`: good modules conform, each broken one is flagged
by exactly the rule meant, and the command's exit codes and outputs."""

import json
import os
import tarfile

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import broken_modules
import canonical_modules
import helpers
import hubkit
from hubkit.checker import runner
from hubkit import cli
from hubkit import modules
from hubkit.module import sample_inputs

SMALL = {
  "mul": {"dim": 3},
  "mlp_feature_vector": {"input_dim": 5, "hidden_units": [6, 4], "dropout_rate": 0.3},
  "image_feature_vector": {"filters": [4, 6], "num_features": 5},
  "text_embedding": {"vocabulary": ["hello", "world", "cat"], "dim": 4, "l2": 0.1},
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return tmp_path_factory.mktemp("checker")


@pytest.fixture(scope="module")
def valid_module(workdir):
  return broken_modules.valid(str(workdir / "valid"))


def _statuses(report, status):
  return {r.id for r in report.results if r.status == status}


def test_rule_ids_are_the_documented_ones():
  expected = {
    "layout.saved_model",
    "interface.call",
    "interface.training_traces",
    "interface.variables",
    "interface.regularization_losses",
    "behavior.deterministic_inference",
    "behavior.training_mode",
    "behavior.parity",
    "consumer.hub_keras_layer",
    "consumer.keras3_layer",
    "consumer.distributed",
    "roundtrip.reexport",
    "lint.logits",
    "security.ops",
    "serving.ops",
    "serving.signature",
    "serving.rest",
  }
  assert expected <= set(runner.RULE_IDS)
  with open(os.path.join(os.path.dirname(__file__), "..", "docs", "rules.md")) as f:
    doc = f.read()
  for rule_id in runner.RULE_IDS:
    assert f"`{rule_id}`" in doc, f"docs/rules.md does not document {rule_id}"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_library_module_conforms(workdir, name):
  path = modules.export_module(name, str(workdir / name), config=SMALL[name])
  # Every library module is also ready for TF Serving: a named, equal
  # serving_default and a REST round trip.
  report = hubkit.check_module(path, require=["serving"])
  assert report.conforms, report.table()
  assert _statuses(report, "fail") == set()
  assert {
    "serving.ops",
    "serving.signature",
    "serving.rest",
    "consumer.hub_keras_layer",
    "consumer.keras3_layer",
    "consumer.distributed",
    "roundtrip.reexport",
    "security.ops",
    "interface.training_traces",
  } <= _statuses(report, "pass"), report.table()
  assert report.figures["variables"] == len(modules.build_module(name, **SMALL[name]).variables)


def _keras_models():
  tk_in = tf_keras.Input((4,))
  tk_h = tf_keras.layers.Dense(
    5, activation="relu", name="features", kernel_regularizer=tf_keras.regularizers.L2(0.01)
  )(tf_keras.layers.BatchNormalization()(tk_in))
  k3_in = keras.Input((4,))
  k3_h = keras.layers.Dense(
    5, activation="relu", name="features", kernel_regularizer=keras.regularizers.L2(0.01)
  )(keras.layers.Dropout(0.2)(keras.layers.BatchNormalization()(k3_in)))
  return {
    "tf_keras": tf_keras.Model(tk_in, tf_keras.layers.Dense(2)(tk_h)),
    "keras3": keras.Model(k3_in, keras.layers.Dense(2)(k3_h)),
  }


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_exporter_outputs_conform_and_match_their_reference(workdir, flavour):
  model = _keras_models()[flavour]
  reference = str(workdir / f"{flavour}_reference")
  hubkit.export_keras_submodel(model, reference)
  path = hubkit.export_keras_submodel(
    model, str(workdir / f"{flavour}_piece"), output_layer="features"
  )
  report = hubkit.check_module(path)
  assert report.conforms, report.table()
  assert "behavior.training_mode" in _statuses(report, "pass")
  # The whole model is not the piece: parity against it must fail.
  mismatch = hubkit.check_module(path, reference=reference)
  assert mismatch.failed() == ["behavior.parity"]
  matching = hubkit.check_module(reference, reference=reference)
  assert matching.result("behavior.parity").status == "pass"
  assert matching.figures["parity_max_abs_diff"] <= 1e-5


@pytest.mark.parametrize("name", sorted(broken_modules.BROKEN))
def test_each_broken_module_is_flagged_by_exactly_its_rule(workdir, name, capsys):
  build, fails, warns = broken_modules.BROKEN[name]
  path = build(str(workdir / f"broken_{name}"))
  report = hubkit.check_module(path)
  assert set(report.failed()) == fails, report.table()
  # These hand-made modules have no serving_default; serving readiness has
  # its own tests (test_serving.py).
  interface_warnings = {w for w in _statuses(report, "warn") if not w.startswith("serving.")}
  assert interface_warnings == warns, report.table()
  code = cli.main(["hubkit", "check", path])
  assert code == (1 if fails else 0)
  out = capsys.readouterr().out
  for rule_id in fails:
    assert any(line.startswith(rule_id) and " fail " in line for line in out.splitlines())
  assert "fix: " in out if fails or warns else True


def test_json_report_and_exit_code_for_a_conforming_module(valid_module, tmp_path, capsys):
  report_path = tmp_path / "report.json"
  assert cli.main(["hubkit", "check", valid_module, f"--json={report_path}"]) == 0
  out = capsys.readouterr().out
  assert "conforms to the Reusable SavedModel interface" in out.splitlines()[-1]
  document = json.loads(report_path.read_text())
  assert set(document) == {
    "module",
    "conforms",
    "complete",
    "incomplete_reason",
    "checks",
    "figures",
  }
  assert document["conforms"] is True and document["module"] == valid_module
  assert document["complete"] is True and document["incomplete_reason"] is None
  assert "Landlock" in document["figures"]["confinement"]
  assert [c["id"] for c in document["checks"]] == [r.id for r in runner.rules()]
  for entry in document["checks"]:
    assert set(entry) == {"id", "title", "status", "message"}
    assert entry["status"] in ("pass", "fail", "warn", "skip")
  assert document["figures"]["variables"] == 2


def test_archives_are_checked_and_unsafe_ones_refused(valid_module, tmp_path, capsys):
  good = tmp_path / "good.tar.gz"
  with tarfile.open(good, "w:gz") as tar:
    tar.add(valid_module, arcname=".")
  assert hubkit.check_module(str(good)).conforms
  evil = tmp_path / "evil.tar.gz"
  helpers.write_tar(
    str(evil), [("saved_model.pb", "file", b"x"), ("../../outside.txt", "file", b"x")]
  )
  assert cli.main(["hubkit", "check", str(evil)]) == 2
  err = capsys.readouterr().err.strip()
  assert "'../../outside.txt' climbs out" in err and err.count("\n") == 0
  link = tmp_path / "link.tar.gz"
  helpers.write_tar(
    str(link), [("saved_model.pb", "file", b"x"), ("variables/variables.index", "symlink", b"")]
  )
  with pytest.raises(hubkit.UsageError, match="'variables/variables.index' is a symbolic link"):
    hubkit.check_module(str(link))
  truncated = tmp_path / "truncated.tar.gz"
  truncated.write_bytes(good.read_bytes()[:200])
  with pytest.raises(hubkit.UsageError, match="does not appear to be a valid module archive"):
    hubkit.check_module(str(truncated))
  assert not os.path.exists(tmp_path / "outside.txt")


def test_check_cannot_run_exits_2_with_one_line(valid_module, tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  cases = [
    (["hubkit", "check", str(tmp_path / "missing")], "does not exist"),
    (["hubkit", "check", str(tmp_path / "empty")], "holds no module"),
    (["hubkit", "check"], "needs a module path"),
    (["hubkit", "check", valid_module, "--inputs=/nonexistent.npz"], "does not exist"),
    (["hubkit", "check", valid_module, "--tolerance=-1"], "--tolerance"),
  ]
  for argv, message in cases:
    assert message in helpers.cli_error(capsys, argv[1:])


def test_inputs_file_overrides_generated_inputs(valid_module, tmp_path):
  good = tmp_path / "inputs.npz"
  np.savez(good, inputs=np.full([2, 3], 0.5, np.float32))
  report = hubkit.check_module(valid_module, inputs=str(good))
  assert report.conforms and report.figures["output_shapes"] == [[2, 1]]
  wrong = tmp_path / "wrong.npz"
  np.savez(wrong, a=np.zeros([2, 3], np.float32), b=np.zeros([2, 3], np.float32))
  with pytest.raises(hubkit.UsageError, match="lacks inputs"):
    hubkit.check_module(valid_module, inputs=str(wrong))


@pytest.mark.parametrize("name", sorted(canonical_modules.CANONICAL))
def test_modules_without_training_or_with_hyper_parameters_conform(workdir, name):
  path = canonical_modules.CANONICAL[name](str(workdir / f"canonical_{name}"))
  report = hubkit.check_module(path)
  assert report.conforms, report.table()
  traces = report.result("interface.training_traces")
  if name == "hyper_parameter_and_training":
    assert report.result("behavior.training_mode").status == "pass"
  else:
    assert "without a training argument" in traces.message
    assert report.result("behavior.training_mode").status == "skip"
  for rule_id in ("consumer.hub_keras_layer", "consumer.keras3_layer", "roundtrip.reexport"):
    assert report.result(rule_id).status == "pass", report.table()


def test_vocabulary_path_in_a_shared_name_is_a_warning_not_a_failure(tmp_path):
  import tensorflow as tf

  vocabulary = tmp_path / "vocab.txt"
  vocabulary.write_text("hello\nworld\n")
  obj = tf.train.Checkpoint()
  obj.table = helpers.vocabulary_table(str(vocabulary))
  obj.embeddings = tf.Variable(tf.ones([3, 2]))
  obj.variables, obj.trainable_variables = [obj.embeddings], [obj.embeddings]
  obj.regularization_losses = []
  obj.__call__ = tf.function(
    lambda words: tf.gather(obj.embeddings, obj.table.lookup(words) + 1),
    input_signature=[tf.TensorSpec([None], tf.string)],
  )
  path = str(tmp_path / "text")
  tf.saved_model.save(obj, path)
  vocabulary.unlink()  # as on another machine: the module needs only its asset
  report = hubkit.check_module(path)
  layout = report.result("layout.saved_model")
  assert layout.status == "warn" and str(vocabulary) in layout.message, layout.message
  assert report.conforms, report.table()
  assert report.result("consumer.keras3_layer").status == "pass"


def test_text_modules_get_sentences_of_their_own_words_and_a_warning_naming_the_empty_string(
  workdir,
):
  path = broken_modules.text_mean_of_no_words(str(workdir / "text_mean"))
  assert sample_inputs.vocabulary_words(path) == [
    "apple",
    "banana",
    "cherry",
    "river",
    "stone",
    "light",
  ]
  sentences = [
    s.decode() for s in sample_inputs.make_inputs(tf.TensorSpec([None], tf.string), path).numpy()
  ]
  assert all(2 <= len(s.split()) <= 5 for s in sentences), sentences
  report = hubkit.check_module(path)
  assert report.conforms, report.table()
  result = report.result("behavior.deterministic_inference")
  assert result.status == "warn" and "empty string input ''" in result.message
