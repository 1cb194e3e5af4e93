"""Load pre-trained weights into a module from `.npz` files or checkpoints.

Three sources are supported, detected from the file:

* `.npz` (what `np.savez` writes): arrays keyed by the module's variable
  names without ":0", e.g. `dense_0/kernel`.
* TF2 object-based checkpoints (`tf.train.Checkpoint.write/save`): matched by
  the object path of each variable in the module (`dense/0/kernel`), with or
  without one wrapping level such as `tf.train.Checkpoint(module=m)`.
* TF1 name-based checkpoints (`tf.compat.v1.train.Saver`): matched by
  variable name, usually through `name_map` since TF1 graphs name variables
  their own way (`layer1/weights`).

Loading is all-or-nothing: every name, shape and dtype is checked before the
first variable is assigned, so a failed load leaves the module unchanged.
"""

import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from hubkit.module import _trackables
from hubkit.module import interface
from hubkit.errors import UsageError
from hubkit.module.reusable import ReusableModule

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_MAX_LISTED = 6


def _variable_name(variable: tf.Variable) -> str:
  return variable.name.split(":")[0]


def _checkpoint_paths(reader) -> Dict[str, str]:
  """Maps every object path in a TF2 checkpoint to the key of its value."""
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))

  def children_of(node_id):
    return [(ref.local_name, ref.node_id, ref.node_id) for ref in graph.nodes[node_id].children]

  keys = {}
  for path, node_id in _trackables.all_paths(children_of, 0).items():
    for attribute in graph.nodes[node_id].attributes:
      if attribute.name == "VARIABLE_VALUE" and not path.startswith("save_counter"):
        keys[path] = attribute.checkpoint_key
  return keys


def _listing(names) -> str:
  names = sorted(names)
  shown = ", ".join(names[:_MAX_LISTED])
  return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _npz_source(path: str) -> Tuple[Dict[str, Callable[[], np.ndarray]], Dict[str, tuple]]:
  try:
    archive = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise UsageError(
      f"cannot read {path} as an .npz file ({e or 'it is empty'}); write it "
      "with np.savez(path, **{name: array})."
    ) from e
  if not isinstance(archive, np.lib.npyio.NpzFile):
    raise UsageError(
      f"{path} holds a single array, not named arrays; write it with "
      "np.savez(path, **{name: array})."
    )
  getters = {k: (lambda k=k: archive[k]) for k in archive.files}
  shapes = {k: tuple(archive[k].shape) for k in archive.files}
  return getters, shapes


def _checkpoint_source(path: str):
  """Returns value getters and shapes keyed by name (TF1) or object path (TF2)."""
  try:
    reader = tf.train.load_checkpoint(path)
  except (tf.errors.OpError, ValueError) as e:
    raise UsageError(
      f"cannot read checkpoint {path}: {str(e).splitlines()[0]}; pass the "
      "checkpoint prefix (e.g. ckpt-1, not ckpt-1.index), an .npz file, "
      "or fix the path."
    ) from e
  shapes = reader.get_variable_to_shape_map()
  object_based = _OBJECT_GRAPH_KEY in shapes
  if object_based:
    keys = _checkpoint_paths(reader)
  else:
    keys = {k: k for k in shapes if k != "global_step"}
  getters = {name: (lambda k=key: reader.get_tensor(k)) for name, key in keys.items()}
  return getters, {name: tuple(shapes[key]) for name, key in keys.items()}, object_based


def _find(candidates: List[str], available: Mapping[str, tuple]) -> Optional[str]:
  """Returns the source entry for the first candidate name found.

  A TF2 checkpoint written as `tf.train.Checkpoint(module=m)` nests every
  path one level down (`module/dense/0/kernel`); such a single wrapping level
  is accepted when it is unambiguous.
  """
  for name in candidates:
    if name in available:
      return name
  for name in candidates:
    wrapped = [k for k in available if "/" in k and k.split("/", 1)[1] == name]
    if len(wrapped) == 1:
      return wrapped[0]
  return None


def load_weights(
  module: ReusableModule, path: str, name_map: Optional[Mapping[str, str]] = None
) -> List[str]:
  """Assigns weights from a file to the module's variables, all or nothing.

  Args:
    module: the module to fill; all of its `variables` must be found.
    path: an `.npz` file, or the prefix of a TF2 or TF1 checkpoint.
    name_map: maps module variable names (without ":0") to the names used in
      `path` (object paths such as `module/dense/0/kernel` for TF2
      checkpoints); names not in the map are looked up as they are.

  Returns:
    The module variable names that were assigned.

  Raises:
    UsageError: the file cannot be read, a variable is missing, an `.npz`
      array is not used, or a shape or dtype does not fit. Nothing is
      assigned in that case.
  """
  name_map = dict(name_map or {})
  targets = {_variable_name(v): v for v in module.variables}
  if len(targets) != len(module.variables):
    raise UsageError(
      "the module has several variables with the same name, so weights "
      "cannot be matched by name; give its variables unique names."
    )
  unknown = sorted(set(name_map) - set(targets))
  if unknown:
    raise UsageError(
      f"name_map mentions {_listing(unknown)}, which the module does not have; "
      f"its variables are: {_listing(targets)}."
    )
  is_npz = path.endswith(".npz")
  if is_npz:
    if not os.path.isfile(path):
      raise UsageError(f"weights file {path} does not exist; check the path.")
    getters, shapes = _npz_source(path)
    object_based = False
  else:
    getters, shapes, object_based = _checkpoint_source(path)
  paths_of = {}
  if object_based:
    # Prefer named attribute paths (dense/0/kernel) over positions in the
    # interface lists (variables/3), which depend on trace order.
    for object_path, variable in sorted(
      _trackables.variable_paths(module).items(),
      key=lambda item: item[0].split("/")[0] in interface.LISTS,
    ):
      paths_of.setdefault(id(variable), []).append(object_path)

  plan, used = [], set()
  for name, variable in targets.items():
    candidates = [name_map[name]] if name in name_map else paths_of.get(id(variable), []) + [name]
    source = _find(candidates, shapes)
    if source is None:
      alias = f" (looked up as {candidates[0]!r})" if candidates[0] != name else ""
      raise UsageError(
        f"variable {name!r}{alias} is missing from {path}, which has "
        f"{_listing(shapes)}; map names with name_map (--name_map=FILE.json)."
      )
    if tuple(variable.shape) != shapes[source]:
      raise UsageError(
        f"shape mismatch for variable {name!r}: the module has "
        f"{list(variable.shape)}, {path} has {list(shapes[source])} under "
        f"{source!r}; build the module with a matching config."
      )
    value = np.asarray(getters[source]())
    if not np.can_cast(value.dtype, variable.dtype.as_numpy_dtype, casting="same_kind"):
      raise UsageError(
        f"dtype mismatch for variable {name!r}: the module has "
        f"{variable.dtype.name}, {path} has {value.dtype} under {source!r}."
      )
    plan.append((name, variable, value))
    used.add(source)
  # Checkpoints legitimately hold more (optimizer slots, step counters); an
  # .npz made for this module should not, so a leftover array is a mistake.
  unused = set(shapes) - used
  if is_npz and unused:
    raise UsageError(
      f"{path} has arrays no module variable uses: {_listing(unused)}; "
      "remove them or map them with name_map."
    )
  for _, variable, value in plan:
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))
  return [name for name, _, _ in plan]
