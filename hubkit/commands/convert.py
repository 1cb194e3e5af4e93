"""Converts a module to another format and verifies it against the SavedModel.

Only LiteRT (TFLite) for now: the inference computation, float32 or with
dynamic-range quantization, run with the LiteRT interpreter on the same inputs
as the SavedModel; the file is written only when the outputs agree within the
tolerance. A module whose ops LiteRT lacks is refused with the ops named. With
--handle, a tfhub.dev Lite card (parent-model: the handle) is written beside
the file.

Example:
  hubkit convert /tmp/features --format=litert --output=/tmp/features.tflite
  hubkit convert /tmp/features --format=litert --output=/tmp/f.tflite --quantization=dynamic
"""

import os
from typing import List

from absl import flags

from hubkit.commands import _common

FLAGS = flags.FlagValues()
flags.DEFINE_enum("format", "litert", ["litert"], "The format to convert to.", flag_values=FLAGS)
flags.DEFINE_string("output", None, "The .tflite file to write.", flag_values=FLAGS)
flags.DEFINE_enum(
  "quantization",
  "none",
  ["none", "dynamic"],
  "none: float32; dynamic: dynamic-range quantization (int8 weights).",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "inputs", None, "An .npz of inputs to verify on (default: sample inputs).", flag_values=FLAGS
)
flags.DEFINE_float(
  "tolerance",
  None,
  "Relative output difference accepted (default 1e-4 float32, 0.05 dynamic).",
  lower_bound=0.0,
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "handle",
  None,
  "publisher/name/version of the parent module: writes a Lite card.",
  flag_values=FLAGS,
)
flags.DEFINE_bool("overwrite", False, "Replace an existing output.", flag_values=FLAGS)
_common.define_safety_flags(FLAGS)


def main(args: List[str]) -> int:
  handle = _common.one_positional("convert", "module handle", args)
  (output,) = _common.required(FLAGS, "output")
  from hubkit.registry import card
  from hubkit.formats import litert
  from hubkit.utils.atomic import atomic_file

  card_path = None
  if FLAGS.handle:
    card.parse_handle(FLAGS.handle)  # before the work, not after it
    card_path = os.path.splitext(output)[0] + ".md"
  result = litert.convert_module(
    handle,
    output,
    quantization=FLAGS.quantization,
    inputs=FLAGS.inputs,
    tolerance=FLAGS.tolerance,
    overwrite=FLAGS.overwrite,
    safe_mode=not FLAGS.unsafe,
    allow_ops=FLAGS.allow_ops,
  )
  print(
    f"wrote {result.path}: {result.bytes} bytes ({result.quantization}); outputs within "
    f"{result.max_abs_diff:.3g} of the SavedModel's (relative {result.max_rel_diff:.3g} <= "
    f"{result.tolerance:g}); converted in {result.seconds:.2f} s"
  )
  if card_path:
    text = card.render_lite_card(
      FLAGS.handle,
      f"The LiteRT variant of {FLAGS.handle}.",
      os.path.basename(output),
      FLAGS.quantization,
      [f"max abs diff {result.max_abs_diff:.3g} vs the SavedModel, {result.bytes} bytes"],
    )
    with atomic_file(card_path, "w") as f:
      f.write(text)
    print(f"wrote {card_path}")
  return 0
