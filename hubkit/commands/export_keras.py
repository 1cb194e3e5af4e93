"""Cuts the piece between two named layers of a Keras model (tf_keras or
Keras 3; or takes the whole model) and exports it as a Reusable SavedModel
without the optimizer, verified against the source piece.

Example:
  hubkit export-keras --model=classifier.keras --output_layer=features \\
      --export_dir=/tmp/feature_extractor
"""

from typing import List

from absl import flags

from hubkit.commands import _common

FLAGS = flags.FlagValues()
flags.DEFINE_string(
  "model",
  None,
  "tf_keras SavedModel directory, .h5, .keras, or .json config (with --weights).",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "export_dir", None, "Directory to create for the SavedModel.", flag_values=FLAGS
)
flags.DEFINE_string(
  "input_layer",
  None,
  "The piece starts with this layer (default: the model inputs).",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "output_layer",
  None,
  "The piece ends with this layer's output (default: the model outputs).",
  flag_values=FLAGS,
)
flags.DEFINE_string("weights", None, "Weights file for a .json config.", flag_values=FLAGS)
flags.DEFINE_string(
  "input_spec", None, "Input spec for subclassed models, e.g. float32:[None,64].", flag_values=FLAGS
)
flags.DEFINE_float(
  "tolerance",
  1e-5,
  "Largest allowed output difference from the source.",
  lower_bound=0.0,
  flag_values=FLAGS,
)
flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir.", flag_values=FLAGS)


def main(args: List[str]) -> int:
  _common.no_positional("export-keras", args)
  model, export_dir = _common.required(FLAGS, "model", "export_dir")
  from hubkit.module import metadata
  from hubkit.exporters import keras_submodel

  path = keras_submodel.export_keras_submodel(
    model,
    export_dir,
    input_layer=FLAGS.input_layer,
    output_layer=FLAGS.output_layer,
    input_spec=FLAGS.input_spec,
    weights=FLAGS.weights,
    overwrite=FLAGS.overwrite,
    tolerance=FLAGS.tolerance,
  )
  print(metadata.export_summary(path))
  return 0
