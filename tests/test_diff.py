"""`hubkit diff` and the version guard of `hubkit publish`."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import helpers
import hostile_modules
import hubkit
from hubkit import cli
from hubkit.inspection import diff
from hubkit import modules
from hubkit.safety import ops

_SPEC = tf.TensorSpec([None, 4], tf.float32)


def _dense(
  path,
  width=3,
  optional_argument=False,
  output_key="embedding",
  output_dtype=tf.float32,
  training=True,
  seed=0,
):
  """A small Reusable SavedModel; each option is one kind of revision."""
  obj = tf.train.Checkpoint()
  obj.kernel = tf.Variable(
    np.random.default_rng(seed).normal(size=(4, width)).astype(np.float32), name="kernel"
  )
  obj.variables = [obj.kernel]
  obj.trainable_variables = [obj.kernel]
  obj.regularization_losses = []

  def outputs(x, scale):
    return {output_key: tf.cast(tf.matmul(x, obj.kernel) * scale, output_dtype)}

  if not training:
    obj.__call__ = tf.function(lambda x: outputs(x, 1.0), input_signature=[_SPEC])
  elif optional_argument:

    @tf.function
    def call(x, training=False, scale=1.0):
      del training
      return outputs(x, scale)

    obj.__call__ = call
    for mode in (True, False):
      call.get_concrete_function(_SPEC, training=mode, scale=tf.TensorSpec([], tf.float32))
  else:

    @tf.function
    def call(x, training=False):
      del training
      return outputs(x, 1.0)

    obj.__call__ = call
    for mode in (True, False):
      call.get_concrete_function(_SPEC, training=mode)
  tf.saved_model.save(obj, path)
  return path


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
  root = tmp_path_factory.mktemp("versions")
  made = {
    name: _dense(str(root / name), **options)
    for name, options in {
      "base": {},
      "optional_argument": {"optional_argument": True},
      "renamed_output": {"output_key": "features"},
      "float16_output": {"output_dtype": tf.float16},
      "wider_output": {"width": 5},
      "no_training_argument": {"training": False},
      "retrained": {"seed": 1},
    }.items()
  }
  for name, words in (
    ("text", ["good", "bad", "film"]),
    ("text_new_vocab", ["bad", "good", "film"]),
  ):
    made[name] = modules.export_module(
      "text_embedding", str(root / name), config={"vocabulary": words, "dim": 4}
    )
  return made


def _breaking(result):
  return [(c.area, c.detail) for c in result.changes if c.severity == diff.BREAKING]


def test_a_compatible_revision_diffs_as_compatible(versions, capsys):
  result = hubkit.diff_modules(versions["base"], versions["optional_argument"])
  assert not result.breaking, result.format()
  assert [(c.severity, c.area) for c in result.changes] == [("compatible", "arguments")]
  assert "'scale'" in result.changes[0].detail and "optional" in result.changes[0].detail
  assert result.drift["max_abs"] == 0.0 and result.drift["inputs"] == "sample inputs"
  assert cli.main(["hubkit", "diff", versions["base"], versions["optional_argument"]]) == 0
  assert "compatible: 0 breaking, 0 values changed, 1 compatible" in capsys.readouterr().out


@pytest.mark.parametrize(
  "revision, area, detail",
  [
    ("renamed_output", "outputs", "'outputs/embedding' is gone"),
    ("float16_output", "outputs", "dtype float32 -> float16"),
    ("wider_output", "outputs", "shape [None, 3] -> [None, 5]"),
    ("no_training_argument", "arguments", "`training` argument is gone"),
  ],
)
def test_breaking_revisions_are_named(versions, revision, area, detail):
  result = hubkit.diff_modules(versions["base"], versions[revision])
  assert result.breaking
  assert any(a == area and detail in d for a, d in _breaking(result)), result.format()


def test_retrained_weights_are_changed_values_not_breaking_unless_a_limit_is_set(versions, capsys):
  result = hubkit.diff_modules(versions["base"], versions["retrained"])
  assert not result.breaking and result.values_changed, result.format()
  assert [(c.severity, c.area) for c in result.changes] == [("values changed", "values")]
  relative = result.drift["max_rel"]
  assert relative > 0.1 and f"relative {relative:.3g}" in result.changes[0].detail
  assert result.summary().startswith("values changed: 0 breaking, 1 values changed")
  argv = ["hubkit", "diff", versions["base"], versions["retrained"], "--json"]
  assert cli.main(argv) == 0
  record = json.loads(capsys.readouterr().out)
  assert record["breaking"] is False and record["values_changed"] is True
  assert cli.main(argv + [f"--max_drift={relative * 2}"]) == 0
  assert json.loads(capsys.readouterr().out)["changes"][0]["severity"] == "values changed"
  assert cli.main(argv + [f"--max_drift={relative / 2}"]) == 1
  record = json.loads(capsys.readouterr().out)
  assert record["breaking"] is True and record["changes"][0]["severity"] == "breaking"
  assert f"> max_drift {relative / 2:g}" in record["changes"][0]["detail"]
  err = helpers.cli_error(
    capsys, ["diff", versions["base"], versions["retrained"], "--max_drift=-1"]
  )
  assert "max_drift" in err


def test_publish_accepts_a_retrained_version_and_refuses_it_beyond_max_drift(versions, tmp_path):
  root = str(tmp_path / "registry")
  hubkit.publish_module(versions["base"], root, "me/dense/1")
  with pytest.raises(hubkit.UsageError, match="would break consumers of me/dense/1.*max_drift"):
    hubkit.publish_module(versions["retrained"], root, "me/dense/2", max_drift=0.01)
  assert not os.path.exists(os.path.join(root, "me/dense/2"))
  assert (
    cli.main(["hubkit", "publish", versions["retrained"], f"--root={root}", "--handle=me/dense/2"])
    == 0
  )
  with open(os.path.join(root, "me/dense/2.d", "diff.json")) as f:
    record = json.load(f)
  assert record["breaking"] is False and record["values_changed"] is True
  with open(os.path.join(root, "me/dense/2.d", "README.md")) as f:
    assert "values changed: values: outputs on sample inputs differ" in f.read()


def test_the_reverse_of_a_compatible_revision_breaks(versions):
  result = hubkit.diff_modules(versions["optional_argument"], versions["base"])
  assert ("arguments", "argument 'scale' is gone") in _breaking(result)


def test_a_changed_vocabulary_breaks_and_the_cli_says_so_in_json(versions, capsys):
  assert not hubkit.diff_modules(versions["text"], versions["text"]).changes
  code = cli.main(["hubkit", "diff", versions["text"], versions["text_new_vocab"], "--json"])
  record = json.loads(capsys.readouterr().out)
  assert code == 1 and record["breaking"] is True
  assert {
    "severity": "breaking",
    "area": "assets",
    "detail": "assets/vocab.txt has other content",
  } in (record["changes"])


def test_drift_on_given_inputs_and_tolerance(versions, tmp_path):
  inputs = str(tmp_path / "inputs.npz")
  x = np.eye(4, dtype=np.float32)
  np.savez(inputs, inputs=x)
  result = hubkit.diff_modules(versions["base"], versions["retrained"], inputs=inputs)
  old = tf.saved_model.load(versions["base"])(x, training=False)["embedding"].numpy()
  new = tf.saved_model.load(versions["retrained"])(x, training=False)["embedding"].numpy()
  assert result.drift["inputs"] == inputs
  assert result.drift["max_abs"] == pytest.approx(float(np.max(np.abs(new - old))))
  assert result.drift["max_rel"] == pytest.approx(result.drift["max_abs"] / np.max(np.abs(old)))
  tolerant = hubkit.diff_modules(
    versions["base"], versions["retrained"], inputs=inputs, tolerance=1e9
  )
  assert not tolerant.breaking and not tolerant.values_changed and not tolerant.changes


def test_bad_input_is_one_line_and_hostile_modules_never_run(versions, tmp_path, capsys):
  assert "takes two module handles" in helpers.cli_error(capsys, ["diff", versions["base"]])
  missing = helpers.cli_error(capsys, ["diff", versions["base"], str(tmp_path / "none")])
  assert "does not exist" in missing
  marker = str(tmp_path / "marker")
  hostile_modules.call_writes(str(tmp_path / "hostile"), marker)
  with pytest.raises(ops.UnsafeModuleError, match="WriteFile"):
    hubkit.diff_modules(versions["base"], str(tmp_path / "hostile"))
  assert not os.path.exists(marker)


def test_publish_refuses_a_breaking_version_and_records_a_compatible_one(
  versions, tmp_path, capsys
):
  root = str(tmp_path / "registry")
  hubkit.publish_module(versions["base"], root, "me/dense/1")
  assert not os.path.exists(os.path.join(root, "me/dense/1.d", "diff.json"))
  err = helpers.cli_error(
    capsys,
    ["publish", versions["wider_output"], f"--root={root}", "--handle=me/dense/2"],
  )
  assert "would break consumers of me/dense/1" in err and "--allow_breaking" in err
  assert not os.path.exists(os.path.join(root, "me/dense/2"))
  hubkit.publish_module(versions["optional_argument"], root, "me/dense/2")
  with open(os.path.join(root, "me/dense/2.d", "diff.json")) as f:
    record = json.load(f)
  assert record["old"] == "me/dense/1" and record["breaking"] is False
  with open(os.path.join(root, "me/dense/2.d", "README.md")) as f:
    card_text = f.read()
  assert "## Changes" in card_text and "optional argument 'scale' is new" in card_text
  assert hubkit.validate_card(os.path.join(root, "me/dense/2.d", "README.md")) == []
  # Version 3 is compared with 2, the latest before it.
  hubkit.publish_module(versions["no_training_argument"], root, "me/dense/3", allow_breaking=True)
  with open(os.path.join(root, "me/dense/3.d", "diff.json")) as f:
    record = json.load(f)
  assert record["old"] == "me/dense/2" and record["breaking"] is True


def test_a_hostile_new_version_never_runs_whatever_the_drift_limit(versions, tmp_path):
  root = str(tmp_path / "registry")
  hubkit.publish_module(versions["base"], root, "me/dense/1")
  marker = str(tmp_path / "marker")
  hostile = hostile_modules.call_writes(str(tmp_path / "hostile"), marker)
  for limit in (None, 1e9):
    with pytest.raises(ops.UnsafeModuleError, match="WriteFile"):
      hubkit.diff_modules(versions["base"], hostile, max_drift=limit)
    with pytest.raises(hubkit.HubkitError):
      hubkit.publish_module(hostile, root, "me/dense/2", max_drift=limit)
  assert not os.path.exists(marker)
  assert not os.path.exists(os.path.join(root, "me/dense/2"))
