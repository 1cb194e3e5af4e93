"""Tests for the module library: every module exports, reloads and fine-tunes."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

import helpers
import hubkit
from hubkit import cli
from hubkit import modules

CONFIGS = {
  "mul": {"dim": 3, "l2": 0.5},
  "mlp_feature_vector": {"input_dim": 5, "hidden_units": [6, 4], "dropout_rate": 0.5, "l2": 0.1},
  "image_feature_vector": {"filters": [4, 6], "num_features": 5, "l2": 0.01},
  "text_embedding": {
    "vocabulary": ["hello", "world", "cat"],
    "dim": 4,
    "num_oov_buckets": 2,
    "l2": 0.2,
  },
}


def _inputs(name):
  rng = np.random.default_rng(1)
  if name == "image_feature_vector":
    return rng.uniform(0, 1, [4, 8, 8, 3]).astype(np.float32)
  if name == "text_embedding":
    return np.array(["hello world", "Cat unknownword", "", "world world"], dtype=object)
  dim = CONFIGS[name].get("dim") or CONFIGS[name]["input_dim"]
  return rng.uniform(0, 1, [4, dim]).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  root = tmp_path_factory.mktemp("modules")
  result = {}
  for name, config in CONFIGS.items():
    module = modules.build_module(name, **config)
    result[name] = (module, module.export(str(root / name)))
  return result


def test_module_library_covers_the_four_modules():
  assert set(modules.MODULES) >= set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reload_has_both_traces_and_matches(exported, name):
  module, path = exported[name]
  x = _inputs(name)
  expected = module(tf.constant(x), training=False).numpy()
  for loaded in (tf.saved_model.load(path), hub.load(path)):
    assert len(loaded.__call__.concrete_functions) == 2
    np.testing.assert_allclose(loaded(tf.constant(x), training=False).numpy(), expected, atol=1e-5)
    assert loaded(tf.constant(x), training=True).shape == expected.shape
    assert len(loaded.variables) == len(module.variables)
    assert len(loaded.trainable_variables) == len(module.trainable_variables)


@pytest.mark.parametrize("name", ["mlp_feature_vector", "image_feature_vector"])
def test_training_mode_differs_where_dropout_or_batch_norm(exported, name):
  _, path = exported[name]
  loaded = tf.saved_model.load(path)
  x = tf.constant(_inputs(name))
  inference = loaded(x, training=False).numpy()
  np.testing.assert_array_equal(inference, loaded(x, training=False).numpy())
  assert not np.allclose(inference, loaded(x, training=True).numpy())


def test_regularization_losses_follow_their_formulas(exported):
  mul, path = exported["mul"]
  loaded = tf.saved_model.load(path)
  assert float(loaded.regularization_losses[0]()) == pytest.approx(0.5 * 3)
  mlp, _ = exported["mlp_feature_vector"]
  expected = [0.1 * float(tf.reduce_sum(tf.square(layer.kernel))) for layer in mlp.dense]
  assert [float(f()) for f in mlp.regularization_losses] == pytest.approx(expected)
  image, _ = exported["image_feature_vector"]
  assert len(image.regularization_losses) == 3  # two convs and the projection
  assert len(mul.regularization_losses) == 1


def test_image_module_follows_common_image_api(exported):
  module, path = exported["image_feature_vector"]
  spec = module.input_signatures[0]
  assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, None, None, 3]
  loaded = tf.saved_model.load(path)
  out = loaded(tf.zeros([2, 16, 12, 3]))
  assert out.dtype == tf.float32 and out.shape == (2, 5)


def test_text_module_ships_vocabulary_and_hashes_unknown_words(exported):
  _, path = exported["text_embedding"]
  with open(os.path.join(path, "assets", "vocab.txt")) as f:
    assert f.read().split() == ["hello", "world", "cat"]
  loaded = hub.load(path)
  out = loaded(tf.constant(["hello", "HELLO", "", "zebra", "quokka yak"])).numpy()
  np.testing.assert_allclose(out[0], out[1])  # lower-cased
  np.testing.assert_array_equal(out[2], np.zeros(4))  # empty string
  assert np.abs(out[3]).sum() > 0 and not np.allclose(out[3], out[0])
  assert np.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fine_tuning_through_hub_keras_layer_moves_trainable_weights(exported, name):
  module, path = exported[name]
  result = helpers.fine_tune_through_hub(path, _inputs(name))
  layer = result["layer"]
  assert len(layer.trainable_weights) == len(module.trainable_variables)
  assert len(result["model"].losses) == len(module.regularization_losses)
  assert all(helpers.moved(result["before"], layer.trainable_weights))
  if name == "image_feature_vector":
    # Batch-norm moving statistics are updated by the training=True trace.
    assert all(helpers.moved(result["frozen_before"], layer.non_trainable_weights))


def test_build_module_errors_list_valid_choices():
  with pytest.raises(hubkit.UsageError, match="unknown module 'mpl'.*mlp_feature_vector"):
    modules.build_module("mpl")
  with pytest.raises(hubkit.UsageError, match="unknown config key.*units.*valid keys: input_dim"):
    modules.build_module("mlp_feature_vector", units=3)
  with pytest.raises(hubkit.UsageError, match="no white space"):
    modules.build_module("text_embedding", vocabulary=["two words"])


def test_export_module_cli(tmp_path, capsys):
  target = tmp_path / "mul"
  code = cli.main(
    ["hubkit", "export-module", "--module=mul", f"--export_dir={target}", '--config={"dim": 2}']
  )
  assert code == 0
  assert f"exported to {target}: 2 parameters, 1 variables (1 trainable)" in capsys.readouterr().out
  np.testing.assert_allclose(
    tf.saved_model.load(str(target))(tf.ones([1, 2])).numpy(), [[1.0, 1.0]]
  )
  # Exporting again without --overwrite is refused and keeps the export.
  err = helpers.cli_error(capsys, ["export-module", "--module=mul", f"--export_dir={target}"])
  assert "already exists" in err and "--overwrite" in err
  assert (
    cli.main(["hubkit", "export-module", "--module=mul", f"--export_dir={target}2", "--config=[1]"])
    == 2
  )
  assert "must be a JSON object" in capsys.readouterr().err
