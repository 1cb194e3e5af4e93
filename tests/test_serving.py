"""Serving readiness: the serving.* rules, --require=serving, op packages."""

import os

import numpy as np
import pytest
import tensorflow as tf

import helpers
import hubkit
from hubkit.registry import card
from hubkit.module import interface
from hubkit.module import op_packages
from hubkit.checker import rules_serving
from hubkit.checker.context import Context
from hubkit.checker.rule_table import RuleFailed, RuleWarning
from hubkit.safety import ops

_SPEC = tf.TensorSpec([None, 3], tf.float32)


def _module(path, serving=None):
  """A conforming module; `serving(obj)` returns its serving signatures."""
  obj = tf.train.Checkpoint()
  obj.w = tf.Variable([[1.0], [2.0], [3.0]], name="w")
  obj.variables = [obj.w]
  obj.trainable_variables = [obj.w]
  obj.regularization_losses = []

  @tf.function
  def call(x, training=False):
    del training
    return tf.matmul(x, obj.w)

  obj.__call__ = call
  for mode in (True, False):
    call.get_concrete_function(_SPEC, training=mode)
  tf.saved_model.save(obj, path, signatures=serving(obj) if serving else None)
  return path


def _named(obj):
  return tf.function(lambda x: {"score": obj.__call__(x, training=False)}).get_concrete_function(
    _SPEC
  )


def _unnamed(obj):
  return tf.function(lambda x: [obj.__call__(x, training=False)]).get_concrete_function(_SPEC)


def _other(obj):
  return tf.function(
    lambda x: {"score": obj.__call__(x, training=False) + 1.0}
  ).get_concrete_function(_SPEC)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  root = tmp_path_factory.mktemp("serving")
  return {
    name: _module(str(root / name), serving)
    for name, serving in (
      ("none", None),
      ("named", _named),
      ("unnamed", _unnamed),
      ("other", _other),
    )
  }


def _context(path):
  return Context(path, path)


def test_a_named_signature_equal_to_call_passes_and_round_trips_rest(served):
  ctx = _context(served["named"])
  assert "equals __call__" in rules_serving.check_serving_signature(ctx)
  assert "equals a direct call" in rules_serving.check_serving_rest(ctx)


@pytest.mark.parametrize(
  "name, error, message",
  [
    ("unnamed", RuleWarning, r"inputs or outputs are unnamed \(output_0\)"),
    ("other", RuleFailed, r"differs from __call__\(training=False\) by 1"),
  ],
)
def test_unnamed_or_different_signatures_are_reported(served, name, error, message):
  with pytest.raises(error, match=message):
    rules_serving.check_serving_signature(_context(served[name]))


def test_rest_rows_carry_binary_strings_as_base64():
  rows = rules_serving._rows({"text": np.array([b"\xff\x00", b"ok"], dtype=object)})
  assert rows == [{"b64": "/wA="}, "ok"]
  parsed = rules_serving._parse_instances(rows, {"text": tf.TensorSpec([None], tf.string)})
  assert parsed["text"].numpy().tolist() == [b"\xff\x00", b"ok"]
  two = rules_serving._rows({"a": np.zeros([2, 2], np.float32), "b": np.array([1, 2])})
  assert two == [{"a": [0.0, 0.0], "b": 1}, {"a": [0.0, 0.0], "b": 2}]


def test_missing_serving_default_warns_and_fails_when_required(served, capsys):
  report = hubkit.check_module(served["none"], require=["serving"])
  result = report.result("serving.signature")
  assert result.status == "fail" and "required: no serving_default" in result.message
  assert report.result("serving.rest").status == "skip"
  assert report.failed() == ["serving.signature"]
  # The same module conforms when serving is not required: a warning only.
  assert "interface.call" in {r.id for r in report.results if r.status == "pass"}
  err = helpers.cli_error(capsys, ["check", served["none"], "--require=speed"])
  assert "--require=speed is not a rule family" in err and "valid: serving" in err


def _with_op(source, path, new_op):
  """A copy of `source` whose first MatMul is `new_op` (an op of a package
  core TensorFlow lacks); its files are otherwise unchanged."""
  import shutil

  shutil.copytree(source, path)
  proto = ops.parse(path, full=True)
  for function in proto.meta_graphs[0].graph_def.library.function:
    for node in function.node_def:
      if node.op == "MatMul":
        node.op = new_op
        with open(ops.saved_model_proto_path(path), "wb") as f:
          f.write(proto.SerializeToString())
        return path
  raise AssertionError("no MatMul to replace")


def test_ops_beyond_core_tensorflow_are_named_with_their_package(served, tmp_path):
  path = _with_op(served["named"], str(tmp_path / "text_ops"), "WordpieceTokenizeWithOffsets")
  ctx = _context(path)
  with pytest.raises(RuleWarning, match="tensorflow-text: WordpieceTokenizeWithOffsets"):
    rules_serving.check_serving_ops(ctx)
  assert ctx.figures["op_packages"] == {"tensorflow-text": ["WordpieceTokenizeWithOffsets"]}
  record = interface.describe(None, path)
  assert record["op_packages"] == {"tensorflow-text": ["WordpieceTokenizeWithOffsets"]}
  text = card.render_card("me/t/1", "A module.", "me/t/1/m.tar.gz", "other", record=record)
  assert "Needs `tensorflow-text` for ops beyond core TensorFlow: WordpieceTokenizeWithOffsets" in (
    text
  )
  assert op_packages.package_for("TFText>NgramsStringJoin") == "tensorflow-text"
  assert op_packages.package_for("Addons>GeluGrad") == "tensorflow-addons"
  assert op_packages.packages_for(["MadeUpOp"]) == {"unknown": ["MadeUpOp"]}
  # The check names them too (security.ops refuses the unknown op first).
  report = hubkit.check_module(path)
  assert report.result("serving.ops").status == "warn"
  assert "tensorflow-text" in report.result("serving.ops").message
  assert not os.path.exists(os.path.join(path, "assets.extra"))


@pytest.mark.parametrize(
  "name, config",
  [
    ("mlp_feature_vector", {"input_dim": 5, "hidden_units": [4]}),
    ("text_embedding", {"vocabulary": ["good", "bad"], "dim": 3}),
  ],
)
def test_pack_warmup_requests_replay_through_serving_default(tmp_path, capsys, name, config):
  import tarfile

  from tensorflow_serving.apis import prediction_log_pb2

  from hubkit import cli
  from hubkit import modules

  module = modules.export_module(name, str(tmp_path / name), config=config)
  archive = tmp_path / "m.tar.gz"
  assert cli.main(["hubkit", "pack", module, f"--output={archive}", "--warmup"]) == 0
  first = archive.read_bytes()
  assert cli.main(["hubkit", "pack", module, f"--output={archive}", "--warmup", "--overwrite"]) == 0
  assert archive.read_bytes() == first  # still deterministic
  with tarfile.open(archive) as tar:
    data = tar.extractfile("assets.extra/tf_serving_warmup_requests").read()
  path = tmp_path / "requests"
  path.write_bytes(data)
  records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
  assert len(records) == 1
  log = prediction_log_pb2.PredictionLog.FromString(records[0])
  request = log.predict_log.request
  assert request.model_spec.signature_name == "serving_default"
  assert request.model_spec.name == name
  serving = tf.saved_model.load(module).signatures["serving_default"]
  feed = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
  outputs = serving(**feed)
  assert all(np.all(np.isfinite(o.numpy())) for o in outputs.values())
  assert next(iter(outputs.values())).shape[0] == next(iter(feed.values())).shape[0]


def test_warmup_needs_a_serving_signature(served, tmp_path):
  with pytest.raises(hubkit.UsageError, match="no serving_default signature for warm-up"):
    hubkit.pack_module(served["none"], str(tmp_path / "m.tar.gz"), warmup=True)
  assert not (tmp_path / "m.tar.gz").exists()
