"""Tests for hubkit.load_weights: three formats, clear errors, all or nothing."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import hubkit
from hubkit import cli
from hubkit import modules

CONFIG = {"input_dim": 4, "hidden_units": [3, 2]}
TF1_NAMES = {
  "dense_0/kernel": "layer1/weights",
  "dense_0/bias": "layer1/biases",
  "dense_1/kernel": "layer2/weights",
  "dense_1/bias": "layer2/biases",
}


def _values(module):
  return {v.name.split(":")[0]: v.numpy() for v in module.variables}


@pytest.fixture(scope="module")
def source():
  return modules.build_module("mlp_feature_vector", seed=7, **CONFIG)


@pytest.fixture(scope="module")
def files(tmp_path_factory, source):
  root = tmp_path_factory.mktemp("weights")
  values = _values(source)
  npz = str(root / "weights.npz")
  np.savez(npz, **values)
  tf2 = source.write(str(root / "tf2" / "ckpt"))
  wrapped = tf.train.Checkpoint(module=source, step=tf.Variable(3)).write(
    str(root / "tf2w" / "ckpt")
  )
  with tf.Graph().as_default():
    for name, tf1_name in TF1_NAMES.items():
      tf.compat.v1.get_variable(tf1_name, initializer=values[name])
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      tf1 = saver.save(sess, str(root / "tf1" / "model"))
  return {"npz": npz, "tf2": tf2, "tf2_wrapped": wrapped, "tf1": tf1, "root": root}


@pytest.mark.parametrize("kind", ["npz", "tf2", "tf2_wrapped", "tf1"])
def test_round_trip_from_every_format(files, source, kind):
  module = modules.build_module("mlp_feature_vector", seed=1, **CONFIG)
  assert not np.allclose(_values(module)["dense_0/kernel"], _values(source)["dense_0/kernel"])
  loaded = hubkit.load_weights(module, files[kind], name_map=TF1_NAMES if kind == "tf1" else None)
  assert sorted(loaded) == sorted(TF1_NAMES)
  for name, value in _values(source).items():
    np.testing.assert_array_equal(_values(module)[name], value)


def _assert_unchanged_after(error_match, path, name_map=None, **config):
  module = modules.build_module("mlp_feature_vector", **{**CONFIG, **config})
  before = _values(module)
  with pytest.raises(hubkit.UsageError, match=error_match):
    hubkit.load_weights(module, path, name_map=name_map)
  for name, value in before.items():
    np.testing.assert_array_equal(_values(module)[name], value)


def test_shape_mismatch_names_variable_and_changes_nothing(files):
  for kind in ("npz", "tf2"):
    _assert_unchanged_after(
      r"shape mismatch for variable 'dense_1/kernel': the module has "
      r"\[3, 5\].*\[3, 2\]",
      files[kind],
      hidden_units=[3, 5],
    )


def test_missing_variable_is_named(files):
  _assert_unchanged_after(
    r"variable 'dense_0/kernel' is missing from .*layer1/biases.*name_map", files["tf1"]
  )
  _assert_unchanged_after(
    r"variable 'dense_2/kernel' is missing", files["npz"], hidden_units=[3, 2, 2]
  )


def test_unused_npz_arrays_are_named(files, source):
  path = str(files["root"] / "extra.npz")
  np.savez(path, extra_thing=np.zeros(2), **_values(source))
  _assert_unchanged_after("arrays no module variable uses: extra_thing", path)


def test_bad_name_map_and_dtype_and_paths(files, source):
  _assert_unchanged_after("name_map mentions nope", files["tf1"], name_map={"nope": "x"})
  path = str(files["root"] / "ints.npz")
  np.savez(path, **{k: np.full(v.shape, "a") for k, v in _values(source).items()})
  _assert_unchanged_after("dtype mismatch for variable", path)
  _assert_unchanged_after("does not exist", str(files["root"] / "missing.npz"))
  _assert_unchanged_after("cannot read checkpoint", str(files["root"] / "missing_ckpt"))
  corrupt = str(files["root"] / "corrupt.npz")
  with open(corrupt, "wb") as f:
    f.write(b"not a zip file")
  _assert_unchanged_after("cannot read .* as an .npz file", corrupt)


def test_export_module_cli_with_weights_and_name_map(files, source, tmp_path, capsys):
  name_map = tmp_path / "map.json"
  name_map.write_text(json.dumps(TF1_NAMES))
  target = tmp_path / "mlp"
  code = cli.main(
    [
      "hubkit",
      "export-module",
      "--module=mlp_feature_vector",
      f"--export_dir={target}",
      f"--config={json.dumps(CONFIG)}",
      f"--weights={files['tf1']}",
      f"--name_map={name_map}",
    ]
  )
  assert code == 0, capsys.readouterr().err
  loaded = tf.saved_model.load(str(target))
  x = tf.random.uniform([3, 4])
  np.testing.assert_allclose(loaded(x).numpy(), source(x).numpy(), atol=1e-6)
  code = cli.main(
    [
      "hubkit",
      "export-module",
      "--module=mlp_feature_vector",
      f"--export_dir={tmp_path / 'bad'}",
      f"--weights={files['npz']}",
    ]
  )
  assert code == 2
  assert "shape mismatch for variable 'dense_0/kernel'" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "bad")
