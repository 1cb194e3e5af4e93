"""Runs the main job on the bundled digits example: train a classifier, export
its feature extractor as a Reusable SavedModel, and fine-tune it through
hub.KerasLayer in a new model."""

from typing import List

from absl import flags

from hubkit.commands import _common


FLAGS = flags.FlagValues()
flags.DEFINE_string(
  "workdir", "hubkit-demo", "Directory for everything the demo writes.", flag_values=FLAGS
)
flags.DEFINE_integer("epochs", 20, "Training epochs per stage.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=FLAGS)
flags.DEFINE_integer(
  "verbose",
  2,
  "Keras progress output: 0 silent, 1 bar, 2 a line per epoch.",
  lower_bound=0,
  upper_bound=2,
  flag_values=FLAGS,
)


def logical_cpus() -> int:
  """The check step runs tf.distribute.MirroredStrategy over two logical CPUs."""
  return 2


def main(args: List[str]) -> int:
  _common.no_positional("demo", args)
  from hubkit.demo import pipeline

  result = pipeline.run_demo(
    FLAGS.workdir, epochs=FLAGS.epochs, seed=FLAGS.seed, verbose=FLAGS.verbose
  )
  print(result.summary())
  return 0
