"""Fine-tunes a module on your data with a new head and re-exports it:
validation split, a resumable checkpoint every epoch (rerun the same command
after an interruption), early stopping with the best weights restored, and
tf.distribute strategies (mirrored on local devices, multi_worker via
TF_CONFIG where only the chief exports).

Example:
  hubkit finetune --module=http://127.0.0.1:8765/me/features/1 --data=train.npz \\
      --head=classification:10 --export_dir=/tmp/features_finetuned
"""

from typing import List

from absl import flags

from hubkit.commands import _common

FLAGS = flags.FlagValues()
flags.DEFINE_string("module", None, "Module handle: directory, .tar.gz or URL.", flag_values=FLAGS)
flags.DEFINE_string(
  "data", None, ".npz with x and y, or .csv with a label column.", flag_values=FLAGS
)
flags.DEFINE_string("head", None, "classification:N or regression:N.", flag_values=FLAGS)
flags.DEFINE_string("export_dir", None, "Where to write the fine-tuned module.", flag_values=FLAGS)
flags.DEFINE_integer("epochs", 10, "Maximum epochs.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "Global batch size.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", lower_bound=0.0, flag_values=FLAGS)
flags.DEFINE_enum(
  "learning_rate_schedule",
  "constant",
  ["constant", "cosine"],
  "Learning-rate schedule.",
  flag_values=FLAGS,
)
flags.DEFINE_enum(
  "keras",
  "3",
  ["3", "2"],
  "3: hubkit.KerasLayer in Keras 3; 2: hub.KerasLayer in tf_keras.",
  flag_values=FLAGS,
)
flags.DEFINE_enum(
  "strategy",
  "default",
  ["default", "mirrored", "multi_worker"],
  "tf.distribute strategy.",
  flag_values=FLAGS,
)
flags.DEFINE_integer(
  "devices",
  2,
  "With --strategy=mirrored on a CPU-only machine: split the CPU into this many logical devices.",
  lower_bound=1,
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "checkpoint_dir", None, "Checkpoint folder (default: <export_dir>.checkpoint).", flag_values=FLAGS
)
flags.DEFINE_string("tensorboard_dir", None, "Write TensorBoard logs here.", flag_values=FLAGS)
flags.DEFINE_string(
  "classifier_dir", None, "Also export the whole classifier here.", flag_values=FLAGS
)
flags.DEFINE_string("label_column", "label", "CSV label column.", flag_values=FLAGS)
flags.DEFINE_float("validation_split", 0.2, "Share of examples held out.", flag_values=FLAGS)
flags.DEFINE_integer(
  "patience", 3, "Early-stopping patience (epochs).", lower_bound=1, flag_values=FLAGS
)
flags.DEFINE_integer("seed", 0, "Shuffling and initialisation seed.", flag_values=FLAGS)
flags.DEFINE_integer(
  "verbose",
  2,
  "Keras progress output (0, 1 or 2).",
  lower_bound=0,
  upper_bound=2,
  flag_values=FLAGS,
)
flags.DEFINE_bool("overwrite", False, "Replace existing exports.", flag_values=FLAGS)
_common.define_safety_flags(FLAGS)

# Python argument -> flag, where they are named differently.
FLAG_FOR_ARGUMENT = {"keras_version": "keras"}


def logical_cpus() -> int:
  """Devices to set up before TensorFlow starts (0: leave them untouched).

  MultiWorkerMirroredStrategy must configure collective ops before any device
  is initialised, so that strategy gets 0.
  """
  if FLAGS.strategy == "multi_worker":
    return 0
  return FLAGS.devices if FLAGS.strategy == "mirrored" else 1


def main(args: List[str]) -> int:
  _common.no_positional("finetune", args)
  module, data, head, export_dir = _common.required(FLAGS, "module", "data", "head", "export_dir")
  from hubkit.training import finetune

  result = finetune.finetune(
    module,
    data,
    head,
    export_dir,
    epochs=FLAGS.epochs,
    batch_size=FLAGS.batch_size,
    learning_rate=FLAGS.learning_rate,
    learning_rate_schedule=FLAGS.learning_rate_schedule,
    keras_version=FLAGS.keras,
    strategy=FLAGS.strategy,
    checkpoint_dir=FLAGS.checkpoint_dir,
    tensorboard_dir=FLAGS.tensorboard_dir,
    classifier_dir=FLAGS.classifier_dir,
    label_column=FLAGS.label_column,
    validation_split=FLAGS.validation_split,
    patience=FLAGS.patience,
    seed=FLAGS.seed,
    overwrite=FLAGS.overwrite,
    verbose=FLAGS.verbose,
    safe_mode=not FLAGS.unsafe,
    allow_ops=FLAGS.allow_ops,
  )
  print(result.summary())
  return 0
