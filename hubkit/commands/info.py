"""Shows what a module offers before you use it: inputs and outputs, the
`training` argument, variables, regularization losses, signatures, assets,
ops beyond core TensorFlow, provenance and the last recorded check. One load
at most, no training step.

Example:
  hubkit info /tmp/mlp
  hubkit info http://127.0.0.1:8765/hubkit/digits-features/1 --json
"""

from typing import List

from absl import flags

from hubkit.commands import _common

FLAGS = flags.FlagValues()
flags.DEFINE_bool("json", False, "Print the description as JSON.", flag_values=FLAGS)
_common.define_safety_flags(FLAGS)


def main(args: List[str]) -> int:
  handle = _common.one_positional("info", "module handle", args)
  from hubkit.inspection import info

  described = info.module_info(handle, safe_mode=not FLAGS.unsafe, allow_ops=FLAGS.allow_ops)
  print(info.dumps(described) if FLAGS.json else info.format_info(described))
  return 0
