"""Tests for hubkit.KerasLayer in Keras 3, mirroring tensorflow_hub's own
keras_layer_test.py behaviours, plus every built-in optimizer."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

import canonical_modules
import hubkit
from hubkit import modules

OPTIMIZERS = [
  "SGD",
  "Adam",
  "AdamW",
  "RMSprop",
  "Adagrad",
  "Nadam",
  "Lion",
  "Adadelta",
  "Adamax",
  "Ftrl",
  "Lamb",
]


class _Frozen(hubkit.ReusableModule):
  """y = x * v * w with w frozen (not in trainable_variables)."""

  def __init__(self, freeze_all=False):
    super().__init__(input_signatures=[tf.TensorSpec([None, 3], tf.float32)])
    self.v = tf.Variable([1.0, 2.0, 3.0], name="v")
    self.w = tf.Variable(2.0, name="w")
    self.freeze(self.w)
    if freeze_all:
      self.freeze(self.v)

  def call(self, inputs, training):
    return inputs * self.v * self.w

  def regularizers(self):
    return [lambda: 0.5 * tf.reduce_sum(tf.square(self.v))]


class _DictAndList(hubkit.ReusableModule):
  """Takes a list of two inputs and returns a dict of outputs."""

  def __init__(self):
    super().__init__(
      input_signatures=[
        [tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None, 3], tf.float32)]
      ]
    )
    self.kernel = tf.Variable(tf.ones([3, 2]), name="kernel")

  def call(self, inputs, training):
    a, b = inputs
    return {"default": tf.matmul(a + b, self.kernel), "sum": tf.reduce_sum(a * b, -1)}


def _hyperparameter_module(path):
  obj = tf.train.Checkpoint()
  obj.v = tf.Variable([1.0, 1.0, 1.0], name="v")
  obj.__call__ = tf.function(lambda inputs, training=False, scale=1.0: inputs * obj.v * scale)
  for training in (True, False):
    obj.__call__.get_concrete_function(
      tf.TensorSpec([None, 3], tf.float32), training=training, scale=tf.TensorSpec([], tf.float32)
    )
  obj.variables, obj.trainable_variables, obj.regularization_losses = [obj.v], [obj.v], []
  tf.saved_model.save(obj, path)
  return path


def _tf_keras_export(path):
  tf_keras.utils.set_random_seed(0)
  inputs = tf_keras.Input((3,))
  hidden = tf_keras.layers.Dense(
    4, activation="relu", name="d1", kernel_regularizer=tf_keras.regularizers.L2(0.01)
  )(inputs)
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, name="d2")(hidden))
  return hubkit.export_keras_submodel(model, path)


def _keras3_export(path):
  keras.utils.set_random_seed(0)
  inputs = keras.Input((3,))
  hidden = keras.layers.Dense(
    4, activation="relu", name="d1", kernel_regularizer=keras.regularizers.L2(0.01)
  )(inputs)
  hidden = keras.layers.Dropout(0.2)(keras.layers.BatchNormalization()(hidden))
  return hubkit.export_keras_submodel(keras.Model(inputs, keras.layers.Dense(2)(hidden)), path)


@pytest.fixture(scope="module")
def handles(tmp_path_factory):
  root = tmp_path_factory.mktemp("k3layer")
  return {
    "frozen": _Frozen().export(str(root / "frozen")),
    "all_frozen": _Frozen(freeze_all=True).export(str(root / "all_frozen")),
    "dict_list": _DictAndList().export(str(root / "dict_list")),
    "hyper": _hyperparameter_module(str(root / "hyper")),
    "image": modules.export_module(
      "image_feature_vector", str(root / "image"), config={"filters": [4, 6], "num_features": 5}
    ),
    "text": modules.export_module(
      "text_embedding", str(root / "text"), config={"vocabulary": ["hello", "world"], "dim": 4}
    ),
    "tf_keras": _tf_keras_export(str(root / "tf_keras")),
    "keras3": _keras3_export(str(root / "keras3")),
  }


def _x(n=8, dim=3, seed=0):
  return np.random.default_rng(seed).uniform(0, 1, [n, dim]).astype(np.float32)


def _model(layer, input_shape=(3,), dtype="float32", head=2):
  inputs = keras.Input(input_shape, dtype=dtype)
  return keras.Model(inputs, keras.layers.Dense(head)(layer(inputs)))


def _values(variables):
  return [np.array(v.numpy()) for v in variables]


def _moved(before, variables):
  return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_weights_are_the_module_variables_without_copy(handles):
  layer = hubkit.KerasLayer(handles["frozen"], trainable=True)
  assert [w.name for w in layer.trainable_weights] == ["v"]
  assert [w.name for w in layer.non_trainable_weights] == ["w"]
  layer.trainable_weights[0].assign([5.0, 5.0, 5.0])
  np.testing.assert_array_equal(layer.module.variables[0].numpy(), [5.0, 5.0, 5.0])


def test_retraining_changes_only_trainable_weights(handles):
  layer = hubkit.KerasLayer(handles["frozen"], trainable=True)
  model = _model(layer)
  model.compile(keras.optimizers.SGD(0.1), "mse")
  trainable, frozen = _values(layer.trainable_weights), _values(layer.non_trainable_weights)
  model.fit(_x(), np.zeros([8, 2]), epochs=2, verbose=0)
  assert all(_moved(trainable, layer.trainable_weights))
  assert not any(_moved(frozen, layer.non_trainable_weights))


def test_regularization_losses_follow_trainable(handles):
  layer = hubkit.KerasLayer(handles["frozen"], trainable=True)
  model = _model(layer)
  assert [float(l) for l in layer.losses] == pytest.approx([0.5 * 14.0])
  assert len(model.losses) == 1
  # Frozen, each module loss is a constant 0 (hub.KerasLayer gives [0.]).
  layer.trainable = False
  assert [float(l) for l in layer.losses] == [0.0] and layer.trainable_weights == []
  assert [float(l) for l in model.losses] == [0.0]
  layer.trainable = True
  assert [float(l) for l in model.losses] == pytest.approx([0.5 * 14.0])
  frozen = hubkit.KerasLayer(handles["frozen"], trainable=False)
  assert [float(l) for l in frozen.losses] == [0.0]


def test_regularization_loss_enters_the_training_loss(handles):
  layer = hubkit.KerasLayer(handles["frozen"], trainable=True)
  model = _model(layer)
  model.compile(keras.optimizers.SGD(0.0), "mse")
  x, y = _x(), np.zeros([8, 2], np.float32)
  data_loss = float(np.mean(np.square(model.predict(x, verbose=0) - y)))
  reported = model.evaluate(x, y, verbose=0)
  assert reported == pytest.approx(data_loss + 0.5 * 14.0, rel=1e-4)


def test_batch_norm_statistics_update_when_trainable_and_not_when_frozen(handles):
  images = np.random.default_rng(0).uniform(0, 1, [8, 8, 8, 3]).astype(np.float32)
  for trainable in (True, False):
    layer = hubkit.KerasLayer(handles["image"], trainable=trainable)
    model = _model(layer, input_shape=(8, 8, 3))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    statistics = [w for w in layer.weights if "moving" in w.name]
    assert len(statistics) == 4
    before, module_before = _values(statistics), _values(layer.module.trainable_variables)
    model.fit(images, np.zeros([8, 2]), epochs=1, batch_size=8, verbose=0)
    assert all(_moved(before, statistics)) == trainable
    assert any(_moved(before, statistics)) == trainable
    assert all(_moved(module_before, layer.module.trainable_variables)) == trainable


def test_training_flag_reaches_the_matching_trace(handles):
  layer = hubkit.KerasLayer(handles["keras3"], trainable=True)
  x = _x(64)
  np.testing.assert_array_equal(layer(x, training=False), layer(x, training=False))
  assert not np.allclose(layer(x, training=True), layer(x, training=False))
  frozen = hubkit.KerasLayer(handles["keras3"], trainable=False)
  np.testing.assert_allclose(frozen(x, training=True), frozen(x, training=False))


def test_dict_outputs_list_inputs_and_output_key(handles):
  a, b = _x(4), _x(4, seed=1)
  layer = hubkit.KerasLayer(handles["dict_list"])
  outputs = layer([a, b])
  assert set(outputs) == {"default", "sum"}
  np.testing.assert_allclose(outputs["default"], (a + b) @ np.ones([3, 2]), rtol=1e-6)
  keyed = hubkit.KerasLayer(handles["dict_list"], output_key="sum")
  np.testing.assert_allclose(keyed([a, b]), np.sum(a * b, -1), rtol=1e-6)
  inputs = [keras.Input((3,)), keras.Input((3,))]
  model = keras.Model(inputs, hubkit.KerasLayer(handles["dict_list"], output_key="default")(inputs))
  assert model.output.shape == (None, 2)
  # As in hub.KerasLayer, a missing key is found when the layer is called.
  missing = hubkit.KerasLayer(handles["dict_list"], output_key="nope")
  with pytest.raises(ValueError, match="does not contain the output key nope"):
    missing([a, b])


def test_output_shape_override(handles):
  inputs = keras.Input((3,))
  # Without output_shape the shape is inferred by tracing the module...
  assert hubkit.KerasLayer(handles["frozen"])(inputs).shape == (None, 3)
  # ...with it, the declared shape wins (for modules whose shape is unknown).
  assert hubkit.KerasLayer(handles["frozen"], output_shape=[7])(inputs).shape == (None, 7)
  two = hubkit.KerasLayer(handles["dict_list"], output_shape=[[2], []])
  assert [t.shape for t in two([inputs, inputs])] == [(None, 2), (None,)]


def test_hyperparameter_arguments(handles):
  x = _x(2)
  np.testing.assert_allclose(
    hubkit.KerasLayer(handles["hyper"], arguments={"scale": 3.0})(x), 3.0 * x, rtol=1e-6
  )


def test_assets_and_string_inputs(handles):
  layer = hubkit.KerasLayer(handles["text"], trainable=True)
  model = _model(layer, input_shape=(), dtype="string")
  model.compile(keras.optimizers.Adam(0.05), "mse")
  before = _values(layer.trainable_weights)
  model.fit(tf.constant(["hello world", "world", "unknown"]), tf.ones([3, 2]), verbose=0)
  assert all(_moved(before, layer.trainable_weights))


def test_signatures_and_output_keys(handles):
  x = _x(3)
  layer = hubkit.KerasLayer(handles["frozen"], signature="serving_default", output_key="outputs")
  np.testing.assert_allclose(layer(x), x * [1.0, 2.0, 3.0] * 2.0, rtol=1e-6)
  as_dict = hubkit.KerasLayer(
    handles["frozen"], signature="serving_default", signature_outputs_as_dict=True
  )
  assert set(as_dict(x)) == {"outputs"}
  keyed = hubkit.KerasLayer(handles["frozen"], signature="serving_default", output_key="outputs")
  np.testing.assert_allclose(keyed(x), layer(x))
  assert [float(l) for l in layer.losses] == [0.0]


def test_error_cases(handles):
  # hub.KerasLayer raises when the layer is called: `trainable` may change.
  trainable = hubkit.KerasLayer(
    handles["frozen"], signature="serving_default", output_key="outputs", trainable=True
  )
  with pytest.raises(ValueError, match="unsupported when calling a SavedModel signature"):
    trainable(_x(3))
  with pytest.raises(ValueError, match="either output_key or signature_outputs_as_dict"):
    hubkit.KerasLayer(handles["frozen"], signature="serving_default")
  with pytest.raises(ValueError, match="only valid if specifying a signature"):
    hubkit.KerasLayer(handles["frozen"], signature_outputs_as_dict=True)
  with pytest.raises(ValueError, match="Unknown signature nope .*serving_default"):
    hubkit.KerasLayer(handles["frozen"], signature="nope", output_key="x")
  with pytest.raises(hubkit.UsageError, match="does not exist; pass a SavedModel directory"):
    hubkit.KerasLayer("/nonexistent/module")
  loaded = tf.saved_model.load(handles["frozen"])
  with pytest.raises(NotImplementedError, match="string `handle`"):
    hubkit.KerasLayer(loaded).get_config()


def test_zero_trainable_weights(handles):
  layer = hubkit.KerasLayer(handles["all_frozen"], trainable=True)
  assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
  model = _model(layer)
  model.compile(keras.optimizers.Adam(), "mse")
  before = _values(layer.non_trainable_weights)
  model.fit(_x(), np.zeros([8, 2]), verbose=0)
  assert not any(_moved(before, layer.non_trainable_weights))


def test_config_round_trip_and_keras_file(handles, tmp_path):
  layer = hubkit.KerasLayer(handles["tf_keras"], trainable=True, name="module")
  # Like keras.layers.TFSMLayer, rebuilding from a config loads and runs a
  # SavedModel, so it needs Keras safe mode off.
  with pytest.raises(ValueError, match="safe mode"):
    hubkit.KerasLayer.from_config(layer.get_config())
  clone = hubkit.KerasLayer.from_config(layer.get_config(), safe_mode=False)
  assert clone.trainable and clone.name == "module"
  np.testing.assert_allclose(clone(_x()), layer(_x()), rtol=1e-6)
  model = _model(layer)
  model.compile(keras.optimizers.Adam(0.05), "mse")
  model.fit(_x(), np.ones([8, 2]), epochs=2, verbose=0)
  model.save(str(tmp_path / "model.keras"))
  with pytest.raises(ValueError, match="safe mode"):
    keras.saving.load_model(str(tmp_path / "model.keras"))
  reloaded = keras.saving.load_model(str(tmp_path / "model.keras"), safe_mode=False)
  np.testing.assert_allclose(
    reloaded.predict(_x(), verbose=0), model.predict(_x(), verbose=0), rtol=1e-6
  )


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_fine_tunes_a_tf_keras_export(handles, name):
  # tf_keras variable names ("d1/kernel:0") broke TFSMLayer with Adam.
  layer = hubkit.KerasLayer(handles["tf_keras"], trainable=True)
  model = _model(layer)
  model.compile(getattr(keras.optimizers, name)(), "mse")
  before = _values(layer.trainable_weights)
  model.fit(_x(), np.ones([8, 2]), verbose=0)
  assert all(_moved(before, layer.module.trainable_variables))


@pytest.mark.parametrize("kind", ["tf_keras", "keras3", "frozen"])
def test_custom_gradient_tape_loop(handles, kind):
  layer = hubkit.KerasLayer(handles[kind], trainable=True)
  model = _model(layer)
  optimizer = keras.optimizers.Adam(0.01)
  before = _values(layer.trainable_weights)
  losses = []
  for _ in range(5):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(model(_x(), training=True) - 1.0)) + tf.add_n(
        [tf.constant(0.0)] + model.losses
      )
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    losses.append(float(loss))
  assert all(_moved(before, layer.trainable_weights))
  assert losses[-1] < losses[0]


def test_mirrored_strategy(handles):
  strategy = tf.distribute.MirroredStrategy(
    ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
  )
  with strategy.scope():
    layer = hubkit.KerasLayer(handles["tf_keras"], trainable=True)
    model = _model(layer)
    model.compile(keras.optimizers.Adam(0.01), "mse")
  before = _values(layer.trainable_weights)
  history = model.fit(_x(), np.ones([8, 2]), batch_size=8, epochs=2, verbose=0)
  assert np.isfinite(history.history["loss"]).all()
  assert all(_moved(before, layer.trainable_weights))


@pytest.mark.parametrize("kind", ["tf_keras", "keras3", "image"])
def test_fine_tune_and_reexport_passes_check(handles, kind, tmp_path):
  x = np.random.default_rng(0).uniform(0, 1, [8, 8, 8, 3] if kind == "image" else [8, 3])
  x = x.astype(np.float32)
  layer = hubkit.KerasLayer(handles[kind], trainable=True)
  model = _model(layer, input_shape=x.shape[1:])
  model.compile(keras.optimizers.Adam(0.05), "mse")
  model.fit(x, np.ones([8, 2]), epochs=2, verbose=0)
  path = layer.export_module(str(tmp_path / "fine_tuned"))
  reloaded = tf.saved_model.load(path)
  np.testing.assert_allclose(
    reloaded(x, training=False), layer(x, training=False), rtol=1e-5, atol=1e-6
  )
  assert hubkit.read_metadata(path)["source"]["parent"] == handles[kind]
  report = hubkit.check_module(path)
  assert report.conforms, report.table()


@pytest.mark.parametrize(
  "name, arguments",
  [
    ("my_mul_model", {}),
    ("hyper_parameter", {"a": 2.0}),
    ("hyper_parameter_and_training", {"a": 2.0}),
  ],
)
def test_training_is_detected_by_name_not_position(tmp_path, name, arguments):
  path = canonical_modules.CANONICAL[name](str(tmp_path / name))
  x = np.ones([8, 3], np.float32)
  expected = hub.load(path)(x, **arguments).numpy() if arguments else x * 2.0
  layer = hubkit.KerasLayer(path, trainable=True, arguments=arguments)
  np.testing.assert_allclose(layer(x), expected, rtol=1e-6)
  model = keras.Sequential([keras.Input((3,)), layer])
  model.compile(keras.optimizers.Adam(0.05), "mse")
  before = _values(layer.trainable_weights)
  model.fit(x, np.zeros_like(expected), epochs=2, verbose=0)
  assert all(_moved(before, layer.trainable_weights))
  # hub.KerasLayer in tf_keras agrees on the same module.
  reference = hub.KerasLayer(path, trainable=True, arguments=arguments)
  np.testing.assert_allclose(reference(x), expected, rtol=1e-6)
