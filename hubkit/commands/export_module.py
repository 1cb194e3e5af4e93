"""Exports a module from the hubkit module library (hubkit.modules) by name,
optionally with pre-trained weights from an .npz file or a TF1/TF2 checkpoint.

Example:
  hubkit export-module --module=mlp_feature_vector --export_dir=/tmp/mlp \\
      --config='{"input_dim": 64, "hidden_units": [128, 32]}' --weights=w.npz
"""

import json
from typing import Any, Dict, List

from absl import flags

from hubkit.commands import _common
from hubkit.errors import UsageError

FLAGS = flags.FlagValues()
flags.DEFINE_string(
  "module",
  None,
  "Library module name, e.g. mul, mlp_feature_vector, image_feature_vector, text_embedding.",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "export_dir", None, "Directory to create for the SavedModel.", flag_values=FLAGS
)
flags.DEFINE_string(
  "weights", None, "Optional .npz file or checkpoint prefix with weights.", flag_values=FLAGS
)
flags.DEFINE_string(
  "name_map",
  None,
  "Optional JSON file mapping module variable names to names in --weights.",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "config", "{}", "JSON object of module constructor arguments.", flag_values=FLAGS
)
flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir.", flag_values=FLAGS)


def _json_object(text: str, what: str) -> Dict[str, Any]:
  try:
    value = json.loads(text)
  except ValueError as e:
    raise UsageError(
      f"{what} is not valid JSON ({e}); pass an object such as '{{\"dim\": 8}}'."
    ) from e
  if not isinstance(value, dict):
    raise UsageError(f"{what} must be a JSON object, got {type(value).__name__}.")
  return value


def _name_map(path: str) -> Dict[str, str]:
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise UsageError(f"cannot read --name_map file {path}: {e.strerror}.") from e
  except UnicodeDecodeError as e:
    raise UsageError(
      f"--name_map file {path} is not UTF-8 text (byte {e.start}); pass a JSON object "
      'such as {"old/name": "new/name"}.'
    ) from e
  return _json_object(text, f"--name_map file {path}")


def main(args: List[str]) -> int:
  _common.no_positional("export-module", args)
  name, export_dir = _common.required(FLAGS, "module", "export_dir")
  from hubkit import modules

  path = modules.export_module(
    name,
    export_dir,
    config=_json_object(FLAGS.config, "--config"),
    weights=FLAGS.weights,
    name_map=_name_map(FLAGS.name_map) if FLAGS.name_map else None,
    overwrite=FLAGS.overwrite,
  )
  from hubkit.module import metadata

  print(metadata.export_summary(path))
  return 0
