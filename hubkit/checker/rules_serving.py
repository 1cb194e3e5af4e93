"""serving.*: the module as TF Serving would serve it.

A module that fine-tunes may still fail in TF Serving: no `serving_default`
signature, outputs named `output_0`, a signature that computes something
else than `__call__`, values that do not survive the REST API's JSON, or ops
that a stock server lacks. These rules warn (the module still conforms to
the Reusable SavedModel interface); `hubkit check --require=serving` makes
their warnings failures.
"""

import base64
import json
import re
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf

from hubkit.module import interface
from hubkit.module import op_packages
from hubkit.checker.context import Context
from hubkit.checker.rule_table import RuleFailed, RuleSkipped, RuleWarning, rule
from hubkit.safety import ops

SERVING_DEFAULT = "serving_default"
# The names tf.saved_model.save makes up for unnamed outputs and arguments.
_UNNAMED = re.compile(r"^(output|args)_\d+$")


@rule(
  "serving.ops",
  "Needs only ops that core TensorFlow (and a stock TF Serving) has",
  fix="replace the ops with core TensorFlow ones (e.g. tf.strings instead of "
  "tensorflow_text tokenizers), or state the package on the card and serve with a "
  "TF Serving build that links it.",
  static=True,
)
def check_serving_ops(ctx: Context):
  try:
    needed = interface.custom_ops(ops.parse(ctx.path))
  except ops.UnsafeModuleError as e:
    raise RuleSkipped(f"saved_model.pb does not parse ({e})") from e
  if not needed:
    return "core TensorFlow ops only"
  packages = op_packages.packages_for(needed)
  ctx.figures["op_packages"] = packages
  listed = "; ".join(f"{package}: {', '.join(names[:4])}" for package, names in packages.items())
  raise RuleWarning(
    f"needs ops beyond core TensorFlow ({listed}); consumers must install and import "
    "the package, and a stock TF Serving cannot serve the module"
  )


def _serving_function(ctx: Context, missing=RuleWarning) -> Any:
  signatures = dict(getattr(ctx.obj, "signatures", {}) or {})
  if SERVING_DEFAULT not in signatures:
    found = ", ".join(sorted(signatures)) or "none"
    raise missing(
      f"no {SERVING_DEFAULT} signature (signatures: {found}); TF Serving and "
      "saved_model_cli call that one by default"
    )
  return signatures[SERVING_DEFAULT]


def _feed(function: Any, inputs: Any) -> Dict[str, tf.Tensor]:
  """Maps the module's call inputs onto the signature's named inputs."""
  _, specs = function.structured_input_signature
  if not tf.nest.is_nested(inputs) and len(specs) == 1:
    return {next(iter(specs)): inputs}
  if isinstance(inputs, dict) and set(inputs) == set(specs):
    return dict(inputs)
  raise RuleWarning(
    f"the {SERVING_DEFAULT} inputs ({', '.join(sorted(specs))}) do not correspond to "
    "__call__'s inputs, so it cannot be compared with __call__"
  )


def _pair_outputs(expected: Any, got: Dict[str, tf.Tensor]) -> List[Any]:
  """(name, __call__ output, signature output) for each output."""
  if isinstance(expected, dict):
    expected = interface.named_outputs(expected) or expected
    if set(expected) != set(got):
      raise RuleFailed(
        f"{SERVING_DEFAULT} returns {sorted(got)}, __call__ returns {sorted(expected)}"
      )
    return [(k, expected[k], got[k]) for k in sorted(got)]
  flat = tf.nest.flatten(expected)
  if len(flat) != len(got):
    raise RuleFailed(f"{SERVING_DEFAULT} returns {len(got)} outputs, __call__ returns {len(flat)}")
  return list(zip(sorted(got), flat, (got[k] for k in sorted(got))))


def _max_difference(pairs: List[Any]) -> float:
  worst = 0.0
  for name, expected, got in pairs:
    a, b = np.asarray(expected), np.asarray(got)
    if a.shape != b.shape or a.dtype != b.dtype:
      raise RuleFailed(
        f"{SERVING_DEFAULT} output {name!r} is {b.dtype}{list(b.shape)}, __call__ "
        f"gives {a.dtype}{list(a.shape)}"
      )
    if a.dtype.kind in "fc":
      if a.size:
        worst = max(worst, float(np.max(np.abs(a - b))))
    elif not np.array_equal(a, b):
      raise RuleFailed(f"{SERVING_DEFAULT} output {name!r} differs from __call__'s")
  return worst


@rule(
  "serving.signature",
  "serving_default has named inputs and outputs and computes what __call__ computes",
  fix="export with signatures={'serving_default': f} where f calls the module with "
  "training=False and returns a dict of named outputs (hubkit's exporters do).",
  requires=("interface.call", "behavior.deterministic_inference"),
)
def check_serving_signature(ctx: Context):
  function = _serving_function(ctx)
  feed = _feed(function, ctx.inputs)
  got = function(**feed)
  worst = _max_difference(_pair_outputs(ctx.call(ctx.obj), got))
  if not worst <= max(ctx.tolerance, 1e-6):
    raise RuleFailed(f"{SERVING_DEFAULT} differs from __call__(training=False) by {worst:.3g}")
  unnamed = sorted(k for k in [*feed, *got] if _UNNAMED.match(k))
  if unnamed:
    raise RuleWarning(
      f"{SERVING_DEFAULT} computes what __call__ does, but its inputs or outputs are "
      f"unnamed ({', '.join(unnamed)}); clients must guess what each one is"
    )
  return f"{SERVING_DEFAULT} inputs {sorted(feed)}, outputs {sorted(got)}; equals __call__"


def _to_json_value(array: np.ndarray) -> Any:
  """One example's value as TF Serving's REST API writes it."""
  if array.dtype.kind in "SO":
    flat = [_json_string(v) for v in array.reshape(-1)]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()
  return array.tolist()


def _json_string(value: bytes) -> Any:
  try:
    return value.decode("utf-8")
  except UnicodeDecodeError:
    # Binary strings travel base64-encoded, as {"b64": ...}.
    return {"b64": base64.b64encode(value).decode("ascii")}


def _from_json_value(value: Any, spec: tf.TensorSpec) -> Any:
  if spec.dtype == tf.string:

    def one(v):
      return base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8")

    def walk(v):
      return [walk(x) for x in v] if isinstance(v, list) else one(v)

    return walk(value)
  return value


def _rows(tensors: Dict[str, Any]) -> List[Any]:
  """The row ("instances"/"predictions") format: one item per example, a bare
  value when there is a single named tensor, else {name: value}."""
  arrays = {k: np.asarray(v) for k, v in tensors.items()}
  batch = {a.shape[0] if a.ndim else None for a in arrays.values()}
  if len(batch) != 1 or None in batch:
    raise RuleWarning(
      "the tensors do not share a batch dimension, so the REST row format cannot carry "
      "them (the columnar 'inputs' format would)"
    )
  rows = []
  for i in range(batch.pop()):
    items = {k: _to_json_value(np.asarray(a[i], dtype=a.dtype)) for k, a in arrays.items()}
    rows.append(next(iter(items.values())) if len(items) == 1 else items)
  return rows


def _parse_instances(instances: List[Any], specs: Dict[str, tf.TensorSpec]) -> Dict[str, Any]:
  names = sorted(specs)
  columns: Dict[str, List[Any]] = {n: [] for n in names}
  for item in instances:
    values = item if isinstance(item, dict) and len(names) > 1 else {names[0]: item}
    for name in names:
      columns[name].append(_from_json_value(values[name], specs[name]))
  return {n: tf.constant(columns[n], dtype=specs[n].dtype) for n in names}


@rule(
  "serving.rest",
  "A TF Serving REST request round-trips through serving_default",
  fix="give serving_default inputs and outputs that share the batch dimension and "
  "have JSON-representable dtypes (numbers, UTF-8 or base64 strings).",
  requires=("serving.signature",),
)
def check_serving_rest(ctx: Context):
  function = _serving_function(ctx, missing=RuleSkipped)
  _, specs = function.structured_input_signature
  feed = _feed(function, ctx.inputs)
  request = json.dumps({"instances": _rows(feed)})
  try:
    tensors = _parse_instances(json.loads(request)["instances"], specs)
    got = function(**tensors)
    response = json.dumps({"predictions": _rows(got)})
  except (TypeError, ValueError, tf.errors.OpError) as e:
    raise RuleFailed(f"the REST request did not go through: {str(e).splitlines()[0]}") from e
  predictions = json.loads(response)["predictions"]
  direct = function(**feed)
  expected = _rows(direct)
  if predictions != json.loads(json.dumps(expected)):
    raise RuleFailed("the REST response differs from calling serving_default directly")
  return (
    f"POST {{'instances': [{len(predictions)} rows]}} -> {{'predictions': ...}} "
    f"({len(request)} / {len(response)} bytes of JSON); equals a direct call"
  )
