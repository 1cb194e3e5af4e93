"""`ReusableModule`: the base class of low-level Reusable SavedModels.

The Reusable SavedModel interface (tensorflow/hub docs/reusable_saved_models.md)
asks a loaded object for four things: a `__call__` tf.function traced for
`training=True` and `training=False`, `variables`, `trainable_variables` and
`regularization_losses`. Getting all four right by hand is fiddly (a forgotten
trace only shows up when a consumer fine-tunes), so the base class derives them
from one `call()` the author writes.
"""

import os
from typing import Any, Callable, List, Mapping, Optional, Sequence

import tensorflow as tf

from hubkit.module import _trackables
from hubkit.module import interface
from hubkit.module import metadata
from hubkit.utils.atomic import atomic_directory
from hubkit.errors import UsageError

# Attributes the interface requires on the saved object. They are plain
# tracked lists (so tf.saved_model.save writes them), created on first use.
_LAZY_ATTRIBUTES = interface.LISTS


def nest_paths(structure: Any, prefix: tuple = ()) -> List[tuple]:
  """Returns the path of every leaf, in tf.nest.flatten order (sorted dict keys)."""
  if isinstance(structure, Mapping):
    return [p for k in sorted(structure) for p in nest_paths(structure[k], prefix + (k,))]
  if isinstance(structure, (list, tuple)):
    return [p for i, v in enumerate(structure) for p in nest_paths(v, prefix + (i,))]
  return [prefix]


def _named_flat_specs(signature: Any) -> List[tf.TensorSpec]:
  """Flattens an input nest into TensorSpecs named after their nest paths."""
  return [
    tf.TensorSpec(spec.shape, spec.dtype, name="_".join(str(p) for p in path) or "inputs")
    for path, spec in zip(nest_paths(signature), tf.nest.flatten(signature))
  ]


def _check_signature(signature: Any) -> None:
  for spec in tf.nest.flatten(signature):
    if not isinstance(spec, tf.TensorSpec):
      raise UsageError(
        f"input signature entry {spec!r} is not a tf.TensorSpec; declare "
        "inputs as tf.TensorSpec(shape, dtype) (nested in a list or dict "
        "for several inputs)."
      )
    if spec.shape.rank is None or spec.shape.rank == 0 or spec.shape[0] is not None:
      raise UsageError(
        f"input spec {spec} must have a leading batch dimension of None so "
        "that consumers can use any batch size; use shape [None, ...]."
      )


class ReusableModule(tf.train.Checkpoint):
  """Base class for modules that implement the Reusable SavedModel interface.

  Subclasses create their variables in `__init__`, implement
  `call(inputs, training)`, and may override `regularizers()` to return
  zero-argument callables (weight regularizers only). The base class traces
  `__call__` for `training=True` and `training=False` for every declared input
  signature and exposes `variables`, `trainable_variables`,
  `regularization_losses` and a `serving_default` signature (inference mode).

  Example:

  ```python
  import tensorflow as tf
  import hubkit

  class Scale(hubkit.ReusableModule):
    def __init__(self):
      super().__init__(input_signatures=[tf.TensorSpec([None, 2], tf.float32)])
      self.v = tf.Variable([1.0, 2.0], name="v")

    def call(self, inputs, training):
      return inputs * self.v

    def regularizers(self):
      return [lambda: 0.01 * tf.reduce_sum(tf.square(self.v))]

  Scale().export("/tmp/scale_module", overwrite=True)
  obj = tf.saved_model.load("/tmp/scale_module")
  obj(tf.ones([3, 2]), training=True)
  ```

  Args:
    input_signatures: a sequence of input structures, each a `tf.TensorSpec`
      or a list/dict nest of them, with an undefined (None) batch dimension.
      `__call__` is traced for each of them and both values of `training`.

  Attributes:
    OUTPUT_NAME: the `serving_default` output name of a single-tensor
      output; subclasses name it after what it is ("embedding", ...).
  """

  OUTPUT_NAME = "outputs"

  def __init__(self, input_signatures: Sequence[Any]):
    super().__init__()
    if isinstance(input_signatures, tf.TensorSpec) or not input_signatures:
      raise UsageError(
        "input_signatures must be a non-empty list of input structures, "
        "e.g. [tf.TensorSpec([None, 4], tf.float32)]."
      )
    for signature in input_signatures:
      _check_signature(signature)
    # Bypass attribute tracking: specs and bookkeeping are not checkpointable.
    object.__setattr__(self, "_hubkit_signatures", tuple(input_signatures))
    object.__setattr__(self, "_hubkit_frozen", set())
    object.__setattr__(self, "_hubkit_built", False)

  def __getattr__(self, name: str) -> Any:
    # Only reached when normal lookup fails: build the interface lists lazily,
    # after the subclass has created its variables.
    if name in _LAZY_ATTRIBUTES and not self.__dict__.get("_hubkit_built", True):
      self.build()
      return getattr(self, name)
    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

  def call(self, inputs: Any, training: bool) -> Any:
    """Computes the module's outputs. Subclasses must implement this.

    Args:
      inputs: a tensor (or nest of tensors) matching one input signature.
      training: a Python bool; True when the consumer fine-tunes.

    Returns:
      A tensor or a dict of tensors.
    """
    raise NotImplementedError(f"{type(self).__name__} must implement call(inputs, training).")

  def regularizers(self) -> List[Callable[[], tf.Tensor]]:
    """Returns zero-argument callables whose scalar results are weight penalties."""
    return []

  def freeze(self, *items: Any) -> None:
    """Keeps variables out of `trainable_variables` (consumers cannot tune them).

    Args:
      *items: tf.Variables, or objects with a `variables` attribute (such as
        a tf.Module) whose variables are all frozen.

    Raises:
      UsageError: called after the interface was built (after export).
    """
    if self._hubkit_built:
      raise UsageError(
        "freeze() must be called before the module is built or exported; call it in __init__."
      )
    for item in items:
      for variable in getattr(item, "variables", [item]):
        self._hubkit_frozen.add(id(variable))

  @property
  def input_signatures(self) -> tuple:
    """The input structures `__call__` is traced for."""
    return self._hubkit_signatures

  @tf.function
  def __call__(self, inputs, training=False):
    return self.call(inputs, training=training)

  def _concrete_calls(self) -> List[Any]:
    return [
      self.__call__.get_concrete_function(signature, training=training)
      for signature in self._hubkit_signatures
      for training in (True, False)
    ]

  def build(self) -> None:
    """Traces `__call__` and fills `variables`, `trainable_variables` and
    `regularization_losses`. Idempotent; export() calls it.

    Raises:
      UsageError: a regularizer does not return a float scalar.
    """
    if self._hubkit_built:
      return
    read = {id(v): v for concrete in self._concrete_calls() for v in concrete.variables}
    # List variables in a stable order (by default the order of the
    # attributes that hold them), not in trace-capture order, which varies.
    variables = [v for v in self._variable_order() if id(v) in read]
    variables = list({id(v): v for v in variables + list(read.values())}.values())
    losses = [self._trace_regularizer(i, fn) for i, fn in enumerate(self.regularizers())]
    object.__setattr__(self, "_hubkit_built", True)
    self.variables = variables
    self.trainable_variables = [
      v for v in variables if v.trainable and id(v) not in self._hubkit_frozen
    ]
    self.regularization_losses = losses

  def _variable_order(self) -> List[tf.Variable]:
    """Variables in the order `variables` should list them."""
    return list(_trackables.variable_paths(self).values())

  @staticmethod
  def _trace_regularizer(
    index: int, fn: Callable[[], Any]
  ) -> tf.types.experimental.GenericFunction:
    loss = tf.function(lambda: tf.convert_to_tensor(fn()), input_signature=[])
    output = loss.get_concrete_function().structured_outputs
    if output.shape.rank != 0 or not output.dtype.is_floating:
      raise UsageError(
        f"regularizer #{index} returns {output.dtype.name}{output.shape}, "
        "but regularization losses must be float scalars; wrap it in "
        "tf.reduce_sum(...)."
      )
    return loss

  def serving_function(self) -> Any:
    """Returns the `serving_default` concrete function (inference mode).

    The first input signature is used. Inputs are named after their position
    in the input nest; a dict of tensors is returned as it is (a list value
    as `key_0`, `key_1`, ...: `interface.named_outputs`), a single
    tensor as {OUTPUT_NAME: tensor} (so that serving clients see what it
    is), any other output structure flattened as {"output_0": ..., ...}.
    """
    signature = self._hubkit_signatures[0]
    flat_specs = _named_flat_specs(signature)

    @tf.function(input_signature=flat_specs)
    def serve(*flat_inputs):
      outputs = self.__call__(
        tf.nest.pack_sequence_as(signature, list(flat_inputs)), training=False
      )
      named = interface.named_outputs(outputs)
      if named is not None:
        return named
      if tf.is_tensor(outputs):
        return {self.OUTPUT_NAME: outputs}
      return {f"output_{i}": t for i, t in enumerate(tf.nest.flatten(outputs))}

    return serve.get_concrete_function()

  def export(
    self, export_dir: str, overwrite: bool = False, source: Optional[Mapping[str, Any]] = None
  ) -> str:
    """Saves the module as a Reusable SavedModel with hubkit metadata.

    The SavedModel is written to a temporary sibling and renamed into place,
    so a failure never leaves a partial export at `export_dir`.

    Args:
      export_dir: the directory to create.
      overwrite: replace an existing directory.
      source: provenance recorded in assets.extra/hubkit.json; defaults to
        the module's class.

    Returns:
      The absolute path of the export.

    Raises:
      UsageError: `export_dir` exists and `overwrite` is False.
    """
    self.build()
    info = {
      "source": dict(
        source
        or {
          "kind": "reusable_module",
          "class": f"{type(self).__module__}.{type(self).__qualname__}",
        }
      )
    }
    with atomic_directory(export_dir, overwrite=overwrite) as tmp:
      self.save_saved_model(tmp)
      metadata.write_metadata(tmp, info, module=self)
    return os.path.abspath(export_dir)

  def save_saved_model(self, directory: str) -> None:
    """Writes the bare SavedModel (no hubkit metadata) into an empty directory.

    Most callers want `export()`; this is the step exporters use when they
    verify the SavedModel before writing metadata and committing it.
    """
    self.build()
    tf.saved_model.save(self, directory, signatures={"serving_default": self.serving_function()})
