"""`hubkit.KerasLayer`: Reusable SavedModels as Keras 3 layers.

TensorFlow 2.21 defaults to Keras 3, where `hub.KerasLayer` (a tf_keras
layer) cannot be added to a model, and `keras.layers.TFSMLayer` ignores
regularization losses, has no `training` dispatch for `__call__`, and breaks
optimizers that name slots after the variable (`'…kernel:0_momentum' is not a
valid scope name`). This layer fills the gap with hub.KerasLayer's semantics.
"""

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from hubkit import cache
from hubkit import interface
from hubkit import reexport
from hubkit.errors import UsageError


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
  mode (as Keras does for a frozen BatchNormalization).

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
      (fetched through the cache in $TFHUB_CACHE_DIR), or an object returned
      by `tf.saved_model.load`.
    trainable: whether the module's trainable variables are fine-tuned.
    arguments: extra keyword arguments for every call (e.g. hyperparameters).
    signature: call this signature (inference only) instead of `__call__`.
    output_key: pick this key from a dict output.
    signature_outputs_as_dict: return a signature's whole output dict.
    output_shape: the output shape without the batch dimension, for modules
      whose output shape cannot be inferred (a list of them for several
      outputs).
    load_options: `tf.saved_model.LoadOptions` for loading.
    safe_mode: scan a module given by handle before loading it and refuse one
      whose ops reach outside the process (see docs/security.md); pass False
      only for a module you trust.
    **kwargs: passed to `keras.layers.Layer` (name, dtype, ...).

  Raises:
    UsageError: `trainable=True` with a signature, an unknown signature, or a
      module without `__call__`.
    hubkit.safety.ops.UnsafeModuleError: `safe_mode` and the module holds an
      op that is not allowed.
  """

  def __init__(self, handle: Any, trainable: bool = False,
               arguments: Optional[Mapping[str, Any]] = None, signature: Optional[str] = None,
               output_key: Optional[str] = None, signature_outputs_as_dict: Optional[bool] = None,
               output_shape: Optional[Sequence[Any]] = None,
               load_options: Optional[tf.saved_model.LoadOptions] = None,
               safe_mode: bool = True, **kwargs):
    super().__init__(trainable=trainable, **kwargs)
    if signature and trainable:
      raise UsageError(f"signature {signature!r} can only run in inference mode; use "
                       "trainable=False, or drop `signature` to fine-tune through __call__.")
    if signature_outputs_as_dict and output_key:
      raise UsageError("pass either output_key or signature_outputs_as_dict, not both.")
    self._handle = handle
    self._arguments = dict(arguments or {})
    self._signature = signature
    self._output_key = output_key
    self._signature_outputs_as_dict = signature_outputs_as_dict
    self._output_shape = output_shape
    if isinstance(handle, (str, os.PathLike)):
      self._module = cache.load(os.fspath(handle), safe_mode=safe_mode, options=load_options)
    else:
      self._module = handle
    self._function = self._pick_function()
    self._check_output_key()
    self._takes_training = signature is None and interface.takes_training(self._function)
    self._track_module_variables()
    self.built = True

  def _pick_function(self) -> Any:
    if self._signature:
      signatures = getattr(self._module, "signatures", {})
      if self._signature not in signatures:
        raise UsageError(f"the module has no signature {self._signature!r}; it has: "
                         f"{', '.join(signatures) or 'none'}.")
      return signatures[self._signature]
    if not callable(getattr(self._module, "__call__", None)) or not hasattr(
        self._module.__call__, "concrete_functions"):
      raise UsageError("the module has no __call__ tf.function; pass signature=NAME to use "
                       "one of its signatures (inference only).")
    return self._module.__call__

  def _check_output_key(self) -> None:
    if self._output_key is None:
      return
    concrete = (self._function if self._signature
                else self._function.concrete_functions[0])
    outputs = concrete.structured_outputs
    if not isinstance(outputs, Mapping) or self._output_key not in outputs:
      keys = ", ".join(sorted(outputs)) if isinstance(outputs, Mapping) else "none (not a dict)"
      raise UsageError(f"output_key {self._output_key!r} is not an output of the module; "
                       f"its output keys: {keys}.")

  def _track_module_variables(self) -> None:
    if self._signature:
      variables = list(self._function.variables)
      trainable_ids = set()
    else:
      variables = list(getattr(self._module, "variables", []))
      trainable_ids = {id(v) for v in getattr(self._module, "trainable_variables", [])}
    for variable in variables:
      # `initializer=<tf.Variable>` makes the Keras variable adopt that
      # tf.Variable as its storage: nothing is copied.
      self._track_variable(keras.Variable(
          initializer=variable, shape=variable.shape, dtype=variable.dtype,
          trainable=id(variable) in trainable_ids, name=_keras_name(variable)))

  @property
  def module(self) -> Any:
    """The loaded module object (its variables are this layer's weights)."""
    return self._module

  @property
  def regularization_losses(self) -> List[Any]:
    """The module's regularization loss functions (empty for signatures)."""
    if self._signature:
      return []
    return list(getattr(self._module, "regularization_losses", []))

  def _get_own_losses(self) -> List[Any]:
    # Keras collects every layer's losses through this hook (model.losses,
    # compute_loss), so the module's losses join the model's loss exactly
    # while the layer is trainable, as hub.KerasLayer does.
    losses = super()._get_own_losses()
    if self.trainable:
      losses.extend(loss() for loss in self.regularization_losses)
    return losses

  def _training_value(self, training: Any) -> Any:
    if not self.trainable or training is None:
      return False
    return training

  def call(self, inputs, training=None):
    if self._signature:
      outputs = self._run_signature(inputs)
    elif self._takes_training:
      training = self._training_value(training)
      if isinstance(training, bool):
        outputs = self._function(inputs, training=training, **self._arguments)
      else:
        outputs = tf.cond(tf.cast(training, tf.bool),
                          lambda: self._function(inputs, training=True, **self._arguments),
                          lambda: self._function(inputs, training=False, **self._arguments))
    else:
      outputs = self._function(inputs, **self._arguments)
    if self._output_key is not None:
      return outputs[self._output_key]
    return outputs

  def _run_signature(self, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
      outputs = self._function(**inputs, **self._arguments)
    else:
      names = list(self._function.structured_input_signature[1])
      if len(names) != 1:
        raise UsageError(f"signature {self._signature!r} takes inputs {', '.join(names)}; "
                         "pass a dict with those keys.")
      outputs = self._function(**{names[0]: inputs}, **self._arguments)
    if self._output_key is None and not self._signature_outputs_as_dict:
      if len(outputs) != 1:
        raise UsageError(f"signature {self._signature!r} has outputs {', '.join(outputs)}; "
                         "pass output_key=NAME or signature_outputs_as_dict=True.")
      return next(iter(outputs.values()))
    return outputs

  def compute_output_spec(self, inputs, training=None):
    if self._output_shape is None:
      return super().compute_output_spec(inputs, training=training)
    batch = tf.nest.flatten(inputs)[0].shape[0]
    shapes = self._output_shape
    nested = isinstance(shapes[0], (list, tuple)) if shapes else False
    specs = [keras.KerasTensor((batch,) + tuple(s), dtype=self.compute_dtype)
             for s in (shapes if nested else [shapes])]
    return specs if nested else specs[0]

  @classmethod
  def from_config(cls, config: Dict[str, Any], custom_objects: Any = None,
                  safe_mode: Optional[bool] = None) -> "KerasLayer":
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
    from keras.src.saving import serialization_lib  # pylint: disable=g-import-not-at-top
    effective = safe_mode if safe_mode is not None else serialization_lib.in_safe_mode()
    if effective is not False:
      raise ValueError(
          f"refusing to rebuild hubkit.KerasLayer for {config.get('handle')!r} in Keras safe "
          "mode: it would fetch and run that SavedModel. If you trust the model, pass "
          "safe_mode=False to keras.saving.load_model (or call "
          "keras.config.enable_unsafe_deserialization()).")
    return cls(**config)

  def get_config(self) -> Dict[str, Any]:
    if not isinstance(self._handle, (str, os.PathLike)):
      raise UsageError("a KerasLayer built from a loaded object cannot be serialised; build "
                       "it from a handle (a path) to save the model.")
    config = super().get_config()
    config.update({
        "handle": os.fspath(self._handle),
        "arguments": self._arguments,
        "signature": self._signature,
        "output_key": self._output_key,
        "signature_outputs_as_dict": self._signature_outputs_as_dict,
        "output_shape": self._output_shape,
    })
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
        self._module, export_dir,
        {"source": {"kind": "fine_tuned", "parent": parent, "layer": self.name}},
        overwrite=overwrite)
