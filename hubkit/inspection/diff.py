"""`hubkit diff`: can version NEW of a module replace version OLD?

Both modules are read with `hubkit.module.interface` (after the op scan) and every
difference a consumer could notice is listed and classified:

* breaking: code written against OLD fails with NEW, or keeps running and
  silently means something else (other outputs on the same inputs, another
  vocabulary, a variable that stopped being trainable);
* values changed: the interface is the same but the outputs on the same
  inputs drift beyond round-off: retrained weights, the most common reason
  for a new version (tfhub.dev's `.../feature_vector/4` -> `/5`). It is
  reported with its figures and is not breaking, unless the user sets a
  limit (`max_drift`) the drift exceeds: a consumer whose downstream model
  was trained on OLD's outputs then decides how much change it accepts;
* compatible: code written against OLD keeps working and means the same
  (a new optional argument, a new signature, an input that accepts more).

Outputs are compared numerically on the same inputs (yours, or sample
inputs made from OLD's input signature).

Example:

  import hubkit
  d = hubkit.diff_modules("/tmp/mlp_v1", "/tmp/mlp_v2")
  print(d.format())
  if d.breaking:  # interface changes, or a drift beyond max_drift
    raise SystemExit(1)
"""

import dataclasses
import functools
import hashlib
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from hubkit.module import interface
from hubkit.module import layout
from hubkit.cache import resolver
from hubkit.errors import UsageError

BREAKING = "breaking"
VALUES_CHANGED = "values changed"
COMPATIBLE = "compatible"
_ORDER = (BREAKING, VALUES_CHANGED, COMPATIBLE)
# Relative output drift (max |new - old| / max |old|) still counted as the
# same outputs: float32 round-off from a re-export or another kernel order.
DEFAULT_TOLERANCE = 1e-5


@dataclasses.dataclass(frozen=True)
class Change:
  """One difference between two versions.

  Attributes:
    severity: BREAKING, VALUES_CHANGED or COMPATIBLE.
    area: what differs: inputs, outputs, arguments, signatures, variables,
      regularization_losses, assets, ops or values.
    detail: one sentence saying what changed.
  """

  severity: str
  area: str
  detail: str


@dataclasses.dataclass
class ModuleDiff:
  """The differences between two versions of a module.

  Attributes:
    old, new: the handles compared.
    changes: every difference found, breaking ones first, then changed
      values, then compatible ones.
    drift: {"max_abs", "max_rel", "inputs"} of the outputs on the same
      inputs, or None when the modules could not be called alike.
  """

  old: str
  new: str
  changes: List[Change]
  drift: Optional[Dict[str, Any]]

  @property
  def breaking(self) -> bool:
    """Whether consumers of OLD break: an interface change, or a drift
    beyond the `max_drift` the user set."""
    return any(c.severity == BREAKING for c in self.changes)

  @property
  def values_changed(self) -> bool:
    """Whether the outputs drift beyond round-off (retrained weights)."""
    return any(c.area == "values" for c in self.changes)

  def summary(self) -> str:
    """One line: the verdict and the count of each kind of change."""
    counts = {kind: sum(c.severity == kind for c in self.changes) for kind in _ORDER}
    verdict = next((kind for kind in _ORDER[:2] if counts[kind]), COMPATIBLE)
    line = (
      f"{verdict}: {counts[BREAKING]} breaking, {counts[VALUES_CHANGED]} values changed, "
      f"{counts[COMPATIBLE]} compatible change(s)"
    )
    if self.drift is not None:
      line += (
        f"; outputs drift by {self.drift['max_abs']:.3g} (relative {self.drift['max_rel']:.3g})"
      )
    return line

  def as_dict(self) -> Dict[str, Any]:
    return {
      "old": self.old,
      "new": self.new,
      "breaking": self.breaking,
      "values_changed": self.values_changed,
      "summary": self.summary(),
      "changes": [dataclasses.asdict(c) for c in self.changes],
      "drift": self.drift,
    }

  def format(self) -> str:
    lines = [f"{self.old} -> {self.new}", self.summary()]
    lines += [f"  {c.severity:<14} {c.area:<22} {c.detail}" for c in self.changes]
    return "\n".join(lines)


@dataclasses.dataclass
class _Snapshot:
  record: Dict[str, Any]
  arguments: Dict[str, bool]  # name -> required
  variables: List[Dict[str, Any]]
  assets: Dict[str, str]
  obj: Any
  module_dir: str


def _assets(module_dir: str) -> Dict[str, str]:
  found = {}
  for name in layout.iter_files(module_dir):
    if name.startswith("assets/"):
      with open(os.path.join(module_dir, name), "rb") as f:
        found[name] = hashlib.sha256(f.read()).hexdigest()
  return found


def _snapshot(module_dir: str, obj: Any) -> _Snapshot:
  record = interface.describe(obj, module_dir)
  function = getattr(obj, "__call__", None)
  arguments: Dict[str, bool] = {}
  if function is not None:
    required = interface.required_arguments(function)
    for trace in interface.call_traces(function):
      for name in trace.arguments:
        arguments[name] = name in required
  variables = [
    {
      "name": v.name,
      "shape": v.shape.as_list() if v.shape.rank is not None else None,
      "dtype": v.dtype.name,
      "trainable": v.trainable,
    }
    for v in getattr(obj, "variables", [])
  ]
  return _Snapshot(record, arguments, variables, _assets(module_dir), obj, module_dir)


def _shape_change(old: Optional[list], new: Optional[list]) -> Optional[str]:
  """None if `new` accepts/produces everything `old` did, else why not."""
  if new is None:
    return None
  if old is None or len(old) != len(new):
    return f"rank {None if old is None else len(old)} -> {len(new)}"
  for i, (a, b) in enumerate(zip(old, new)):
    if b is not None and a != b:
      return f"dimension {i} {a} -> {b}"
  return None


def _flat(structure: Any, prefix: str = "") -> Dict[str, Any]:
  """{path: {"dtype", "shape"}} of a spec_to_json nest."""
  if isinstance(structure, dict) and set(structure) == {"dtype", "shape"}:
    return {prefix or "output": structure}
  items = structure.items() if isinstance(structure, dict) else enumerate(structure or [])
  flat = {}
  for key, value in items:
    flat.update(_flat(value, f"{prefix}/{key}" if prefix else str(key)))
  return flat


def _compare_tensors(
  area: str, old: Dict[str, Any], new: Dict[str, Any], consumed: bool
) -> List[Change]:
  """Tensors by name: what consumers give (`consumed`) or get back.

  A tensor consumers give may accept more in NEW (a dimension that became
  None) but not less, and a new one breaks callers that do not pass it; a
  tensor they get back may become more specific but not less (a head built
  on OLD's size no longer fits), and a new one is ignored by old callers.
  """
  changes = []
  for name in sorted(set(old) - set(new)):
    changes.append(Change(BREAKING, area, f"{name!r} is gone"))
  for name in sorted(set(new) - set(old)):
    changes.append(Change(BREAKING if consumed else COMPATIBLE, area, f"{name!r} is new"))
  for name in sorted(set(old) & set(new)):
    a, b = old[name], new[name]
    if a["dtype"] != b["dtype"]:
      changes.append(Change(BREAKING, area, f"{name!r} dtype {a['dtype']} -> {b['dtype']}"))
    elif a["shape"] != b["shape"]:
      wider, narrower = (b, a) if consumed else (a, b)
      why = _shape_change(narrower["shape"], wider["shape"])
      shapes = f"shape {a['shape']} -> {b['shape']}"
      if why is None:
        how = "accepts more" if consumed else "more specific"
        changes.append(Change(COMPATIBLE, area, f"{name!r} {shapes} ({how})"))
      else:
        changes.append(Change(BREAKING, area, f"{name!r} {shapes}"))
  return changes


def _compare_inputs(old: _Snapshot, new: _Snapshot) -> List[Change]:
  old_inputs, new_inputs = old.record["inputs"] or [], new.record["inputs"] or []
  changes = []
  for index, signature in enumerate(old_inputs):
    flat = _flat(signature, "inputs")
    candidates = [
      _compare_tensors("inputs", flat, _flat(other, "inputs"), consumed=True)
      for other in new_inputs
    ]
    if not candidates:
      changes.append(Change(BREAKING, "inputs", "NEW has no __call__ trace"))
      continue
    best = min(candidates, key=lambda c: sum(x.severity == BREAKING for x in c))
    label = f" (input signature {index + 1})" if len(old_inputs) > 1 else ""
    changes += [dataclasses.replace(c, detail=c.detail + label) for c in best]
  if len(new_inputs) > len(old_inputs):
    changes.append(
      Change(
        COMPATIBLE, "inputs", f"{len(new_inputs) - len(old_inputs)} more traced input signature(s)"
      )
    )
  return changes


def _compare_arguments(old: _Snapshot, new: _Snapshot) -> List[Change]:
  changes = []
  if old.record["takes_training"] and not new.record["takes_training"]:
    changes.append(
      Change(BREAKING, "arguments", "the `training` argument is gone (training=... raises)")
    )
  elif new.record["takes_training"] and not old.record["takes_training"]:
    changes.append(Change(COMPATIBLE, "arguments", "a `training` argument is new"))
  for name, required in sorted(old.arguments.items()):
    if name not in new.arguments:
      changes.append(Change(BREAKING, "arguments", f"argument {name!r} is gone"))
    elif new.arguments[name] and not required:
      changes.append(Change(BREAKING, "arguments", f"argument {name!r} became required"))
    elif required and not new.arguments[name]:
      changes.append(Change(COMPATIBLE, "arguments", f"argument {name!r} became optional"))
  for name, required in sorted(new.arguments.items()):
    if name not in old.arguments:
      severity, kind = (BREAKING, "required") if required else (COMPATIBLE, "optional")
      changes.append(Change(severity, "arguments", f"{kind} argument {name!r} is new"))
  return changes


def _compare_signatures(old: _Snapshot, new: _Snapshot) -> List[Change]:
  old_sigs, new_sigs = old.record["signatures"], new.record["signatures"]
  changes = [
    Change(BREAKING, "signatures", f"signature {n!r} is gone")
    for n in sorted(set(old_sigs) - set(new_sigs))
  ]
  changes += [
    Change(COMPATIBLE, "signatures", f"signature {n!r} is new")
    for n in sorted(set(new_sigs) - set(old_sigs))
  ]
  for name in sorted(set(old_sigs) & set(new_sigs)):
    # A signature is called with all its inputs, so a new input breaks callers.
    for side, consumed in (("inputs", True), ("outputs", False)):
      changes += _compare_tensors(
        f"signature {name} {side}", old_sigs[name][side], new_sigs[name][side], consumed
      )
  return changes


def _compare_variables(old: _Snapshot, new: _Snapshot) -> List[Change]:
  def key(v):
    return (v["dtype"], v["shape"], v["trainable"])

  a, b = old.variables, new.variables
  if [key(v) for v in a] == [key(v) for v in b]:
    renamed = [x["name"] for x, y in zip(a, b) if x["name"] != y["name"]]
    if renamed:
      return [
        Change(
          COMPATIBLE, "variables", f"{len(renamed)} variable(s) renamed, same shapes and order"
        )
      ]
    return []
  changes = []
  by_name = {v["name"]: v for v in b}
  for v in a:
    other = by_name.get(v["name"])
    if other is None:
      changes.append(Change(BREAKING, "variables", f"{v['name']} is gone"))
    elif other["shape"] != v["shape"] or other["dtype"] != v["dtype"]:
      changes.append(
        Change(
          BREAKING,
          "variables",
          f"{v['name']} {v['dtype']}{v['shape']} -> {other['dtype']}{other['shape']}",
        )
      )
    elif other["trainable"] != v["trainable"]:
      state = "trainable" if other["trainable"] else "frozen"
      changes.append(Change(BREAKING, "variables", f"{v['name']} became {state}"))
  old_names = {v["name"] for v in a}
  added = [v["name"] for v in b if v["name"] not in old_names]
  if added:
    changes.append(
      Change(COMPATIBLE, "variables", f"{len(added)} new variable(s): {', '.join(added[:3])}")
    )
  if not changes:
    changes.append(Change(BREAKING, "variables", "the variables are in another order"))
  return changes


def _compare_assets_losses_and_ops(old: _Snapshot, new: _Snapshot) -> List[Change]:
  changes = []
  for name in sorted(set(old.assets) - set(new.assets)):
    changes.append(Change(BREAKING, "assets", f"{name} is gone"))
  for name in sorted(set(old.assets) & set(new.assets)):
    if old.assets[name] != new.assets[name]:
      # A vocabulary, a label map, a tokenizer model: other content means
      # other ids for the same text.
      changes.append(Change(BREAKING, "assets", f"{name} has other content"))
  for name in sorted(set(new.assets) - set(old.assets)):
    changes.append(Change(COMPATIBLE, "assets", f"{name} is new"))
  old_reg = old.record["num_regularization_losses"]
  new_reg = new.record["num_regularization_losses"]
  if new_reg < old_reg:
    changes.append(
      Change(BREAKING, "regularization_losses", f"{old_reg} -> {new_reg}: fine-tuning loses a term")
    )
  elif new_reg > old_reg:
    changes.append(Change(COMPATIBLE, "regularization_losses", f"{old_reg} -> {new_reg}"))
  old_ops, new_ops = set(old.record.get("custom_ops", [])), set(new.record.get("custom_ops", []))
  for op in sorted(new_ops - old_ops):
    changes.append(
      Change(BREAKING, "ops", f"needs op {op}, which core TensorFlow lacks (a new dependency)")
    )
  for op in sorted(old_ops - new_ops):
    changes.append(Change(COMPATIBLE, "ops", f"no longer needs op {op}"))
  return changes


def _drift(old: _Snapshot, new: _Snapshot, inputs: Optional[str]) -> Optional[Dict[str, Any]]:
  import tensorflow as tf

  from hubkit.module import sample_inputs
  from hubkit.module import inputs as checker_inputs
  from hubkit.module.interface import float_outputs

  traces = interface.call_traces(old.obj.__call__) if hasattr(old.obj, "__call__") else []
  if not traces or not interface.call_traces(new.obj.__call__):
    return None
  signature = tf.nest.map_structure(sample_inputs.with_rank, traces[0].inputs)
  if inputs:
    batch = checker_inputs.load_inputs(inputs, signature)
    source = inputs
  else:
    batch = sample_inputs.make_inputs(signature, old.module_dir)
    source = "sample inputs"
  arguments = {
    name: sample_inputs.argument_value(spec)
    for name, spec in interface.required_arguments(old.obj.__call__).items()
    if isinstance(spec, tf.TensorSpec)
  }
  try:
    a = float_outputs(interface.call(old.obj, batch, **arguments))
    b = float_outputs(interface.call(new.obj, batch, **arguments))
  except (TypeError, ValueError, tf.errors.OpError):
    return None  # the interface changes above already say why
  if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
    return None
  max_abs = max((float(np.max(np.abs(x - y))) for x, y in zip(a, b) if x.size), default=0.0)
  scale = max((float(np.max(np.abs(x))) for x in a if x.size), default=0.0)
  return {"max_abs": max_abs, "max_rel": max_abs / scale if scale else max_abs, "inputs": source}


def diff_modules(
  old: str,
  new: str,
  inputs: Optional[str] = None,
  tolerance: float = DEFAULT_TOLERANCE,
  safe_mode: bool = True,
  allow_ops: Sequence[str] = (),
  max_drift: Optional[float] = None,
) -> ModuleDiff:
  """Lists what changed between two versions of a module, breaking first.

  Args:
    old: the version consumers use now (directory, archive or URL).
    new: the candidate replacement.
    inputs: an `.npz` of inputs for the numeric comparison (as
      `hubkit check --inputs`); default: sample inputs made from OLD's input
      signature (words from its vocabulary for text).
    tolerance: the relative output drift still counted as the same outputs
      (round-off); beyond it the values changed (retrained weights).
    safe_mode: scan both modules' ops before loading them.
    allow_ops: op types you reviewed and allow beyond the allow-list.
    max_drift: the relative drift a consumer accepts; beyond it the values
      change is breaking. None (default): changed values never break.

  Returns:
    A ModuleDiff; `.breaking` says whether NEW can replace OLD.

  Raises:
    UsageError: a handle that does not resolve, a module that does not load,
      or a negative `tolerance` or `max_drift`.
    hubkit.safety.ops.UnsafeModuleError: `safe_mode` refuses a module.
  """
  for name, value in (("tolerance", tolerance), ("max_drift", max_drift)):
    if value is not None and not value >= 0:
      raise UsageError(f"`{name}`={value} must be a number >= 0.")
  import tensorflow as tf

  snapshots = []
  scanned = functools.partial(resolver.local_module, safe_mode=safe_mode, allow_ops=allow_ops)
  with scanned(old) as old_dir, scanned(new) as new_dir:
    for module_dir in (old_dir, new_dir):
      try:
        obj = tf.saved_model.load(module_dir)
      except Exception as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UsageError(
          f"cannot load {module_dir} ({first}); check it with 'hubkit check'."
        ) from e
      snapshots.append(_snapshot(module_dir, obj))
    a, b = snapshots
    changes = (
      _compare_inputs(a, b)
      + _compare_tensors(
        "outputs",
        _flat(a.record["outputs"], "outputs"),
        _flat(b.record["outputs"], "outputs"),
        consumed=False,
      )
      + _compare_arguments(a, b)
      + _compare_signatures(a, b)
      + _compare_variables(a, b)
      + _compare_assets_losses_and_ops(a, b)
    )
    drift = _drift(a, b, inputs)
  if drift is not None and drift["max_rel"] > tolerance:
    figures = (
      f"outputs on {drift['inputs']} differ by {drift['max_abs']:.3g} "
      f"(relative {drift['max_rel']:.3g}"
    )
    if max_drift is not None and drift["max_rel"] > max_drift:
      changes.append(Change(BREAKING, "values", f"{figures} > max_drift {max_drift:g})"))
    else:
      limit = f" <= max_drift {max_drift:g}" if max_drift is not None else ""
      changes.append(
        Change(VALUES_CHANGED, "values", f"{figures} > tolerance {tolerance:g}{limit})")
      )
  changes.sort(key=lambda c: _ORDER.index(c.severity))
  return ModuleDiff(os.fspath(old), os.fspath(new), changes, drift)
