"""Reading a loaded module's `__call__` the way the interface defines it.

The Reusable SavedModel interface makes `training` optional: a module without
training-specific behaviour may trace `__call__(inputs)` alone (the TF Hub
guide's `MyMulModel` does), and a module may take other arguments after
`inputs` (hyper-parameters such as `a` or `return_dict`). Like
`hub.KerasLayer`, hubkit decides by the parameter's *name* whether a trace
takes `training`, never by its position. The checker, `hubkit.KerasLayer`,
the fine-tuner and the re-exporter all read traces through this module.
"""

import dataclasses
from typing import Any, Dict, List, Optional

TRAINING = "training"


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


def call_traces(function: Any) -> List[CallTrace]:
  """The traces of a `tf.function` (usually `obj.__call__`), by parameter name.

  Args:
    function: a restored or live `tf.function` with `concrete_functions`.

  Returns:
    One CallTrace per concrete function, in trace order.
  """
  traces = []
  for concrete in getattr(function, "concrete_functions", []):
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
