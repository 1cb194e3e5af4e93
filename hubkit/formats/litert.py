"""LiteRT (TFLite) variants of a module, verified against the SavedModel.

The inference computation (`__call__(training=False)`) is converted with
TensorFlow's converter, float32 or with dynamic-range quantization (int8
weights, float activations). The result is only written after it was run with
the LiteRT interpreter (`ai-edge-litert`, or TensorFlow's deprecated
`tf.lite.Interpreter` where that package is missing) on the same inputs as the
SavedModel and its outputs agreed within the stated tolerance. A module whose
ops have no LiteRT kernel (string and lookup-table ops, mostly) is refused with
the op named.

Example:

  from hubkit.formats import litert
  result = litert.convert_module("/tmp/mlp", "/tmp/mlp.tflite")
  print(result.max_abs_diff, result.bytes)
"""

import dataclasses
import os
import re
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

from hubkit.utils import atomic
from hubkit.module import interface
from hubkit.cache import locking
from hubkit.utils import quiet
from hubkit.cache import resolver
from hubkit.errors import HubkitError, UsageError

QUANTIZATIONS = ("none", "dynamic")
# Relative output difference (max |lite - saved| / max |saved|) accepted for
# each quantization: float32 kernels differ only in summation order; int8
# weights move outputs by about a percent.
TOLERANCES = {"none": 1e-4, "dynamic": 0.05}
SIGNATURE = "serving_default"
_OP_IN_ERROR = re.compile(r"\btf\.([A-Z][A-Za-z0-9]*)\b")


@dataclasses.dataclass
class LiteResult:
  """A converted and verified LiteRT model.

  Attributes:
    path: the written .tflite file.
    quantization: "none" or "dynamic".
    bytes: its size.
    saved_model_bytes: the size of the SavedModel's variables and graph.
    max_abs_diff, max_rel_diff: LiteRT against SavedModel outputs on the
      check inputs.
    tolerance: the relative difference that was accepted.
    seconds: conversion time (without verification).
    interpreter: which interpreter verified it.
  """

  path: str
  quantization: str
  bytes: int
  saved_model_bytes: int
  max_abs_diff: float
  max_rel_diff: float
  tolerance: float
  seconds: float
  interpreter: str

  def as_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


def interpreter_class() -> Any:
  """The LiteRT interpreter: ai-edge-litert's, else TensorFlow's own."""
  try:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter
  except ImportError:
    import tensorflow as tf

    return tf.lite.Interpreter


def _flat_names(signature: Any) -> Sequence[str]:
  import tensorflow as tf

  if not tf.nest.is_nested(signature):
    return ["inputs"]
  from hubkit.module.inputs import input_names

  return [re.sub(r"[^A-Za-z0-9_]", "_", n) for n in input_names(signature)]


def _serving_module(obj: Any, signature: Any) -> Any:
  """A tf.Module whose one function takes named flat inputs (`inputs`, or the
  nest paths `hubkit check --inputs` uses) and returns named outputs
  (`__call__`'s dict keys; a single output as `outputs`, several as
  `output_0`, ...): the LiteRT model's `serving_default` signature."""
  import tensorflow as tf

  names = _flat_names(signature)
  specs = [
    tf.TensorSpec(s.shape, s.dtype, name=n) for s, n in zip(tf.nest.flatten(signature), names)
  ]

  def serve(*flat):
    outputs = interface.call(obj, tf.nest.pack_sequence_as(signature, list(flat)), training=False)
    if isinstance(outputs, dict):
      return outputs
    flat_outputs = tf.nest.flatten(outputs)
    if len(flat_outputs) == 1:
      return {"outputs": flat_outputs[0]}
    return {f"output_{i}": t for i, t in enumerate(flat_outputs)}

  module = tf.Module()
  module.obj = obj
  module.serve = tf.function(serve, input_signature=specs, autograph=False)
  return module


def _convert(module: Any, quantization: str) -> bytes:
  import tensorflow as tf

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
    [module.serve.get_concrete_function()], module
  )
  if quantization == "dynamic":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  try:
    with quiet.muted_stderr():
      return converter.convert()
  except Exception as e:
    select = re.search(r"TF Select ops: ([A-Za-z0-9, ]+)", str(e))
    ops = select.group(1).split(", ") if select else sorted(set(_OP_IN_ERROR.findall(str(e))))
    if ops:
      raise HubkitError(
        f"cannot convert to LiteRT: no LiteRT kernel for {', '.join(ops[:6])} "
        "(string, lookup-table and resource ops have none); serve this module as a "
        "SavedModel instead."
      ) from e
    reason = " ".join(str(e).split())[:200]
    raise HubkitError(f"cannot convert to LiteRT: {reason}") from e


def _run_lite(model: bytes, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  with quiet.muted_stderr():  # the interpreter announces its CPU delegate there
    interpreter = interpreter_class()(model_content=model)
    runner = interpreter.get_signature_runner(SIGNATURE)
    return {k: np.asarray(v) for k, v in runner(**feed).items()}


def _compare(lite: Dict[str, np.ndarray], saved: Dict[str, np.ndarray]) -> Dict[str, float]:
  if set(lite) != set(saved):
    raise HubkitError(f"the LiteRT model returns {sorted(lite)}, the SavedModel {sorted(saved)}")
  worst = scale = 0.0
  for name, expected in saved.items():
    got = lite[name]
    if got.shape != expected.shape:
      raise HubkitError(
        f"LiteRT output {name!r} has shape {list(got.shape)}, the SavedModel's "
        f"{list(expected.shape)}"
      )
    if expected.size:
      worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - expected))))
      scale = max(scale, float(np.max(np.abs(expected))))
  return {"max_abs": worst, "max_rel": worst / scale if scale else worst}


def convert_module(
  handle: str,
  output: str,
  quantization: str = "none",
  inputs: Optional[str] = None,
  tolerance: Optional[float] = None,
  overwrite: bool = False,
  safe_mode: bool = True,
  allow_ops: Sequence[str] = (),
) -> LiteResult:
  """Converts a module's inference computation to LiteRT and verifies it.

  Args:
    handle: the module (directory, archive or URL).
    output: the .tflite file to write (only once verified).
    quantization: "none" (float32) or "dynamic" (dynamic-range: int8 weights).
    inputs: an `.npz` of inputs to verify on (as `hubkit check --inputs`);
      default: sample inputs from the module's input signature.
    tolerance: the relative output difference accepted; default
      TOLERANCES[quantization].
    overwrite: replace an existing output file.
    safe_mode: scan the module's ops before loading it.
    allow_ops: op types you reviewed and allow beyond the allow-list.

  Returns:
    A LiteResult with sizes, parity and timing.

  Raises:
    UsageError: a bad argument or an existing output without `overwrite`.
    HubkitError: the module cannot be converted (the op is named) or the
      LiteRT outputs disagree with the SavedModel's.
  """
  if quantization not in QUANTIZATIONS:
    raise UsageError(f"`quantization`={quantization} must be one of {', '.join(QUANTIZATIONS)}.")
  if not output.endswith(".tflite"):
    raise UsageError(f"`output` {output} must end in .tflite.")
  if os.path.exists(output) and not overwrite:
    raise UsageError(f"{output} already exists; choose another path or pass `overwrite`.")
  atomic.check_output_file(output)
  tolerance = TOLERANCES[quantization] if tolerance is None else tolerance
  import tensorflow as tf

  from hubkit.module import sample_inputs
  from hubkit.module import inputs as checker_inputs

  with resolver.local_module(handle, safe_mode=safe_mode, allow_ops=allow_ops) as module_dir:
    obj = tf.saved_model.load(module_dir)
    traces = (
      interface.call_traces(getattr(obj, "__call__", None)) if hasattr(obj, "__call__") else []
    )
    if not traces:
      raise HubkitError(
        f"{handle} has no traced __call__ to convert; check it with 'hubkit check'."
      )
    signature = tf.nest.map_structure(sample_inputs.with_rank, traces[0].inputs)
    module = _serving_module(obj, signature)
    start = time.perf_counter()
    model = _convert(module, quantization)
    seconds = time.perf_counter() - start
    batch = (
      checker_inputs.load_inputs(inputs, signature)
      if inputs
      else sample_inputs.make_inputs(signature, module_dir)
    )
    flat = tf.nest.flatten(batch)
    feed = {n: t.numpy() for n, t in zip(_flat_names(signature), flat)}
    saved = {k: v.numpy() for k, v in module.serve(*flat).items()}
    try:
      lite = _run_lite(model, feed)
    except (ValueError, RuntimeError) as e:
      raise HubkitError(f"the LiteRT model does not run: {str(e).splitlines()[0][:200]}") from e
    diff = _compare(lite, saved)
    if not diff["max_rel"] <= tolerance:
      raise HubkitError(
        f"LiteRT outputs differ from the SavedModel's by {diff['max_abs']:.3g} (relative "
        f"{diff['max_rel']:.3g} > tolerance {tolerance:g}); nothing was written. Try "
        "`quantization`=none or a larger `tolerance`."
      )
    saved_bytes = locking.dir_size(module_dir)
  with atomic.atomic_file(output, "wb", overwrite=overwrite) as f:
    f.write(model)
  return LiteResult(
    os.path.abspath(output),
    quantization,
    len(model),
    saved_bytes,
    diff["max_abs"],
    diff["max_rel"],
    tolerance,
    seconds,
    f"{interpreter_class().__module__}.Interpreter",
  )
