"""`hubkit info`: what a user wants to know about a module before using it.

Built on `hubkit.module.interface` (the one reader of the interface): inputs and
outputs, the `training` argument, required arguments, variables and their
size, regularization losses, signatures, assets, ops beyond core
TensorFlow, provenance (`hubkit.json`) and the last recorded check. One
load at most (after the op scan) and no training step.
"""

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hubkit.module import check_records
from hubkit.module import interface
from hubkit.module import layout
from hubkit.module import metadata
from hubkit.cache import resolver


def module_info(
  handle: str, safe_mode: bool = True, allow_ops: Sequence[str] = ()
) -> Dict[str, Any]:
  """Describes a module, JSON-ready.

  Example:

  ```python
  import hubkit
  info = hubkit.module_info("/tmp/mlp")
  print(info["inputs"], info["takes_training"], info["num_trainable_variables"])
  ```

  Args:
    handle: a SavedModel directory, a module archive or an http(s) URL.
    safe_mode: scan the ops before loading and refuse an unsafe module.
    allow_ops: op types you reviewed and allow beyond the allow-list.

  Returns:
    The `hubkit.module.interface.describe` record plus handle, files, bytes,
    assets, provenance (hubkit.json without its file list, or None),
    last_check (or None) and load_error (None when it loaded).

  Raises:
    As `hubkit.resolve`; hubkit.safety.ops.UnsafeModuleError when
    `safe_mode` refuses the module.
  """
  with resolver.local_module(handle, safe_mode=safe_mode, allow_ops=allow_ops) as module_dir:
    files = list(layout.iter_files(module_dir))
    sizes = {f: os.path.getsize(os.path.join(module_dir, f)) for f in files}
    provenance = metadata.read_metadata(module_dir)
    if provenance is not None:
      provenance = {k: v for k, v in provenance.items() if k != "files"}
    info: Dict[str, Any] = {
      "handle": os.fspath(handle),
      "files": len(files),
      "bytes": sum(sizes.values()),
      "assets": {f: b for f, b in sizes.items() if f.startswith("assets/")},
      "provenance": provenance,
      "last_check": check_records.load(module_dir),
      "load_error": None,
    }
    import tensorflow as tf

    try:
      obj = tf.saved_model.load(module_dir)
    except Exception as e:
      # A module that does not load is still described from its files.
      info["load_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
      obj = None
    info.update(interface.describe(obj, module_dir))
    return info


def _spec(spec: Any) -> str:
  if isinstance(spec, dict) and "dtype" in spec:
    shape = "<unknown rank>" if spec["shape"] is None else str(spec["shape"])
    return f"{spec['dtype']} {shape}"
  if isinstance(spec, dict):
    return "{" + ", ".join(f"{k}: {_spec(v)}" for k, v in spec.items()) + "}"
  if isinstance(spec, list):
    return "[" + ", ".join(_spec(v) for v in spec) + "]"
  return str(spec)


def format_size(n: int) -> str:
  """Bytes as people read them (decimal units)."""
  for unit in ("B", "kB", "MB", "GB"):
    if n < 1000 or unit == "GB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1000
  return str(n)


def info_rows(info: Dict[str, Any]) -> List[Tuple[str, str]]:
  """The facts of a `module_info` record as (label, text) rows, in the order
  `hubkit info` prints them and the registry's pages show them."""
  rows = [
    ("module", info["handle"]),
    ("files", f"{info['files']} files, {format_size(info['bytes'])}"),
  ]
  if info.get("load_error"):
    rows.append(("loads", f"NO: {info['load_error']}"))
  for inputs in info.get("inputs") or []:
    rows.append(("inputs", _spec(inputs)))
  if info.get("outputs") is not None:
    rows.append(("outputs", _spec(info["outputs"])))
  if info.get("takes_training") is not None:
    rows.append(
      (
        "training",
        "takes a `training` argument"
        if info["takes_training"]
        else "no `training` argument (one behaviour in both modes)",
      )
    )
  if info.get("required_arguments"):
    rows.append(("arguments", "required: " + ", ".join(info["required_arguments"])))
  rows.append(
    (
      "variables",
      f"{info['num_variables']} ({info['num_trainable_variables']} "
      f"trainable), {info['num_parameters']:,} parameters, "
      f"{format_size(info['variable_bytes'])}",
    )
  )
  losses = info["num_regularization_losses"]
  rows.append(("regularization", f"{losses} loss{'' if losses == 1 else 'es'}"))
  for name, sig in (info.get("signatures") or {}).items():
    rows.append(("signature", f"{name}: {_spec(sig['inputs'])} -> {_spec(sig['outputs'])}"))
  if not info.get("signatures"):
    rows.append(("signature", "none (TF Serving needs serving_default)"))
  rows.append(
    (
      "assets",
      ", ".join(f"{k[len('assets/') :]} ({format_size(v)})" for k, v in info["assets"].items())
      or "none",
    )
  )
  rows.append(
    ("custom ops", ", ".join(info.get("custom_ops") or []) or "none (core TensorFlow only)")
  )
  provenance = info.get("provenance")
  if provenance:
    source = provenance.get("source") or {}
    rows.append(
      (
        "provenance",
        f"{source.get('kind', '?')} by hubkit "
        f"{provenance.get('hubkit_version', '?')}, TensorFlow "
        f"{provenance.get('tensorflow_version', '?')}"
        + (f"; fine-tuned from {source['parent']}" if source.get("parent") else ""),
      )
    )
  else:
    rows.append(("provenance", "none (no assets.extra/hubkit.json)"))
  check = info.get("last_check")
  rows.append(
    (
      "last check",
      f"{check.get('summary')} ({check.get('checked_at')})"
      if check
      else "none recorded (run 'hubkit check')",
    )
  )
  return rows


def format_info(info: Dict[str, Any]) -> str:
  """The `hubkit info` text: one fact per line."""
  rows = info_rows(info)
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def dumps(info: Dict[str, Any], indent: Optional[int] = 1) -> str:
  """The JSON form (`hubkit info --json`)."""
  return json.dumps(info, indent=indent, sort_keys=True)
