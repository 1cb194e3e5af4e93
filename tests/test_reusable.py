"""Tests for hubkit.ReusableModule: traces, interface lists, export, errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import hubkit
from hubkit.module import layout
from hubkit.utils.digest import sha256_file


class _Scale(hubkit.ReusableModule):
  def __init__(self):
    super().__init__(
      input_signatures=[
        tf.TensorSpec([None, 2], tf.float32),
        {"a": tf.TensorSpec([None, 2], tf.float32)},
      ]
    )
    self.v = tf.Variable([1.0, 2.0], name="v")
    self.offset = tf.Variable(0.5, name="offset")
    self.freeze(self.offset)

  def call(self, inputs, training):
    x = inputs["a"] if isinstance(inputs, dict) else inputs
    y = x * self.v + self.offset
    return y * 2.0 if training else y

  def regularizers(self):
    return [lambda: 0.01 * tf.reduce_sum(tf.square(self.v))]


@pytest.fixture(scope="module")
def scale_export(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("scale") / "module")
  _Scale().export(path)
  return path


def test_interface_lists_before_export():
  module = _Scale()
  assert [v.name for v in module.variables] == ["v:0", "offset:0"]
  assert [v.name for v in module.trainable_variables] == ["v:0"]
  assert float(module.regularization_losses[0]()) == pytest.approx(0.05)


def test_export_has_both_traces_for_every_signature(scale_export):
  obj = tf.saved_model.load(scale_export)
  x = tf.constant([[1.0, 1.0]])
  np.testing.assert_allclose(obj(x, training=False).numpy(), [[1.5, 2.5]])
  np.testing.assert_allclose(obj(x, training=True).numpy(), [[3.0, 5.0]])
  np.testing.assert_allclose(obj({"a": x}, training=True).numpy(), [[3.0, 5.0]])
  np.testing.assert_allclose(obj(x).numpy(), [[1.5, 2.5]])  # default is inference
  traces = obj.__call__.concrete_functions
  assert len(traces) == 4


def test_export_interface_and_serving_signature(scale_export):
  obj = tf.saved_model.load(scale_export)
  assert len(obj.variables) == 2 and len(obj.trainable_variables) == 1
  assert obj.trainable_variables[0].trainable
  assert float(obj.regularization_losses[0]()) == pytest.approx(0.05)
  out = obj.signatures["serving_default"](inputs=tf.constant([[2.0, 0.0]]))
  np.testing.assert_allclose(out["outputs"].numpy(), [[2.5, 0.5]])


def test_export_metadata_and_layout(scale_export):
  with open(os.path.join(scale_export, layout.METADATA_RELPATH)) as f:
    record = json.load(f)
  assert record["tensorflow_version"] == tf.__version__
  assert record["inputs"][0] == {"dtype": "float32", "shape": [None, 2]}
  assert record["num_trainable_variables"] == 1
  files = dict(record["files"])
  assert "saved_model.pb" in files
  for rel, digest in files.items():
    assert sha256_file(os.path.join(scale_export, rel)) == digest
  assert layout.disallowed_paths(scale_export) == []


def test_export_refuses_existing_dir_and_leaves_nothing_on_failure(tmp_path, scale_export):
  with pytest.raises(hubkit.UsageError, match="already exists.*overwrite"):
    _Scale().export(scale_export)

  class Broken(_Scale):
    def regularizers(self):
      return [lambda: self.v]  # a vector, not a scalar

  target = tmp_path / "broken"
  with pytest.raises(hubkit.UsageError, match="regularizer #0 .*float scalars"):
    Broken().export(str(target))
  assert os.listdir(tmp_path) == []


def test_bad_signatures_are_refused():
  class NoBatch(hubkit.ReusableModule):
    def __init__(self, signatures):
      super().__init__(input_signatures=signatures)

  with pytest.raises(hubkit.UsageError, match="batch dimension of None"):
    NoBatch([tf.TensorSpec([4, 2], tf.float32)])
  with pytest.raises(hubkit.UsageError, match="non-empty list"):
    NoBatch(tf.TensorSpec([None, 2], tf.float32))
  with pytest.raises(hubkit.UsageError, match="not a tf.TensorSpec"):
    NoBatch([np.zeros([2])])
