"""`hubkit.KerasLayer`: Reusable SavedModels as Keras 3 layers.

TensorFlow 2.21 defaults to Keras 3, where `hub.KerasLayer` (a tf_keras
layer) cannot be added to a model, and `keras.layers.TFSMLayer` ignores
regularization losses, has no `training` dispatch for `__call__`, and breaks
optimizers that name slots after the variable (`'…kernel:0_momentum' is not a
valid scope name`). This layer fills the gap with hub.KerasLayer's semantics.
"""

import json
import os
from typing import Any, Dict, List, Mapping, Optional

from absl import logging
import keras
import tensorflow as tf

from hubkit.cache import resolver
from hubkit.module import interface
from hubkit.module import reexport
from hubkit.errors import UsageError


def _to_shapes(nest: Any) -> Any:
  """Turns a nest of shape-like tuples/lists (or a dict of them) into TensorShapes."""
  if isinstance(nest, Mapping):
    return {key: _to_shapes(value) for key, value in nest.items()}
  try:
    return tf.TensorShape(nest)
  except (TypeError, ValueError):
    pass
  if isinstance(nest, (list, tuple)):
    return type(nest)(_to_shapes(value) for value in nest)
  raise UsageError(f"output_shape {nest!r} is not a shape or a nest (list, tuple, dict) of shapes.")


def _map_shapes(function: Any, shapes: Any) -> Any:
  """Applies `function` to each shape (a tuple/list of ints and None) in a nest."""
  if isinstance(shapes, Mapping):
    return {key: _map_shapes(function, value) for key, value in shapes.items()}
  if isinstance(shapes, (list, tuple)) and all(d is None or isinstance(d, int) for d in shapes):
    return function(tuple(shapes))
  if isinstance(shapes, (list, tuple)):
    return type(shapes)(_map_shapes(function, s) for s in shapes)
  return function(tuple(shapes))


def _keras_name(variable: tf.Variable) -> str:
  # Keras 3 names may not contain "/", and optimizers build slot names such
  # as "<name>_momentum" that must be valid scope names, so drop the ":0".
  return variable.name.split(":")[0].replace("/", "_")


@keras.saving.register_keras_serializable(package="hubkit")
class KerasLayer(keras.layers.Layer):
  """Wraps a Reusable SavedModel (or one of its signatures) as a Keras 3 layer.

  The module's `trainable_variables` become the layer's trainable weights and
  the rest of its `variables` non-trainable ones, shared without copying, so
  fine-tuning updates the module itself. While the layer is trainable its
  `regularization_losses` are in `layer.losses` and `training` follows the
  model; when frozen, losses vanish and the module always runs in inference
  mode (as Keras does for a frozen BatchNormalization). It takes
  hub.KerasLayer's arguments and raises its errors (as ValueErrors) at the
  same moments; docs/keras3.md lists the few differences Keras 3 imposes.

  Example:

  ```python
  import keras
  import hubkit

  model = keras.Sequential([
      keras.Input(shape=(64,)),
      hubkit.KerasLayer("/tmp/feature_extractor", trainable=True),
      keras.layers.Dense(10),
  ])
  model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  ```

  Args:
    handle: a SavedModel directory, a `.tar.gz` archive, an http(s) handle
      (fetched through the cache in $TFHUB_CACHE_DIR), or a callable object
      (e.g. one returned by `tf.saved_model.load`).
    trainable: whether the module's trainable variables are fine-tuned; True
      with a signature raises a ValueError when the layer is called, as in
      hub.KerasLayer.
    arguments: extra keyword arguments for every call (e.g. hyperparameters).
    _sentinel: keeps the arguments after it keyword-only.
    tags: the MetaGraph tags to load (`tf.saved_model.load(tags=...)`).
    signature: call this signature (inference only) instead of `__call__`;
      then exactly one of `output_key` or `signature_outputs_as_dict`.
    signature_outputs_as_dict: return a signature's whole output dict.
    output_key: pick this key from a dict output.
    output_shape: the output shape without the batch dimension, for modules
      whose output shape cannot be inferred; a nest (list, tuple or dict) of
      shapes for several outputs.
    load_options: `tf.saved_model.LoadOptions` for loading.
    force_keras_loading: unsupported in Keras 3 (hub.KerasLayer loads the
      SavedModel as a tf_keras model); True raises a ValueError.
    safe_mode: scan a module given by handle before loading it and refuse one
      whose ops reach outside the process (see docs/security.md); pass False
      only for a module you trust.
    **kwargs: passed to `keras.layers.Layer` (name, dtype, ...).

  Raises:
    ValueError (hubkit.UsageError): invalid argument combinations, an
      unknown signature, a module that is neither callable nor has the
      signature, or non-callable regularization losses; the same cases and
      messages' meaning as hub.KerasLayer.
    hubkit.safety.ops.UnsafeModuleError: `safe_mode` and the module holds an
      op that is not allowed.
  """

  def __init__(
    self,
    handle: Any,
    trainable: bool = False,
    arguments: Optional[Mapping[str, Any]] = None,
    _sentinel: Any = None,
    tags: Optional[Any] = None,
    signature: Optional[str] = None,
    signature_outputs_as_dict: Optional[bool] = None,
    output_key: Optional[str] = None,
    output_shape: Optional[Any] = None,
    load_options: Optional[tf.saved_model.LoadOptions] = None,
    force_keras_loading: bool = False,
    safe_mode: bool = True,
    **kwargs,
  ):
    if _sentinel is not None:
      raise UsageError(
        "KerasLayer takes only handle, trainable and arguments positionally; "
        "pass the others by keyword."
      )
    if force_keras_loading:
      raise UsageError(
        "force_keras_loading=True loads the module as a tf_keras model, which "
        "cannot be part of a Keras 3 model; use hub.KerasLayer in tf_keras."
      )
    super().__init__(trainable=trainable, **kwargs)
    # Keras 3 refuses non-tensor positional call arguments unless told; the
    # module decides what its inputs may be (hub.KerasLayer passes them on).
    self._allow_non_tensor_positional_args = True
    if signature and (output_key is not None) == bool(signature_outputs_as_dict):
      raise UsageError(
        "When using a signature, either output_key or signature_outputs_as_dict=True should be set."
      )
    if not signature and signature_outputs_as_dict:
      raise UsageError("signature_outputs_as_dict is only valid if specifying a signature.")
    self._handle = handle
    self._arguments = dict(arguments or {})
    self._signature = signature
    self._output_key = output_key
    self._signature_outputs_as_dict = signature_outputs_as_dict
    # Like hub.KerasLayer, the attribute exists only when a shape was given
    # (hub's tests assert exactly that, also after a config round trip).
    if output_shape is not None:
      self._output_shape = _to_shapes(output_shape)
    if isinstance(handle, (str, os.PathLike)):
      options = {"options": load_options} if load_options is not None else {}
      self._module = resolver.load(os.fspath(handle), safe_mode=safe_mode, tags=tags, **options)
    else:
      if tags is not None or load_options is not None:
        raise UsageError(
          "Passing a callable handle is mutually exclusive with setting tags or load_options."
        )
      self._module = handle
    self._function = self._pick_function()
    self._takes_training = signature is None and interface.takes_training(self._function)
    for loss in self.regularization_losses:
      if not callable(loss):
        raise UsageError(
          "KerasLayer(obj) expects obj.regularization_losses to be an iterable "
          "of callables, each returning a scalar loss term."
        )
    self._track_module_variables()
    self._logged_zero_trainable = False
    self.built = True

  def _pick_function(self) -> Any:
    if callable(self._module) and not self._signature:
      return getattr(self._module, "__call__", self._module)
    signatures = getattr(self._module, "signatures", None)
    if signatures is None:
      raise UsageError(
        "Loaded object has no signatures."
        if self._signature
        else "Loaded object is not callable and has no signatures."
      )
    if self._signature is None:
      raise UsageError(
        "Signature name has to be specified for non-callable saved models; "
        f"available signatures: {', '.join(signatures) or 'none'}."
      )
    if self._signature not in signatures:
      raise UsageError(
        f"Unknown signature {self._signature} in {self._handle} (available "
        f"signatures: {', '.join(signatures) or 'none'})."
      )
    return signatures[self._signature]

  def _track_module_variables(self) -> None:
    variables = list(
      getattr(self._module, "variables", None)
      or (self._function.variables if self._signature else [])
    )
    trainable_ids = {id(v) for v in getattr(self._module, "trainable_variables", [])}
    for variable in variables:
      # `initializer=<tf.Variable>` makes the Keras variable adopt that
      # tf.Variable as its storage: nothing is copied.
      self._track_variable(
        keras.Variable(
          initializer=variable,
          shape=variable.shape,
          dtype=variable.dtype,
          trainable=id(variable) in trainable_ids,
          name=_keras_name(variable),
        )
      )

  @property
  def module(self) -> Any:
    """The loaded module object (its variables are this layer's weights)."""
    return self._module

  @property
  def resolved_object(self) -> Any:
    """The object `handle` resolved to in `__init__` (as in hub.KerasLayer)."""
    return self._module

  @property
  def regularization_losses(self) -> List[Any]:
    """The module's regularization loss functions."""
    return list(getattr(self._module, "regularization_losses", None) or [])

  def _get_own_losses(self) -> List[Any]:
    # Keras collects every layer's losses through this hook (model.losses,
    # compute_loss). As in hub.KerasLayer, each module loss counts while the
    # layer is trainable and is a constant 0 while it is frozen.
    losses = super()._get_own_losses()
    losses.extend(
      loss() if self.trainable else tf.constant(0.0) for loss in self.regularization_losses
    )
    return losses

  def _check_trainability(self) -> None:
    # Checked at call time, like hub.KerasLayer: `trainable` is a mutable
    # public attribute.
    if not self.trainable:
      return
    if self._signature:
      raise UsageError(
        "Setting KerasLayer.trainable = True is unsupported when calling a SavedModel signature."
      )
    if not self.trainable_weights and not self._logged_zero_trainable:
      logging.error("hubkit.KerasLayer is trainable but has zero trainable weights.")
      self._logged_zero_trainable = True

  def _training_value(self, training: Any) -> Any:
    if not self.trainable or training is None:
      return False
    return training

  def call(self, inputs, training=None):
    self._check_trainability()
    if self._signature:
      outputs = self._run_signature(inputs)
    elif self._takes_training:
      training = self._training_value(training)
      if isinstance(training, bool):
        outputs = self._module(inputs, training=training, **self._arguments)
      else:
        outputs = tf.cond(
          tf.cast(training, tf.bool),
          lambda: self._module(inputs, training=True, **self._arguments),
          lambda: self._module(inputs, training=False, **self._arguments),
        )
    else:
      outputs = self._module(inputs, **self._arguments)
    if self._output_key is not None:
      if not isinstance(outputs, Mapping):
        raise UsageError(
          f"Specifying `output_key` is forbidden if output type "
          f"{type(outputs).__name__} is not a dict."
        )
      if self._output_key not in outputs:
        raise UsageError(
          f"KerasLayer output does not contain the output key "
          f"{self._output_key} (available: {', '.join(outputs)})."
        )
      outputs = outputs[self._output_key]
    if self._declared_output_shape() is not None:
      batch = tf.nest.flatten(inputs)[0].shape[:1]
      tf.nest.map_structure(
        lambda t, s: t.set_shape(batch.concatenate(s)), outputs, self._output_shape
      )
    return outputs

  def _run_signature(self, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
      return self._function(**inputs, **self._arguments)
    names = list(self._function.structured_input_signature[1])
    if len(names) != 1:
      raise UsageError(
        f"signature {self._signature!r} takes inputs {', '.join(names)}; "
        "pass a dict with those keys."
      )
    return self._function(**{names[0]: inputs}, **self._arguments)

  def compute_output_shape(self, input_shape):
    """The output shape: from `output_shape` when given, else by tracing the module."""
    if self._declared_output_shape() is None:
      symbolic = _map_shapes(lambda s: keras.KerasTensor(s, dtype=self.compute_dtype), input_shape)
      return tf.nest.map_structure(lambda t: tuple(t.shape), self.compute_output_spec(symbolic))
    shapes = []
    _map_shapes(shapes.append, input_shape)
    batch = shapes[0][0] if shapes and shapes[0] else None
    return tf.nest.map_structure(lambda s: (batch,) + tuple(s.as_list()), self._output_shape)

  def _declared_output_shape(self) -> Any:
    """The `output_shape` given to the constructor, or None."""
    return getattr(self, "_output_shape", None)

  def compute_output_spec(self, inputs, training=None):
    if self._declared_output_shape() is None:
      # Keras would use compute_output_shape (defined above) instead of
      # tracing; trace the module itself, as an undeclared shape requires.
      return keras.Operation.compute_output_spec(self, inputs, training=training)
    batch = tf.nest.flatten(inputs)[0].shape[0]
    return tf.nest.map_structure(
      lambda s: keras.KerasTensor((batch,) + tuple(s.as_list()), dtype=self.compute_dtype),
      self._output_shape,
    )

  @classmethod
  def from_config(
    cls, config: Dict[str, Any], custom_objects: Any = None, safe_mode: Optional[bool] = None
  ) -> "KerasLayer":
    """Rebuilds the layer from `get_config()`, honouring Keras's safe mode.

    Like `keras.layers.TFSMLayer`, this layer loads and runs a SavedModel
    named in the config, so in safe mode (the default of
    `keras.saving.load_model`) it refuses.

    Raises:
      ValueError: safe mode is on; pass `safe_mode=False` to the loading
        function, or call `keras.config.enable_unsafe_deserialization()`,
        for a model you trust.
    """
    del custom_objects
    from keras.src.saving import serialization_lib

    effective = safe_mode if safe_mode is not None else serialization_lib.in_safe_mode()
    if effective is not False:
      raise ValueError(
        f"refusing to rebuild hubkit.KerasLayer for {config.get('handle')!r} in Keras safe "
        "mode: it would fetch and run that SavedModel. If you trust the model, pass "
        "safe_mode=False to keras.saving.load_model (or call "
        "keras.config.enable_unsafe_deserialization())."
      )
    return cls(**config)

  def get_config(self) -> Dict[str, Any]:
    """The layer's config; like hub.KerasLayer's, only for a string handle.

    Raises:
      NotImplementedError: the handle is an object, not a path or URL (so
        that `tf.saved_model.save` falls back to not using the config).
      ValueError: `arguments` or `output_shape` are not JSON-serialisable.
    """
    if not isinstance(self._handle, (str, os.PathLike)):
      raise NotImplementedError(
        "Can only generate a valid config for "
        "`hubkit.KerasLayer(handle, ...)` that uses a string "
        f"`handle`; got {type(self._handle).__name__}."
      )
    config = super().get_config()
    config["handle"] = os.fspath(self._handle)
    if self._declared_output_shape() is not None:
      config["output_shape"] = tf.nest.map_structure(
        lambda s: list(s.as_list()), self._output_shape
      )
    for key, value in self._arguments.items():
      try:
        json.dumps(value)
      except TypeError:
        raise UsageError(
          f"`KerasLayer(..., arguments)` contains a value that is not "
          f"JSON-serialisable under key {key!r}."
        ) from None
    if self._arguments:
      config["arguments"] = self._arguments
    for key, value in (
      ("signature", self._signature),
      ("output_key", self._output_key),
      ("signature_outputs_as_dict", self._signature_outputs_as_dict),
    ):
      if value:
        config[key] = value
    return config

  def export_module(self, export_dir: str, overwrite: bool = False) -> str:
    """Saves the (fine-tuned) module again as a Reusable SavedModel.

    Args:
      export_dir: the directory to create; written to a temporary sibling
        and renamed when complete.
      overwrite: replace an existing directory.

    Returns:
      The absolute path of the export.
    """
    parent = os.fspath(self._handle) if isinstance(self._handle, (str, os.PathLike)) else None
    return reexport.export_loaded_module(
      self._module,
      export_dir,
      {"source": {"kind": "fine_tuned", "parent": parent, "layer": self.name}},
      overwrite=overwrite,
    )
