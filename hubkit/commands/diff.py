"""Compares two versions of a module: can NEW replace OLD for its consumers?

Lists every difference in inputs, outputs, arguments (`training` included),
signatures, variables, regularization losses, assets and required ops, each
marked breaking or compatible, and the drift of the outputs on the same
inputs ("values changed": retrained weights, reported with its figures).
Exits 0 when NEW can replace OLD (changed values included), 1 when it breaks
consumers of OLD: an interface change, or a drift beyond --max_drift.

Example:
  hubkit diff /tmp/mlp_v1 /tmp/mlp_v2
  hubkit diff /tmp/mlp_v1 /tmp/mlp_v2 --max_drift=0.05
  hubkit diff http://127.0.0.1:8765/hubkit/mlp/1 /tmp/mlp_v2 --json
"""

import json
from typing import List

from absl import flags

from hubkit.commands import _common

from hubkit.errors import UsageError

FLAGS = flags.FlagValues()
flags.DEFINE_bool("json", False, "Print the comparison as JSON.", flag_values=FLAGS)
flags.DEFINE_string(
  "inputs",
  None,
  "An .npz of inputs to compare outputs on (key 'inputs' for one tensor); "
  "default: sample inputs made from OLD's input signature.",
  flag_values=FLAGS,
)
flags.DEFINE_float(
  "tolerance",
  1e-5,
  "Relative output drift still counted as the same outputs.",
  lower_bound=0.0,
  flag_values=FLAGS,
)
flags.DEFINE_float(
  "max_drift",
  None,
  "Relative output drift your consumers accept; beyond it changed values are "
  "breaking (exit 1). Default: changed values are reported, never breaking.",
  lower_bound=0.0,
  flag_values=FLAGS,
)
_common.define_safety_flags(FLAGS)


def main(args: List[str]) -> int:
  if len(args) != 2:
    raise UsageError(
      f"'hubkit diff' takes two module handles, OLD and NEW; got {len(args)} "
      f"({' '.join(args) or 'none'})."
    )
  from hubkit.inspection import diff

  result = diff.diff_modules(
    args[0],
    args[1],
    inputs=FLAGS.inputs,
    tolerance=FLAGS.tolerance,
    safe_mode=not FLAGS.unsafe,
    allow_ops=FLAGS.allow_ops,
    max_drift=FLAGS.max_drift,
  )
  print(json.dumps(result.as_dict(), indent=1) if FLAGS.json else result.format())
  return 1 if result.breaking else 0
