"""Tests for the work the checker shares between rules: one loaded module,
lent to the rules that change it and restored after, and fingerprints instead
of copies of the weights; none of it may change a verdict."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import broken_modules
import hubkit
from hubkit.checker import runner
from hubkit.checker.context import Context, fingerprint


@pytest.fixture(scope="module")
def valid_module(tmp_path_factory):
  return broken_modules.valid(str(tmp_path_factory.mktemp("memory") / "valid"))


def _state(obj):
  return [(v.name, v.trainable, np.array(v.numpy(), copy=True)) for v in obj.variables]


def _keras3_piece(path):
  """A Keras 3 export: batch norm, and dropout whose seed state is a variable."""
  import keras

  inputs = keras.Input((4,))
  x = keras.layers.Dropout(0.2)(keras.layers.BatchNormalization()(inputs))
  x = keras.layers.Dense(5, activation="relu", name="features")(x)
  model = keras.Model(inputs, keras.layers.Dense(2)(x))
  return hubkit.export_keras_submodel(model, path, output_layer="features")


@pytest.mark.parametrize(
  "make",
  [
    # batch norm
    lambda p: hubkit.export_module(
      "image_feature_vector", p, config={"filters": [4, 6], "num_features": 5}
    ),
    # a lookup table and regularization losses
    lambda p: hubkit.export_module(
      "text_embedding", p, config={"vocabulary": ["hello", "world"], "dim": 4, "l2": 0.1}
    ),
    _keras3_piece,
  ],
  ids=["image_feature_vector", "text_embedding", "keras3_piece"],
)
def test_rules_that_change_the_shared_module_leave_it_as_loaded(tmp_path, make):
  path = make(str(tmp_path / "module"))
  ctx = Context(path, path)
  obj = ctx.obj
  before = _state(obj)
  rules = {r.id: r for r in runner.rules()}
  done = {r: "pass" for r in rules}
  borrowers = (
    "behavior.training_mode",
    "consumer.hub_keras_layer",
    "consumer.keras3_layer",
    "roundtrip.reexport",
  )
  results = runner.run_rules(ctx, [rules[r] for r in borrowers], done)
  assert [r.status for r in results] == ["pass"] * 4, [r.message for r in results]
  # Restored in place, not reloaded: the next rule sees the load every rule
  # started from (values, and trainable flags the Keras layers flip).
  assert ctx.obj is obj
  after = _state(obj)
  assert [(n, t) for n, t, _ in after] == [(n, t) for n, t, _ in before]
  for (n, _, a), (_, _, b) in zip(after, before):
    np.testing.assert_array_equal(a, b, err_msg=n)


def test_a_module_that_cannot_be_restored_is_loaded_again(valid_module, tmp_path):
  path = str(tmp_path / "m")
  shutil.copytree(valid_module, path)
  ctx = Context(path, path)
  obj = ctx.obj
  with ctx.borrowed() as lent:
    for v in lent.trainable_variables:
      v.assign(v + 1.0)
    # The checkpoint is gone: the changed copy must not be lent again.
    shutil.rmtree(os.path.join(path, "variables"))
  assert "obj" not in vars(ctx)
  shutil.rmtree(path)
  shutil.copytree(valid_module, path)
  assert ctx.obj is not obj
  fresh = tf.saved_model.load(valid_module)
  for a, b in zip(ctx.obj.variables, fresh.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fingerprints_see_any_write_and_keep_no_copy():
  variable = tf.Variable(tf.random.uniform([64, 32]))
  before = fingerprint(variable)
  assert isinstance(before, int) and fingerprint(variable) == before
  variable.assign(variable + tf.one_hot([[5]], 32)[0] * 1e-7)  # one element, barely
  assert fingerprint(variable) != before
  words = tf.Variable(["a", "b"])
  assert fingerprint(words) != fingerprint(tf.Variable(["a", "c"]))
  scalar = tf.Variable(2.0, dtype=tf.bfloat16)
  assert fingerprint(scalar) != fingerprint(tf.Variable(3.0, dtype=tf.bfloat16))
