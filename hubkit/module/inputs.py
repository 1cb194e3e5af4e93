"""Inputs a user gives to run a module on: an .npz keyed by input name (the
generated ones are `hubkit.module.sample_inputs`)."""

from typing import Any, List

import numpy as np
import tensorflow as tf

from hubkit.errors import UsageError
from hubkit.module.reusable import nest_paths


def input_names(signature: Any) -> List[str]:
  """The .npz key of each input: "inputs" for one tensor, else its nest path."""
  if not tf.nest.is_nested(signature):
    return ["inputs"]
  return ["/".join(str(p) for p in path) for path in nest_paths(signature)]


def load_inputs(path: str, signature: Any) -> Any:
  """Reads user-supplied inputs from an .npz keyed by `input_names(signature)`.

  Raises:
    UsageError: the file is unreadable or lacks an input.
  """
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
  except (OSError, ValueError, EOFError) as e:
    raise UsageError(
      f"cannot read `inputs` file {path} ({e or 'it is empty'}); write it with "
      "np.savez(path, inputs=array)."
    ) from e
  names = input_names(signature)
  if len(names) == 1 and len(arrays) == 1:
    arrays = {names[0]: next(iter(arrays.values()))}
  missing = [n for n in names if n not in arrays]
  if missing:
    raise UsageError(
      f"`inputs` file {path} lacks {', '.join(missing)}; it has "
      f"{', '.join(sorted(arrays)) or 'nothing'}."
    )
  flat = []
  for name, spec in zip(names, tf.nest.flatten(signature)):
    array = arrays[name]
    if not spec.shape.is_compatible_with(array.shape):
      raise UsageError(
        f"`inputs` {name!r} has shape {list(array.shape)}, but the module "
        f"takes {spec.shape} (None: any size); fix the file."
      )
    try:
      flat.append(tf.constant(array, dtype=spec.dtype if spec.dtype != tf.string else None))
    except (TypeError, ValueError) as e:
      raise UsageError(f"`inputs` {name!r} cannot be {spec.dtype.name}: {e}") from e
  return tf.nest.pack_sequence_as(signature, flat)
