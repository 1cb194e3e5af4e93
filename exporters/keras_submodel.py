"""Cut a piece out of a Keras model and export it as a Reusable SavedModel.

The piece starts at `input_layer`'s input (that layer included) and ends
with `output_layer`'s output; by default it is the whole model. tf_keras
pieces are written by tf_keras itself (`save(..., include_optimizer=False)`,
which implements the Reusable interface); Keras 3 pieces are wrapped in
`Keras3Module`, because Keras 3 cannot write that interface.

Before the export is renamed into place, it is reloaded and compared with the
source piece: outputs within `tolerance` in inference mode and the same number
of trainable variables. A failed check leaves nothing at `export_dir`.
"""

import os
from typing import Any, Dict, List, Optional, Tuple
import warnings

from absl import logging
import numpy as np
import tensorflow as tf

from hubkit.module import metadata
from hubkit.module import sample_inputs
from hubkit.utils.atomic import atomic_directory
from hubkit.errors import HubkitError, UsageError
from hubkit.exporters import sources
from hubkit.exporters.keras3_module import Keras3Module


def parse_input_spec(text: str) -> tf.TensorSpec:
  """Parses "float32:[None,64]" into a TensorSpec.

  Raises:
    UsageError: the text is malformed or the batch dimension is not None.
  """
  try:
    dtype_name, shape_text = text.split(":", 1)
    dtype = tf.as_dtype(dtype_name.strip())
    dims = [d.strip() for d in shape_text.strip().strip("[]").split(",") if d.strip()]
    shape = [None if d.lower() in ("none", "?", "-1") else int(d) for d in dims]
  except (ValueError, TypeError) as e:
    raise UsageError(
      f"cannot parse input spec {text!r}; write DTYPE:[None,d1,...], e.g. float32:[None,64]."
    ) from e
  if not shape or shape[0] is not None:
    raise UsageError(
      f"input spec {text!r} needs a leading batch dimension of None, e.g. float32:[None,64]."
    )
  return tf.TensorSpec(shape, dtype)


def _is_graph_model(model: Any, flavour: str) -> bool:
  if flavour == "tf_keras":
    return bool(getattr(model, "_is_graph_network", False))
  try:
    return bool(model.inputs)
  except (AttributeError, ValueError):
    return False


def _layer(model: Any, name: str, role: str) -> Any:
  try:
    return model.get_layer(name)
  except ValueError:
    names = ", ".join(layer.name for layer in model.layers)
    raise UsageError(
      f"{role} {name!r} is not a layer of {model.name}; valid layer names: {names}."
    ) from None


def _model_inputs(model: Any) -> Any:
  """The model's symbolic inputs in their own structure (tensor, list or dict).

  A Keras 3 `Sequential` (also one loaded from `.keras`) has no `input` of
  its own until it is called; its functional graph's `inputs` list does.
  """
  try:
    return model.input
  except (AttributeError, ValueError):
    inputs = list(model.inputs)
    return inputs[0] if len(inputs) == 1 else inputs


def _cut(model: Any, flavour: str, input_layer: Optional[str], output_layer: Optional[str]) -> Any:
  """Returns the functional piece between the two layers (inclusive)."""
  if not input_layer and not output_layer:
    return model
  inputs = _layer(model, input_layer, "input_layer").input if input_layer else _model_inputs(model)
  outputs = _layer(model, output_layer, "output_layer").output if output_layer else model.output
  keras = sources._tf_keras() if flavour == "tf_keras" else sources._keras3()
  try:
    return keras.Model(inputs, outputs, name=f"{model.name}_piece")
  except ValueError as e:
    raise UsageError(
      f"cannot cut from {input_layer or 'the model inputs'} to "
      f"{output_layer or 'the model outputs'}: the output is not computed "
      f"from that input alone ({str(e).splitlines()[0]}); pick an "
      "output_layer downstream of input_layer."
    ) from e


def _input_signature(piece: Any, input_spec: Optional[Any]) -> Any:
  if input_spec is not None:
    specs = [parse_input_spec(s) if isinstance(s, str) else s for s in tf.nest.flatten(input_spec)]
    return tf.nest.pack_sequence_as(input_spec, specs)
  # `input` keeps the model's own input structure (a tensor, list or dict),
  # which the traced call must accept as it is.
  return tf.nest.map_structure(
    lambda t: tf.TensorSpec([None] + list(t.shape[1:]), tf.as_dtype(t.dtype)), piece.input
  )


def _warn_lambda_layers(piece: Any) -> List[str]:
  names = [
    layer.name
    for layer in piece._flatten_layers(include_self=False)
    if type(layer).__name__ == "Lambda"
  ]
  for name in names:
    message = (
      f"layer {name!r} is a Lambda layer: its Python code is baked into the "
      "traced graph, so the export is not portable to other Keras versions "
      "or re-buildable from its config; replace it with a custom layer."
    )
    logging.warning(message)
    warnings.warn(message, stacklevel=3)
  return names


def _verify(
  export_dir: str, piece: Any, signature: Any, tolerance: float
) -> Tuple[Dict[str, Any], Any]:
  """Reloads the export and compares it with the in-memory piece.

  Returns:
    ({"parity_max_abs_diff": ...}, the loaded export).
  """
  loaded = tf.saved_model.load(export_dir)
  expected_trainable = len(piece.trainable_weights)
  if len(loaded.trainable_variables) != expected_trainable:
    raise HubkitError(
      f"the export has {len(loaded.trainable_variables)} trainable variables "
      f"but the source piece has {expected_trainable}; please report this "
      "model as a hubkit bug."
    )
  try:
    inputs = sample_inputs.make_inputs(signature)
  except UsageError as e:
    logging.warning("parity not checked: %s", e)
    return {"parity_max_abs_diff": None}, loaded
  outputs = piece(inputs, training=False)
  expected = tf.nest.flatten(outputs)
  got = tf.nest.flatten(loaded(inputs, training=False))
  diff = max(
    float(np.max(np.abs(np.asarray(e) - np.asarray(g)))) if np.size(e) else 0.0
    for e, g in zip(expected, got)
  )
  if len(expected) != len(got) or not diff <= tolerance:
    raise HubkitError(
      f"the export's outputs differ from the source piece by {diff:.3g} "
      f"(tolerance {tolerance:g}); the piece may depend on Python state "
      "that cannot be saved."
    )
  return {"parity_max_abs_diff": diff}, loaded


def _regularization_loss(penalty: Any) -> Any:
  return tf.function(lambda: tf.cast(penalty(), tf.float32), input_signature=[])


def _save_tf_keras_with_vocabularies(piece: Any, signature: Any, export_dir: str) -> None:
  """Saves a tf_keras piece whose weights include vocabulary handlers.

  tf_keras's own SavedModel lists a preprocessing layer's vocabulary handler
  (TextVectorization, StringLookup, IntegerLookup) in `variables` as None,
  which no consumer can load. Here the model is tracked whole (so its lookup
  tables are saved) behind the interface, with only real variables listed.
  """
  obj = tf.train.Checkpoint()
  obj.model = piece
  obj.__call__ = tf.function(lambda inputs, training=False: piece(inputs, training=training))
  for training in (True, False):
    obj.__call__.get_concrete_function(signature, training=training)
  obj.variables = [v for v in piece.variables if isinstance(v, tf.Variable)]
  obj.trainable_variables = [v for v in piece.trainable_variables if isinstance(v, tf.Variable)]
  obj.regularization_losses = [
    _regularization_loss(penalty)
    for layer in piece._flatten_layers()
    for penalty in layer._callable_losses
  ]
  for loss in obj.regularization_losses:
    loss.get_concrete_function()
  tf.saved_model.save(obj, export_dir)


def export_keras_submodel(
  model: Any,
  export_dir: str,
  input_layer: Optional[str] = None,
  output_layer: Optional[str] = None,
  input_spec: Optional[Any] = None,
  weights: Optional[str] = None,
  overwrite: bool = False,
  tolerance: float = 1e-5,
) -> str:
  """Exports a piece of a Keras model (or all of it) as a Reusable SavedModel.

  Args:
    model: a tf_keras or Keras 3 model, or a path (see `load_keras_model`).
    export_dir: the SavedModel directory to create.
    input_layer: the piece starts with this layer (its input is the piece's
      input); default: the model's inputs.
    output_layer: the piece ends with this layer's output; default: the
      model's outputs.
    input_spec: a `tf.TensorSpec` or "float32:[None,64]" (or a list of them);
      required for subclassed models, optional otherwise.
    weights: the weights file when `model` is a `.json` config.
    overwrite: replace an existing `export_dir`.
    tolerance: the largest allowed difference between the export's and the
      piece's inference outputs.

  Returns:
    The absolute path of the export.

  Raises:
    UsageError: bad model, layer names, input spec or target directory.
    HubkitError: the export did not reproduce the source piece.
  """
  source_path = None if not isinstance(model, (str, os.PathLike)) else os.fspath(model)
  model = sources.load_keras_model(model, weights=weights)
  flavour = sources.flavour(model)
  graph = _is_graph_model(model, flavour)
  if not graph and (input_layer or output_layer):
    raise UsageError(
      f"{model.name} is a subclassed model, which has no layer graph to cut; "
      "export it whole (omit input_layer/output_layer)."
    )
  if not graph and input_spec is None:
    raise UsageError(
      f"{model.name} is a subclassed model, so its input shape is unknown; "
      "pass `input_spec`=float32:[None,64]."
    )
  piece = _cut(model, flavour, input_layer, output_layer)
  signature = _input_signature(piece, input_spec)
  lambdas = _warn_lambda_layers(piece)
  info = {
    "source": {
      "kind": "keras",
      "flavour": flavour,
      "path": source_path,
      "model": model.name,
      "input_layer": input_layer,
      "output_layer": output_layer,
      "lambda_layers": lambdas,
    }
  }
  with atomic_directory(export_dir, overwrite=overwrite) as tmp:
    if flavour == "tf_keras" and any(not isinstance(w, tf.Variable) for w in piece.weights):
      _save_tf_keras_with_vocabularies(piece, signature, tmp)
    elif flavour == "tf_keras":
      if not graph:
        piece(sample_inputs.make_inputs(signature), training=False)  # Builds the call spec.
      piece.save(tmp, save_format="tf", include_optimizer=False)
    else:
      Keras3Module(piece, [signature]).save_saved_model(tmp)
    parity, loaded = _verify(tmp, piece, signature, tolerance)
    info.update(parity)
    metadata.write_metadata(tmp, info, module=loaded)
  return os.path.abspath(export_dir)
