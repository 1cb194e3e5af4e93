"""hubkit.KerasLayer behaves as hub.KerasLayer does, in Keras 3.

The behaviours are those tensorflow_hub's own keras_layer_test.py specifies
(half-plus-one retraining, regularization losses that follow `trainable`,
batch norm retrained and frozen, custom attributes through `resolved_object`,
output shapes, configs, hyper-parameters, signatures); the tests are written
anew for Keras 3, with modules produced both by hand and by tf_keras saving.
docs/keras3.md lists what Keras 3 makes different.
"""

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import hubkit


def _half_plus_one(export_dir, from_keras):
  """y = w*x + 1 with w = 0.5 trainable (L2 0.01) and the +1 layer frozen."""
  inputs = tf_keras.Input(shape=(1,), dtype=tf.float32)
  times_w = tf_keras.layers.Dense(
    1,
    kernel_initializer=tf_keras.initializers.Constant([[0.5]]),
    kernel_regularizer=tf_keras.regularizers.l2(0.01),
    use_bias=False,
  )
  plus_one = tf_keras.layers.Dense(
    1,
    kernel_initializer=tf_keras.initializers.Constant([[1.0]]),
    bias_initializer=tf_keras.initializers.Constant([1.0]),
    trainable=False,
  )
  model = tf_keras.Model(inputs, plus_one(times_w(inputs)))
  if from_keras:
    model.save(export_dir, save_format="tf", include_optimizer=False)
    return export_dir
  obj = tf.train.Checkpoint()
  obj.__call__ = tf.function(
    lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, 1], tf.float32)]
  )
  obj.variables = model.trainable_variables + model.non_trainable_variables
  obj.trainable_variables = [times_w.kernel]
  obj.regularization_losses = [tf.function(lambda: model.losses[0], input_signature=[])]
  tf.saved_model.save(obj, export_dir)
  return export_dir


def _batch_norm(export_dir, from_keras):
  inputs = tf_keras.Input(shape=(1,), dtype=tf.float32)
  norm = tf_keras.layers.BatchNormalization(momentum=0.8)
  model = tf_keras.Model(inputs, norm(inputs))
  if from_keras:
    model.save(export_dir, save_format="tf", include_optimizer=False)
    return export_dir
  obj = tf.train.Checkpoint()
  obj.__call__ = tf.function(lambda x, training=False: model(x, training=training))
  for training in (True, False):
    obj.__call__.get_concrete_function(tf.TensorSpec([None, 1], tf.float32), training=training)
  obj.trainable_variables = [norm.beta, norm.gamma]
  obj.variables = [norm.beta, norm.gamma, norm.moving_mean, norm.moving_variance]
  obj.regularization_losses = []
  tf.saved_model.save(obj, export_dir)
  return export_dir


def _batch_norm_variables(layer):
  by_suffix = {}
  for variable in layer.resolved_object.variables:
    for suffix in ("beta", "gamma", "moving_mean", "moving_variance"):
      if variable.name.split(":")[0].endswith(suffix):
        by_suffix[suffix] = variable
  return [by_suffix[s] for s in ("beta", "gamma", "moving_mean", "moving_variance")]


def _with_hyper_parameters(export_dir):
  """y = a*x + b with tensor hyper-parameters a=1, b=0 and no training argument."""
  obj = tf.train.Checkpoint()
  obj.__call__ = tf.function(
    lambda x, a=1.0, b=0.0: a * x + b,
    input_signature=[
      tf.TensorSpec([None, 1], tf.float32),
      tf.TensorSpec([], tf.float32),
      tf.TensorSpec([], tf.float32),
    ],
  )
  tf.saved_model.save(obj, export_dir)
  return export_dir


BOTH = pytest.mark.parametrize("from_keras", [False, True], ids=["raw", "tf_keras_save"])


@BOTH
def test_half_plus_one_retraining(tmp_path, from_keras):
  layer = hubkit.KerasLayer(_half_plus_one(str(tmp_path / "m"), from_keras), trainable=True)
  inputs = keras.Input((1,))
  model = keras.Model(inputs, layer(inputs))
  np.testing.assert_array_equal(
    model(np.array([[0.0], [8.0], [10.0], [12.0]], np.float32)), [[1.0], [5.0], [6.0], [7.0]]
  )
  np.testing.assert_allclose([float(l) for l in model.losses], [0.0025], rtol=1e-6)
  assert len(model.trainable_weights) == 1 and len(model.trainable_weights[0].shape) == 2
  assert sorted(len(w.shape) for w in model.non_trainable_weights) == [1, 2]
  model.compile(keras.optimizers.SGD(0.002), "mean_squared_error")
  x = np.array([[9.0], [10.0], [11.0]] * 10, np.float32)
  model.fit(x, x / 2.0 + 6.0, batch_size=len(x), epochs=10, verbose=0)
  # The frozen bias stays at 1; the kernel grows towards 1 to compensate.
  np.testing.assert_array_equal(model(np.array([[0.0]], np.float32)), [[1.0]])
  np.testing.assert_allclose(model(np.array([[10.0]], np.float32)), [[11.0]], rtol=0.03)
  np.testing.assert_allclose([float(l) for l in model.losses], [0.01], rtol=0.06)


@BOTH
def test_regularization_loss_follows_trainable(tmp_path, from_keras):
  layer = hubkit.KerasLayer(_half_plus_one(str(tmp_path / "m"), from_keras), trainable=False)
  inputs = keras.Input((1,))
  model = keras.Model(inputs, layer(inputs))
  for trainable, expected in ((False, 0.0), (True, 0.0025), (False, 0.0), (True, 0.0025)):
    layer.trainable = trainable
    np.testing.assert_allclose([float(l) for l in model.losses], [expected], rtol=1e-6)


@BOTH
def test_batch_norm_retraining(tmp_path, from_keras):
  layer = hubkit.KerasLayer(_batch_norm(str(tmp_path / "m"), from_keras), trainable=True)
  beta, _, mean, _ = _batch_norm_variables(layer)
  inputs = keras.Input((1,))
  model = keras.Model(inputs, layer(inputs))
  model.compile(keras.optimizers.SGD(0.1), "mean_squared_error")
  x = np.array([[11.0], [12.0], [13.0]], np.float32)
  model.fit(x, 2 * x, batch_size=3, epochs=100, verbose=0)
  np.testing.assert_allclose(mean.numpy(), [12.0], rtol=1e-3)
  np.testing.assert_allclose(beta.numpy(), [24.0], rtol=1e-3)
  np.testing.assert_allclose(model(x), 2 * x, rtol=1e-3)
  # Inference uses the moving statistics and updates nothing.
  other = np.array([[10.0], [20.0], [30.0]], np.float32)
  for _ in range(10):
    np.testing.assert_allclose(model(other), 2 * other, rtol=1e-3)
  np.testing.assert_allclose(mean.numpy(), [12.0], rtol=1e-3)


@BOTH
def test_batch_norm_freezing(tmp_path, from_keras):
  layer = hubkit.KerasLayer(_batch_norm(str(tmp_path / "m"), from_keras), trainable=False)
  variables = _batch_norm_variables(layer)
  inputs = keras.Input((1,))
  dense = keras.layers.Dense(
    1, kernel_initializer=keras.initializers.Constant([[1.5]]), use_bias=False
  )
  model = keras.Model(inputs, dense(layer(inputs)))
  model.compile(keras.optimizers.SGD(0.1), "mean_squared_error")
  x = np.array([[1.0], [2.0], [3.0]], np.float32)
  model.fit(x, 2 * x, batch_size=3, epochs=20, verbose=0)
  np.testing.assert_allclose([float(v.numpy()[0]) for v in variables], [0.0, 1.0, 0.0, 1.0])
  np.testing.assert_allclose(model(x), 2 * x, rtol=1e-3)


def test_custom_attributes_through_resolved_object(tmp_path):
  source = tmp_path / "number.txt"
  source.write_text("12345\n")
  obj = tf.train.Checkpoint()
  obj.__call__ = tf.function(
    lambda a: tf.strings.to_number(a, tf.int64),
    input_signature=[tf.TensorSpec([None, 1], tf.string)],
  )
  obj.sample_input = tf.saved_model.Asset(str(source))
  obj.sample_output = tf.Variable([[12345]], dtype=tf.int64)
  export_dir = str(tmp_path / "m")
  tf.saved_model.save(obj, export_dir)
  source.unlink()
  layer = hubkit.KerasLayer(export_dir)
  assert layer.resolved_object is layer.module
  with open(layer.resolved_object.sample_input.asset_path.numpy(), encoding="utf-8") as f:
    inputs = tf.constant([[f.read()]])
  np.testing.assert_array_equal(layer(inputs), layer.resolved_object.sample_output.numpy())


def test_compute_output_shape(tmp_path):
  export_dir = _half_plus_one(str(tmp_path / "m"), from_keras=False)
  assert tuple(hubkit.KerasLayer(export_dir, output_shape=[1]).compute_output_shape((10, 1))) == (
    10,
    1,
  )
  # Without output_shape the module's own shapes are traced.
  assert tuple(hubkit.KerasLayer(export_dir).compute_output_shape((10, 1))) == (10, 1)


def test_nested_and_dict_output_shapes(tmp_path):
  obj = tf.train.Checkpoint()
  obj.__call__ = tf.function(
    lambda x: {"sum": tf.reduce_sum(x, -1, keepdims=True), "pair": [x, 2 * x]},
    input_signature=[tf.TensorSpec([None, None], tf.float32)],
  )
  export_dir = str(tmp_path / "m")
  tf.saved_model.save(obj, export_dir)
  shapes = {"sum": [1], "pair": [[3], [3]]}
  layer = hubkit.KerasLayer(export_dir, output_shape=shapes)
  inputs = keras.Input((3,))
  outputs = layer(inputs)
  assert tuple(outputs["sum"].shape) == (None, 1)
  assert [tuple(t.shape) for t in outputs["pair"]] == [(None, 3), (None, 3)]
  assert layer.get_config()["output_shape"] == {"sum": [1], "pair": [[3], [3]]}
  x = np.ones([2, 3], np.float32)
  np.testing.assert_allclose(layer(x)["sum"], [[3.0], [3.0]])


def _dict_in_dict_out(export_dir):
  """sigma = [x + y, x + 2y] and, with return_dict, also delta = x - y."""

  @tf.function
  def call(features, return_dict=False):
    x, y = features["x"], features["y"]
    sigma = tf.concat([x + y, x + 2 * y], axis=-1)
    return {"sigma": sigma, "delta": x - y} if return_dict else sigma

  spec = {name: tf.TensorSpec([None, 1], tf.float32) for name in ("x", "y")}
  for return_dict in (False, True):
    call.get_concrete_function(spec, return_dict=return_dict)
  obj = tf.train.Checkpoint()
  obj.__call__ = call
  tf.saved_model.save(obj, export_dir)
  return export_dir


def _list_of_unknowable_shapes(export_dir):
  """[x, 2x, 3x] broadcast to [B, 1], [B, 2, 2], [B, 3, 3, 3] through a
  computed shape, so that no static shape survives the trace."""

  @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32)])
  def call(x):
    batch = tf.shape(x)[0]
    noise = 0.1 * tf.sin(tf.random.uniform((), -3.0, 3.0)) + 0.3  # rounded away
    outputs = []
    for i in (1, 2, 3):
      shape = tf.cast(tf.cast(tf.concat([[batch], [i] * i], 0), tf.float32) + noise, tf.int32)
      outputs.append(tf.broadcast_to(tf.reshape(i * x, [batch] + [1] * i), shape))
    return outputs

  obj = tf.train.Checkpoint()
  obj.__call__ = call
  tf.saved_model.save(obj, export_dir)
  return export_dir


def _round_trip(layer):
  return hubkit.KerasLayer.from_config(json.loads(json.dumps(layer.get_config())), safe_mode=False)


@pytest.mark.parametrize("give_shapes", [False, True], ids=["no_output_shape", "output_shape"])
def test_dict_inputs_and_outputs(tmp_path, give_shapes):
  options = {"arguments": {"return_dict": True}}
  if give_shapes:
    options["output_shape"] = {"sigma": (2,), "delta": (1,)}
  layer = hubkit.KerasLayer(_dict_in_dict_out(str(tmp_path / "m")), **options)
  inputs = {name: keras.Input((1,), name=name) for name in ("x", "y")}
  outputs = layer(inputs)
  assert tuple(outputs["sigma"].shape) == (None, 2) and tuple(outputs["delta"].shape) == (None, 1)
  joined = keras.layers.concatenate([outputs["delta"], outputs["sigma"]])
  model = keras.Model(inputs, [outputs["delta"], outputs["sigma"], joined])
  x = np.array([[11.0], [22.0], [33.0]], np.float32)
  y = np.array([[1.0], [2.0], [3.0]], np.float32)
  for delta, sigma, concat in (model({"x": x, "y": y}), model.predict({"x": x, "y": y}, verbose=0)):
    np.testing.assert_allclose(delta, [[10.0], [20.0], [30.0]])
    np.testing.assert_allclose(sigma, [[12.0, 13.0], [24.0, 26.0], [36.0, 39.0]])
    np.testing.assert_allclose(concat, np.concatenate([delta, sigma], axis=-1))
  clone = _round_trip(layer)
  if give_shapes:
    assert clone._output_shape == layer._output_shape
  else:
    assert not hasattr(layer, "_output_shape") and not hasattr(clone, "_output_shape")
    assert "output_shape" not in layer.get_config()


@pytest.mark.parametrize("give_shapes", [False, True], ids=["no_output_shape", "output_shape"])
def test_list_outputs_of_unknowable_shapes(tmp_path, give_shapes):
  options = {"output_shape": [[1], [2, 2], [3, 3, 3]]} if give_shapes else {}
  layer = hubkit.KerasLayer(_list_of_unknowable_shapes(str(tmp_path / "m")), **options)
  inputs = keras.Input((1,))
  symbolic = layer(inputs)
  expected = [(None, 1), (None, 2, 2), (None, 3, 3, 3)]
  if give_shapes:
    assert [tuple(t.shape) for t in symbolic] == expected
  else:  # only the rank is known, and no wrong shape may be promised
    assert [len(t.shape) for t in symbolic] == [2, 3, 4]
  model = keras.Model(inputs, symbolic)
  x = np.array([[1.0], [10.0]], np.float32)
  for outputs in (model(x), model.predict(x, verbose=0)):
    assert len(outputs) == 3
    for i, output in enumerate(outputs, start=1):
      assert tuple(output.shape) == (2,) + (i,) * i
      np.testing.assert_allclose(
        np.asarray(output), np.broadcast_to(i * x.reshape((2,) + (1,) * i), (2,) + (i,) * i)
      )
  clone = _round_trip(layer)
  if give_shapes:
    assert clone._output_shape == layer._output_shape
  else:
    assert not hasattr(layer, "_output_shape") and not hasattr(clone, "_output_shape")


@BOTH
def test_config_round_trip(tmp_path, from_keras):
  layer = hubkit.KerasLayer(_half_plus_one(str(tmp_path / "m"), from_keras))
  x = np.array([[10.0]], np.float32)
  clone = hubkit.KerasLayer.from_config(layer.get_config(), safe_mode=False)
  np.testing.assert_array_equal(clone(x), layer(x))


def test_config_with_hyper_parameters(tmp_path):
  layer = hubkit.KerasLayer(
    _with_hyper_parameters(str(tmp_path / "m")), arguments={"a": 10.0}
  )  # b keeps its default 0
  x = np.array([[1.0], [2.0], [3.0]], np.float32)
  np.testing.assert_array_equal(layer(x), [[10.0], [20.0], [30.0]])
  config = layer.get_config()
  assert config["arguments"] == {"a": 10.0} and "signature" not in config
  clone = hubkit.KerasLayer.from_config(json.loads(json.dumps(config)), safe_mode=False)
  np.testing.assert_array_equal(clone(x), layer(x))


def test_model_json_round_trip(tmp_path):
  export_dir = _half_plus_one(str(tmp_path / "m"), from_keras=True)
  model = keras.Sequential([keras.Input((1,)), hubkit.KerasLayer(export_dir)])
  x = np.array([[10.0]], np.float32)
  # hub.KerasLayer's model_from_json needs no opt-in; Keras 3 safe mode does.
  with (
    keras.saving.custom_object_scope({"KerasLayer": hubkit.KerasLayer}),
    keras.src.saving.serialization_lib.SafeModeScope(False),
  ):
    restored = keras.models.model_from_json(model.to_json())
  np.testing.assert_array_equal(restored(x), model(x))


def test_python_scalars_as_inputs(tmp_path):
  obj = tf.train.Checkpoint()
  obj.__call__ = tf.function(lambda x: 2.0 * x, input_signature=[tf.TensorSpec([], tf.float32)])
  export_dir = str(tmp_path / "m")
  tf.saved_model.save(obj, export_dir)
  assert float(hubkit.KerasLayer(export_dir)(3.0)) == 6.0


def test_signature_rules_match_hub(tmp_path):
  export_dir = _half_plus_one(str(tmp_path / "m"), from_keras=True)
  with pytest.raises(ValueError, match="either output_key or signature_outputs_as_dict"):
    hubkit.KerasLayer(export_dir, signature="serving_default")
  with pytest.raises(ValueError, match="either output_key or signature_outputs_as_dict"):
    hubkit.KerasLayer(
      export_dir, signature="serving_default", output_key="dense_1", signature_outputs_as_dict=True
    )
  with pytest.raises(ValueError, match="only valid if specifying a signature"):
    hubkit.KerasLayer(export_dir, signature_outputs_as_dict=True)
  as_dict = hubkit.KerasLayer(
    export_dir, signature="serving_default", signature_outputs_as_dict=True
  )
  outputs = as_dict(np.array([[2.0]], np.float32))
  assert isinstance(outputs, dict) and len(outputs) == 1
  trainable = hubkit.KerasLayer(
    export_dir, signature="serving_default", signature_outputs_as_dict=True, trainable=True
  )
  with pytest.raises(ValueError, match="unsupported when calling a SavedModel signature"):
    trainable(np.array([[2.0]], np.float32))


def test_output_key_errors_are_raised_at_call(tmp_path):
  export_dir = _half_plus_one(str(tmp_path / "m"), from_keras=False)
  layer = hubkit.KerasLayer(export_dir, output_key="nope")
  with pytest.raises(ValueError, match="forbidden if output type .* is not a dict"):
    layer(np.array([[1.0]], np.float32))


def test_trainable_layer_with_zero_trainable_weights_logs_once(tmp_path, caplog):
  export_dir = _with_hyper_parameters(str(tmp_path / "m"))
  layer = hubkit.KerasLayer(export_dir, trainable=True)
  x = np.array([[1.0]], np.float32)
  with caplog.at_level(logging.ERROR):
    layer(x)
    layer(x)
  messages = [r.getMessage() for r in caplog.records if "zero trainable weights" in r.getMessage()]
  assert len(messages) == 1


def test_callable_handle_excludes_tags_and_load_options(tmp_path):
  loaded = tf.saved_model.load(_half_plus_one(str(tmp_path / "m"), from_keras=False))
  with pytest.raises(ValueError, match="mutually exclusive"):
    hubkit.KerasLayer(loaded, tags=["serve"])
  assert hubkit.KerasLayer(loaded).resolved_object is loaded
  with pytest.raises(NotImplementedError):
    hubkit.KerasLayer(loaded).get_config()
  assert os.path.isdir(str(tmp_path / "m"))
