"""interface.*: the attributes the Reusable SavedModel interface promises."""

import collections
import math

import tensorflow as tf

from hubkit.module import interface
from hubkit.checker.context import Context, first_line
from hubkit.checker.rule_table import RuleFailed, rule


@rule(
  "interface.call",
  "A callable __call__ tf.function",
  fix="save an object whose __call__ is a tf.function (hubkit.ReusableModule does this), "
  "and trace it before saving.",
  needs_load=False,
)
def check_call(ctx: Context):
  if ctx.load_error:
    raise RuleFailed(f"tf.saved_model.load fails: {ctx.load_error}")
  function = getattr(ctx.obj, "__call__", None)
  if function is None or not hasattr(function, "concrete_functions"):
    raise RuleFailed(
      "the loaded object has no __call__ tf.function (signatures alone cannot be fine-tuned)"
    )
  count = len(function.concrete_functions)
  if not count:
    raise RuleFailed("__call__ was saved without any trace")
  ctx.figures["call_traces"] = count
  return f"__call__ is a tf.function with {count} traces"


@rule(
  "interface.training_traces",
  "__call__ traced for training=True and training=False",
  fix="trace __call__ with training=True and training=False for every input signature "
  "before saving, and leave the batch dimension as None.",
  requires=("interface.call",),
)
def check_training_traces(ctx: Context):
  traces = interface.call_traces(ctx.obj.__call__)
  groups = collections.defaultdict(set)
  for trace in traces:
    for spec in tf.nest.flatten(trace.inputs):
      # An unknown rank leaves the batch dimension undefined too (MyMulModel).
      if isinstance(spec, tf.TensorSpec) and (
        spec.shape.rank == 0 or (spec.shape.rank is not None and spec.shape[0] is not None)
      ):
        raise RuleFailed(
          f"input {spec.name or ''} has shape {spec.shape}: the batch dimension must be None"
        )
    if trace.training is None:
      continue
    key = repr(
      (
        tf.nest.map_structure(lambda s: (s.dtype.name, tuple(s.shape.as_list())), trace.inputs),
        sorted(trace.arguments.items(), key=str),
      )
    )
    groups[key].add(trace.training)
  if not groups:
    # `training` is optional in the interface: without it the module declares
    # that it behaves the same in both modes (the TF Hub guide's MyMulModel).
    ctx.figures["takes_training"] = False
    return (
      f"{len(traces)} trace(s) without a training argument: the module has no "
      "training-specific behaviour"
    )
  ctx.figures["takes_training"] = True
  incomplete = [(key, values) for key, values in groups.items() if not {True, False} <= values]
  if incomplete:
    key, values = incomplete[0]
    have = ", ".join(f"training={v}" for v in sorted(values, key=str))
    raise RuleFailed(
      f"{len(incomplete)} of {len(groups)} argument combinations lack a trace "
      f"for training=True or training=False (first: {key} has only {have})"
    )
  return f"{len(groups)} input signature(s), each traced for training=True and False"


def _ids(variables):
  return {id(v) for v in variables}


@rule(
  "interface.variables",
  "variables and trainable_variables",
  fix="list every variable __call__ reads in `variables` and the tunable subset, each "
  "created with trainable=True, in `trainable_variables`.",
  requires=("interface.call",),
)
def check_variables(ctx: Context):
  obj = ctx.obj
  for name in interface.VARIABLE_LISTS:
    if not hasattr(obj, name):
      raise RuleFailed(f"the loaded object has no `{name}` attribute")
  variables, trainable = list(obj.variables), list(obj.trainable_variables)
  listed = _ids(variables)
  outside = [v.name for v in trainable if id(v) not in listed]
  if outside:
    raise RuleFailed(f"trainable variables missing from `variables`: {', '.join(outside[:5])}")
  untrainable = [v.name for v in trainable if not v.trainable]
  if untrainable:
    raise RuleFailed(
      f"`trainable_variables` lists variables not marked trainable: {', '.join(untrainable[:5])}"
    )
  unlisted = {}
  for concrete in obj.__call__.concrete_functions:
    for v in concrete.variables:
      if id(v) not in listed:
        unlisted.setdefault(id(v), v.name)
  if unlisted:
    raise RuleFailed(
      f"__call__ reads variables not listed in `variables`: "
      f"{', '.join(sorted(unlisted.values())[:5])}"
    )
  parameters = sum(int(v.shape.num_elements() or 0) for v in variables)
  ctx.figures.update(
    variables=len(variables), trainable_variables=len(trainable), parameters=parameters
  )
  return (
    f"{len(variables)} variables ({parameters:,} parameters), {len(trainable)} "
    "trainable, all read variables listed"
  )


@rule(
  "interface.regularization_losses",
  "regularization_losses return finite float scalars",
  fix="make each regularization loss a zero-argument tf.function returning a float scalar "
  "(weight penalties only, e.g. lambda: 1e-4 * tf.reduce_sum(tf.square(kernel))).",
  requires=("interface.call",),
)
def check_regularization_losses(ctx: Context):
  if not hasattr(ctx.obj, "regularization_losses"):
    raise RuleFailed(
      "the loaded object has no `regularization_losses` attribute "
      "(use an empty list when there are none)"
    )
  values = []
  for index, loss in enumerate(ctx.obj.regularization_losses):
    if not callable(loss):
      raise RuleFailed(f"regularization_losses[{index}] is not callable")
    try:
      value = loss()
    except Exception as e:
      raise RuleFailed(
        f"regularization_losses[{index}]() cannot be called without arguments ({first_line(e)})"
      ) from e
    value = tf.convert_to_tensor(value)
    if value.shape.rank != 0 or not value.dtype.is_floating:
      raise RuleFailed(
        f"regularization_losses[{index}]() returns {value.dtype.name}"
        f"{value.shape.as_list()}, not a float scalar"
      )
    if not math.isfinite(float(value)):
      raise RuleFailed(f"regularization_losses[{index}]() returns {float(value)}")
    values.append(float(value))
  ctx.figures["regularization_losses"] = values
  return (
    f"{len(values)} zero-argument losses, total {sum(values):.4g}"
    if values
    else "no regularization losses"
  )
