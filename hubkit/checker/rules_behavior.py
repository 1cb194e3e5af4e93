"""behavior.* and lint.*: what the module computes."""

from typing import Any, List

import numpy as np
import tensorflow as tf

from hubkit.module import interface
from hubkit.module import sample_inputs
from hubkit.checker.context import Context, fingerprint, first_line
from hubkit.checker.rule_table import RuleFailed, RuleSkipped, RuleWarning, rule
from hubkit.module.interface import float_outputs

# Ops that make training=True legitimately differ from inference: random
# (dropout) ops and batch-norm / state updates.
_RANDOM_OPS = frozenset(
  {
    "RandomUniform",
    "RandomStandardNormal",
    "RandomUniformInt",
    "StatelessRandomUniformV2",
    "StatelessRandomUniform",
    "StatelessRandomNormalV2",
    "StatelessRandomNormal",
    "StatelessRandomUniformFullIntV2",
    "RandomGammaGrad",
    "Multinomial",
    "StatelessRandomBinomial",
    "RngReadAndSkip",
  }
)
_NORM_OPS = frozenset(
  {
    "FusedBatchNorm",
    "FusedBatchNormV2",
    "FusedBatchNormV3",
    "AssignSubVariableOp",
    "AssignAddVariableOp",
    "AssignVariableOp",
  }
)


def looks_like_probabilities(out: np.ndarray) -> bool:
  """Whether every row of `out` is non-negative and sums to 1 (a softmax)."""
  return bool(
    out.ndim >= 2
    and out.shape[-1] > 1
    and (out >= 0).all()
    and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3)
  )


def op_types(concrete) -> set:
  """Every op type a concrete function's graph runs, its library functions included."""
  graph = concrete.graph.as_graph_def()
  ops = {node.op for node in graph.node}
  for function in graph.library.function:
    ops.update(node.op for node in function.node_def)
  return ops


@rule(
  "behavior.deterministic_inference",
  "Inference is deterministic and finite",
  fix="keep randomness (dropout, noise) under `if training:` and guard against NaN/Inf "
  "(e.g. divide by tf.maximum(count, 1)).",
  requires=("interface.call",),
)
def check_deterministic(ctx: Context):
  first = float_outputs(ctx.call(ctx.obj))
  second = float_outputs(ctx.call(ctx.obj))
  if not first:
    raise RuleSkipped("the module has no floating-point outputs to compare")
  bad = [i for i, a in enumerate(first) if not np.isfinite(a).all()]
  if bad:
    raise RuleFailed(f"output {bad[0]} has NaN or Inf values for ordinary inputs")
  diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(first, second))
  if diff != 0.0:
    raise RuleFailed(f"two calls with training=False differ by up to {diff:.3g}")
  ctx.figures["output_shapes"] = [list(a.shape) for a in first]
  _warn_on_empty_strings(ctx)
  return f"repeated inference calls are identical; outputs {ctx.figures['output_shapes']}"


def _warn_on_empty_strings(ctx: Context) -> None:
  """Text modules: the empty string is an input users send, but a module that
  averages zero words gives NaN for it; that is a warning naming the input,
  not a failure (the module is right for ordinary text)."""
  edge = sample_inputs.with_empty_strings(ctx.inputs)
  if edge is None:
    return
  try:
    outputs = float_outputs(ctx.call(ctx.obj, inputs=edge))
  except (tf.errors.OpError, ValueError, TypeError) as e:
    raise RuleWarning(
      f"the empty string as input fails ({first_line(e)}); consumers send empty text, "
      "so handle it (e.g. return zeros for no words)"
    ) from e
  bad = [i for i, a in enumerate(outputs) if not np.isfinite(a).all()]
  if bad:
    raise RuleWarning(
      f"output {bad[0]} has NaN or Inf values for the empty string input ''; "
      "divide by tf.maximum(count, 1) so empty text gets a finite embedding"
    )


@rule(
  "behavior.training_mode",
  "training=True differs where dropout or batch norm exist",
  fix="make the training=True trace apply dropout / batch statistics and update batch-norm "
  "moving averages only when training (not in inference).",
  requires=("interface.training_traces", "interface.variables"),
)
def check_training_mode(ctx: Context):
  # Training calls may update state (batch-norm averages): on the borrowed
  # copy, restored afterwards.
  with ctx.borrowed() as obj:
    return _training_mode(ctx, obj)


def _training_mode(ctx: Context, obj: Any) -> str:
  if not interface.takes_training(obj.__call__):
    raise RuleSkipped("__call__ takes no training argument: one behaviour for both modes")
  concrete = interface.concrete_for(obj.__call__, True)
  if concrete is None:
    raise RuleSkipped("no training=True trace (see interface.training_traces)")
  ops = op_types(concrete)
  has_random, has_norm = bool(ops & _RANDOM_OPS), bool(ops & _NORM_OPS)
  trainable = {id(v) for v in obj.trainable_variables}
  state = [v for v in obj.variables if id(v) not in trainable]
  before = [fingerprint(v) for v in state]
  inference = float_outputs(ctx.call(obj))
  changed = [v.name for v, b in zip(state, before) if fingerprint(v) != b]
  if changed:
    raise RuleFailed(f"a training=False call changed {', '.join(changed[:3])}")
  # Two training calls: with a fixed global seed the first draws of two traces
  # can coincide, the second draw of the same trace cannot.
  trainings = [float_outputs(ctx.call(obj, training=True)) for _ in range(2)]
  updated = [v.name for v, b in zip(state, before) if fingerprint(v) != b]
  ctx.figures["state_updated_in_training"] = updated
  if not (has_random or has_norm):
    return "no dropout or batch normalization: both modes may agree"
  differs = any(
    a.shape != b.shape or not np.allclose(a, b)
    for training in trainings
    for a, b in zip(inference, training)
  )
  if not differs and not updated:
    raise RuleFailed(
      "the module has dropout/batch-norm ops but training=True neither changes "
      "outputs nor updates state: the training trace looks like the inference one"
    )
  kinds = " and ".join(
    k for k, present in (("dropout", has_random), ("batch norm", has_norm)) if present
  )
  return f"{kinds}: training=True differs from inference" + (
    f"; training updated {len(updated)} state variables" if updated else ""
  )


def _reference_outputs(reference: Any, inputs: Any) -> List[np.ndarray]:
  if hasattr(reference, "layers"):  # a Keras model
    return float_outputs(reference(inputs, training=False))
  return float_outputs(interface.call(reference, inputs))


@rule(
  "behavior.parity",
  "Outputs match the reference",
  fix="export again from the reference model; check that the cut layers and weights are "
  "the intended ones.",
  requires=("interface.call",),
)
def check_parity(ctx: Context):
  if not ctx.reference:
    raise RuleSkipped("no --reference given")
  expected = _reference_outputs(ctx.reference_model, ctx.inputs)
  got = float_outputs(ctx.call(ctx.obj))
  if len(expected) != len(got) or any(a.shape != b.shape for a, b in zip(expected, got)):
    raise RuleFailed(
      f"output shapes differ: reference {[list(a.shape) for a in expected]}, "
      f"module {[list(b.shape) for b in got]}"
    )
  diff = max((float(np.max(np.abs(a - b))) for a, b in zip(expected, got) if a.size), default=0.0)
  ctx.figures["parity_max_abs_diff"] = diff
  if not diff <= ctx.tolerance:
    raise RuleFailed(
      f"outputs differ from the reference by {diff:.3g} (tolerance {ctx.tolerance:g})"
    )
  return f"max abs difference {diff:.3g} <= {ctx.tolerance:g}"


@rule(
  "lint.logits",
  "Outputs are logits, not probabilities",
  fix="export the layer before the softmax/sigmoid; consumers apply their own.",
  requires=("behavior.deterministic_inference",),
)
def check_logits(ctx: Context):
  for index, out in enumerate(float_outputs(ctx.call(ctx.obj))):
    if looks_like_probabilities(out):
      raise RuleWarning(f"output {index} looks like probabilities (non-negative rows summing to 1)")
  return "outputs do not look like probabilities"
