"""Reading a module the way the Reusable SavedModel interface defines it.

This is the one place that knows the interface: the attribute names, how
`__call__`'s traces are told apart, and what `describe` records about a
module (inputs, outputs, the `training` argument, variables, regularization
losses, signatures) in `hubkit.json` and shows in `hubkit info`.

The Reusable SavedModel interface makes `training` optional: a module without
training-specific behaviour may trace `__call__(inputs)` alone (the TF Hub
guide's `MyMulModel` does), and a module may take other arguments after
`inputs` (hyper-parameters such as `a` or `return_dict`). Like
`hub.KerasLayer`, hubkit decides by the parameter's *name* whether a trace
takes `training`, never by its position. The checker, `hubkit.KerasLayer`,
the fine-tuner, the re-exporter and the exporters all read modules through
this file. TensorFlow is imported only by the functions that need it.
"""

import dataclasses
from typing import Any, Dict, List, Optional

TRAINING = "training"
# What a Reusable SavedModel exposes besides `__call__` (docs/reusable_saved_models.md).
LISTS = ("variables", "trainable_variables", "regularization_losses")
VARIABLE_LISTS = LISTS[:2]
ATTRIBUTES = ("__call__", *LISTS)


@dataclasses.dataclass(frozen=True)
class CallTrace:
  """One concrete trace of `__call__`.

  Attributes:
    inputs: the nest of `tf.TensorSpec`s of the first argument.
    training: the traced value of `training`, or None when the trace takes
      no `training` argument.
    arguments: the other traced arguments, by name (specs or Python values).
  """

  inputs: Any
  training: Optional[bool]
  arguments: Dict[str, Any]


def _parameter_names(concrete: Any, positional: int) -> List[str]:
  function_type = getattr(concrete, "function_type", None)
  if function_type is not None:
    return list(function_type.parameters)[:positional]
  return [f"arg{i}" for i in range(positional)]


def concrete_functions(function: Any) -> List[Any]:
  """The concrete traces of a restored or live `tf.function`, in trace order."""
  restored = getattr(function, "concrete_functions", None)
  if restored is not None:
    return list(restored)
  live = getattr(function, "_list_all_concrete_functions", None)
  return list(live()) if live else []


def call_traces(function: Any) -> List[CallTrace]:
  """The traces of a `tf.function` (usually `obj.__call__`), by parameter name.

  Args:
    function: a restored or live `tf.function` with `concrete_functions`.

  Returns:
    One CallTrace per concrete function, in trace order.
  """
  traces = []
  for concrete in concrete_functions(function):
    args, kwargs = concrete.structured_input_signature
    named = dict(zip(_parameter_names(concrete, len(args)), args))
    named.update(kwargs)
    names = list(named)
    inputs = named.pop(names[0]) if names else None
    has_training = TRAINING in named
    training = named.pop(TRAINING, None)
    traces.append(CallTrace(inputs, bool(training) if has_training else None, named))
  return traces


def takes_training(function: Any) -> bool:
  """Whether a `tf.function` has a parameter named `training` (as hub.KerasLayer asks)."""
  spec = getattr(function, "function_spec", None)
  if spec is not None:
    argspec = spec.fullargspec
    if TRAINING in argspec.args or TRAINING in argspec.kwonlyargs:
      return True
  return any(t.training is not None for t in call_traces(function))


def required_arguments(function: Any) -> Dict[str, Any]:
  """Arguments besides `inputs` and `training` that have no default value.

  Returns:
    name -> the value (a `tf.TensorSpec` or a Python value) its first trace
    was made with; a caller must pass each of them.
  """
  traces = call_traces(function)
  if not traces:
    return {}
  spec = getattr(function, "function_spec", None)
  defaulted = set()
  if spec is not None:
    argspec = spec.fullargspec
    defaults = len(argspec.defaults or ())
    if defaults:
      defaulted.update(argspec.args[-defaults:])
    defaulted.update((argspec.kwonlydefaults or {}).keys())
  return {name: value for name, value in traces[0].arguments.items() if name not in defaulted}


def call(function: Any, inputs: Any, training: bool = False, **arguments: Any) -> Any:
  """Calls `function(inputs, ...)`, passing `training` only where it is taken.

  Args:
    function: the module (or its `__call__`).
    inputs: the inputs.
    training: the mode; ignored by a module without a `training` argument,
      which behaves the same in both.
    **arguments: other keyword arguments (hyper-parameters).

  Returns:
    What the function returns.
  """
  target = function if hasattr(function, "concrete_functions") else function.__call__
  if takes_training(target):
    arguments[TRAINING] = training
  return function(inputs, **arguments)


def concrete_for(function: Any, training: Optional[bool]) -> Any:
  """The first concrete trace made with this `training` value (None: the
  traces without a `training` argument), or None when there is none."""
  for concrete, trace in zip(concrete_functions(function), call_traces(function)):
    if trace.training is training:
      return concrete
  return None


def output_specs(function: Any) -> Any:
  """The nest of `tf.TensorSpec`s the first inference trace returns (None if
  there is no trace)."""
  functions = concrete_functions(function)
  chosen = concrete_for(function, False) or concrete_for(function, None)
  chosen = chosen or (functions[0] if functions else None)
  if chosen is None:
    return None
  return _as_specs(chosen.structured_outputs)


def _distinct_inputs(function: Any) -> List[Any]:
  seen, result = set(), []
  for trace in call_traces(function):
    key = repr(trace.inputs)
    if key not in seen:
      seen.add(key)
      result.append(trace.inputs)
  return result


def _variable_bytes(variables: List[Any]) -> int:
  return int(sum((v.shape.num_elements() or 0) * v.dtype.size for v in variables))


def spec_to_json(structure: Any) -> Any:
  """Turns a nest of `tf.TensorSpec`s (or tensors) into JSON-ready values."""
  import tensorflow as tf

  def one(spec):
    return {
      "dtype": spec.dtype.name,
      "shape": None if spec.shape.rank is None else spec.shape.as_list(),
    }

  return tf.nest.map_structure(one, structure)


def float_outputs(outputs: Any) -> List[Any]:
  """The module's floating-point outputs as numpy arrays, flattened in nest order."""
  import numpy as np
  import tensorflow as tf

  return [
    np.asarray(t) for t in tf.nest.flatten(outputs) if tf.is_tensor(t) and t.dtype.is_floating
  ]


def named_outputs(outputs: Any) -> Optional[Dict[str, Any]]:
  """A dict output as a signature carries it: each tensor under its key, a
  list of tensors as `key_0`, `key_1`, ... (TF Hub encoders' `encoder_outputs`);
  None when `outputs` is not a dict of those.
  """
  if not isinstance(outputs, dict):
    return None
  named = {}
  for key, value in outputs.items():
    if isinstance(value, (list, tuple)):
      named.update({f"{key}_{i}": item for i, item in enumerate(value)})
    else:
      named[key] = value
  return named if all(hasattr(v, "dtype") for v in named.values()) else None


def describe(obj: Any, module_dir: Optional[str] = None) -> Dict[str, Any]:
  """What a module offers, JSON-ready: the record `hubkit.json` keeps.

  Args:
    obj: a loaded (`tf.saved_model.load`) or live Reusable SavedModel object.
    module_dir: its SavedModel folder, if written; signatures are then read
      from the file (a live object does not carry the ones given at save
      time) and the ops beyond core TensorFlow are listed.

  Returns:
    inputs (one spec nest per distinct traced input signature), outputs,
    takes_training, required_arguments, num_variables,
    num_trainable_variables, num_parameters, variable_bytes,
    num_regularization_losses, signatures (name -> inputs / outputs) and,
    with `module_dir`, custom_ops (op types core TensorFlow does not define)
    and op_packages (the pip package providing them -> their names).
  """
  from hubkit.module import op_packages

  variables = list(getattr(obj, "variables", []) or [])
  trainable = list(getattr(obj, "trainable_variables", []) or [])
  function = getattr(obj, "__call__", None)
  record: Dict[str, Any] = {
    "inputs": None,
    "outputs": None,
    "takes_training": None,
    "required_arguments": [],
  }
  if function is not None and concrete_functions(function):
    record.update(
      inputs=[spec_to_json(s) for s in _distinct_inputs(function)],
      outputs=spec_to_json(output_specs(function)),
      takes_training=takes_training(function),
      required_arguments=sorted(required_arguments(function)),
    )
  record.update(
    num_variables=len(variables),
    num_trainable_variables=len(trainable),
    num_parameters=int(sum(v.shape.num_elements() or 0 for v in variables)),
    variable_bytes=_variable_bytes(variables),
    num_regularization_losses=len(getattr(obj, "regularization_losses", []) or []),
  )
  if module_dir is None:
    record["signatures"] = _signatures(obj)
  else:
    proto = saved_model_proto(module_dir)
    record["signatures"] = saved_signatures(proto)
    record["custom_ops"] = custom_ops(proto)
    record["op_packages"] = op_packages.packages_for(record["custom_ops"])
  return record


def saved_model_proto(module_dir: str) -> Any:
  from hubkit.safety import ops

  return ops.parse(module_dir, full=True)


def saved_signatures(proto: Any) -> Dict[str, Any]:
  """name -> {"inputs", "outputs"} ({key: {dtype, shape}}) of a SavedModel
  proto's serving signatures (the first MetaGraph, as the loader reads)."""
  import tensorflow as tf

  def tensors(infos) -> Dict[str, Any]:
    return {
      key: {
        "dtype": tf.as_dtype(info.dtype).name,
        "shape": (
          None
          if info.tensor_shape.unknown_rank
          else [d.size if d.size >= 0 else None for d in info.tensor_shape.dim]
        ),
      }
      for key, info in sorted(infos.items())
    }

  signature_defs = proto.meta_graphs[0].signature_def
  return {
    name: {"inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
    for name, sig in sorted(signature_defs.items())
    if not name.startswith("__")
  }


def custom_ops(proto: Any) -> List[str]:
  """Op types the SavedModel uses that core TensorFlow does not register
  (e.g. tensorflow_text's); a consumer needs the package that defines them."""
  from tensorflow.python.framework import op_def_registry

  used = set()
  for meta_graph in proto.meta_graphs:
    used.update(node.op for node in meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      used.update(node.op for node in function.node_def)
    library = {f.signature.name for f in meta_graph.graph_def.library.function}
    used -= library
  from hubkit.module import op_packages

  # An op of a known add-on package counts even where that package happens
  # to be imported (and so registered) in this process.
  return sorted(op for op in used if op_def_registry.get(op) is None or op_packages.package_for(op))


def _signatures(obj: Any) -> Dict[str, Any]:
  result = {}
  for name, concrete in sorted(dict(getattr(obj, "signatures", {}) or {}).items()):
    _, kwargs = concrete.structured_input_signature
    result[name] = {
      "inputs": spec_to_json(kwargs),
      "outputs": spec_to_json(_as_specs(concrete.structured_outputs)),
    }
  return result


def _as_specs(structure: Any) -> Any:
  import tensorflow as tf

  return tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), structure)
