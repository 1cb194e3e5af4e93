"""What the rules share: the module on disk, loaded once, its test inputs, and
how they tell whether a variable was written to."""

import contextlib
import functools
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from hubkit.cache import gzip_codec
from hubkit.module import interface
from hubkit.module import op_packages
from hubkit.module import sample_inputs
from hubkit.module import inputs as inputs_lib
from hubkit.errors import UsageError


def first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def fingerprint(variable: Any) -> int:
  """The CRC-32 of a variable's bytes: it changes when anything is written
  to the variable (barring a one in 2^32 collision), and no copy of a large
  module's weights is kept to compare with."""
  value = getattr(variable, "value", None)  # a Keras 3 variable's tf.Variable
  tensor = tf.convert_to_tensor(value if isinstance(value, tf.Variable) else variable)
  if tensor.dtype == tf.string:
    tensor = tf.io.serialize_tensor(tensor)
  # EagerTensor.numpy() copies (0.08 s and fresh memory per 336 MB); the
  # private _numpy() is a view of the tensor, read here and dropped at once.
  array = np.ascontiguousarray(getattr(tensor, "_numpy", tensor.numpy)())
  return gzip_codec.crc32(array.reshape(-1).view(np.uint8))


class Context:
  """The module under check, loaded lazily and once.

  Attributes:
    path: the SavedModel directory.
    name: what the user asked to check (path, archive or handle).
    reference: an optional reference model or export for behavior.parity.
    tolerance: the parity tolerance.
    allow_ops: op types the user reviewed and allows (security.ops).
    api: the task contract the module is held to (`hubkit.checker.apis`), or None.
    figures: numbers the rules measure, reported in the JSON.
  """

  def __init__(
    self,
    path: str,
    name: str,
    reference: Optional[str] = None,
    inputs_file: Optional[str] = None,
    tolerance: float = 1e-5,
    allow_ops: Sequence[str] = (),
    api: Optional[str] = None,
  ):
    self.path = path
    self.api = api
    self.allow_ops = tuple(allow_ops)
    self.name = name
    self.reference = reference
    self.inputs_file = inputs_file
    self.tolerance = tolerance
    self.figures: Dict[str, Any] = {}

  @functools.cached_property
  def obj(self) -> Any:
    """The loaded module (tf.saved_model.load); raises what loading raised.

    The packages that define the module's custom ops (tensorflow_text's
    tokenizers, ...) are imported first where installed: TensorFlow cannot
    load a graph whose ops are not registered.
    """
    op_packages.import_packages(interface.custom_ops(interface.saved_model_proto(self.path)))
    return tf.saved_model.load(self.path)

  @functools.cached_property
  def load_error(self) -> Optional[str]:
    try:
      self.obj
    except Exception as e:
      return first_line(e)
    return None

  @functools.cached_property
  def arguments(self) -> Dict[str, Any]:
    """Values for the arguments `__call__` requires besides its inputs (sample
    values for tensor hyper-parameters, the traced value otherwise)."""
    values = {}
    for name, value in interface.required_arguments(self.obj.__call__).items():
      values[name] = (
        sample_inputs.argument_value(value) if isinstance(value, tf.TensorSpec) else value
      )
    return values

  def call(self, obj: Any, training: bool = False, inputs: Any = None) -> Any:
    """`obj(inputs, training=...)` as its traces allow (`interface.call`), on
    the test inputs unless `inputs` are given."""
    inputs = self.inputs if inputs is None else inputs
    return interface.call(obj, inputs, training=training, **self.arguments)

  @contextlib.contextmanager
  def borrowed(self) -> Iterator[Any]:
    """The loaded module, lent to a rule that changes its variables.

    One load shared by the rules spares a load per rule (seconds on a real
    architecture) and lets TensorFlow build the functions it derives for
    gradients once. However the rule ends, every variable is then restored
    from the module's own checkpoint; where that cannot be proven (TF's
    `assert_existing_objects_matched`), the copy is dropped and the next rule
    loads a fresh one, so no rule's changes reach another's verdict.

    Yields:
      `self.obj`.
    """
    obj = self.obj
    try:
      yield obj
    finally:
      if not self._restore(obj):
        del self.obj  # the cached load: the next use loads again

  def _restore(self, obj: Any) -> bool:
    prefix = os.path.join(self.path, tf.saved_model.VARIABLES_DIRECTORY, "variables")
    try:
      tf.train.Checkpoint(root=obj).read(prefix).assert_existing_objects_matched()
    except Exception:  # pylint: disable=broad-except
      return False
    return True

  @functools.cached_property
  def signatures(self) -> List[Any]:
    """The distinct input signatures `__call__` was traced for, in order."""
    seen, result = set(), []
    for trace in interface.call_traces(self.obj.__call__):
      inputs = tf.nest.map_structure(sample_inputs.with_rank, trace.inputs)
      key = repr(tf.nest.map_structure(lambda s: (s.dtype, s.shape), inputs))
      if key not in seen:
        seen.add(key)
        result.append(inputs)
    if not result:
      raise UsageError("the module's __call__ has no traces, so no inputs can be made.")
    return result

  @functools.cached_property
  def inputs(self) -> Any:
    """Test inputs for the first signature (from `inputs` when given)."""
    signature = self.signatures[0]
    if self.inputs_file:
      return inputs_lib.load_inputs(self.inputs_file, signature)
    return sample_inputs.make_inputs(signature, self.path)

  @functools.cached_property
  def reference_model(self) -> Any:
    """The `reference` (a Keras model, or a SavedModel without Keras metadata),
    loaded once.

    Raises:
      UsageError: it cannot be loaded (a bad reference is the user's input,
        not a defect of the module).
    """
    path = self.reference
    try:
      if (
        os.path.isdir(path)
        and os.path.exists(os.path.join(path, "saved_model.pb"))
        and not os.path.exists(os.path.join(path, "keras_metadata.pb"))
      ):
        return tf.saved_model.load(path)
      from hubkit.exporters import sources

      return sources.load_keras_model(path)
    except UsageError:
      raise
    except Exception as e:
      raise UsageError(
        f"`reference` {path} cannot be loaded ({first_line(e)}); pass the "
        "source Keras model or its export."
      ) from e

  def has_assets(self) -> bool:
    return os.path.isdir(os.path.join(self.path, "assets")) and bool(
      os.listdir(os.path.join(self.path, "assets"))
    )
