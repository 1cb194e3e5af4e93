"""`hubkit finetune` against a hand-written Keras fit of the same model and data.

Both train the same module (hubkit.KerasLayer in Keras 3) with the same new
head, optimizer, batch size, validation data and epochs; a callback times the
training loop only (not loading or exporting). hubkit's loop also writes a
resumable checkpoint every epoch (hubkit.training.epoch_backup); the time of
each of those writes is measured inside hubkit's own runs.
Runs alternate; medians are reported.

Prints a table and writes JSON (default benchmarks/results/finetune.json).

  python benchmarks/finetune_benchmark.py [--repeats=3] [--epochs=3]
"""

import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

import _report
import hubkit
from hubkit.training import finetune
from hubkit.training import epoch_backup

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 3, "Alternating runs per side.", lower_bound=1)
flags.DEFINE_integer("epochs", 3, "Epochs per run.", lower_bound=1)
flags.DEFINE_integer("examples", 20000, "Examples (80% train).", lower_bound=100)
flags.DEFINE_integer("batch_size", 128, "Batch size.", lower_bound=1)
flags.DEFINE_string(
  "output",
  os.path.join(os.path.dirname(__file__), "results", "finetune.json"),
  "Where to write the JSON.",
)
TARGET = 0.95


class _Timer(keras.callbacks.Callback):
  """Times the training loop and the end of each epoch."""

  def on_train_begin(self, logs=None):
    self.start = time.perf_counter()

  def on_train_end(self, logs=None):
    self.seconds = time.perf_counter() - self.start


class _CheckpointTimes:
  """Times every checkpoint hubkit finetune writes."""

  def __init__(self):
    self.ms = []
    times, original = self.ms, epoch_backup.EpochBackup.save

    def timed(backup, model, epoch):
      start = time.perf_counter()
      original(backup, model, epoch)
      times.append(1000 * (time.perf_counter() - start))

    epoch_backup.EpochBackup.save = timed


def _hand_written(module, x, y, timer):
  cut = int(0.8 * len(x))
  keras.utils.set_random_seed(0)
  inputs = keras.Input((x.shape[1],))
  model = keras.Model(
    inputs, keras.layers.Dense(10)(hubkit.KerasLayer(module, trainable=True)(inputs))
  )
  model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
  )
  batches = lambda a, b: tf.data.Dataset.from_tensor_slices((a, b)).batch(FLAGS.batch_size)
  model.fit(
    batches(x[:cut], y[:cut]),
    validation_data=batches(x[cut:], y[cut:]),
    epochs=FLAGS.epochs,
    callbacks=[timer],
    verbose=0,
  )


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 1, [FLAGS.examples, 64]).astype(np.float32)
  y = rng.integers(0, 10, FLAGS.examples)
  train_examples = FLAGS.epochs * int(0.8 * FLAGS.examples)
  hubkit_runs, hand_runs = [], []
  checkpoints = _CheckpointTimes()
  with tempfile.TemporaryDirectory() as workdir:
    module = hubkit.export_module(
      "mlp_feature_vector",
      os.path.join(workdir, "module"),
      config={"input_dim": 64, "hidden_units": [256, 128], "dropout_rate": 0.0},
    )
    data = os.path.join(workdir, "data.npz")
    np.savez(data, x=x, y=y)
    for i in range(FLAGS.repeats):
      print(f"run {i + 1}/{FLAGS.repeats} ...", file=sys.stderr, flush=True)
      timer = _Timer()
      _hand_written(module, x, y, timer)
      hand_runs.append(train_examples / timer.seconds)
      timer = _Timer()
      finetune.finetune(
        module,
        data,
        "classification:10",
        os.path.join(workdir, f"out{i}"),
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        patience=100,
        verbose=0,
        callbacks=[timer],
      )
      hubkit_runs.append(train_examples / timer.seconds)
  hubkit_eps, hand_eps = statistics.median(hubkit_runs), statistics.median(hand_runs)
  epoch_ms = 1000 * int(0.8 * FLAGS.examples) / hand_eps
  rows = [
    {"measure": "hubkit finetune examples/s", "value": hubkit_eps},
    {"measure": "hand-written fit examples/s", "value": hand_eps},
    {"measure": "ratio (target >= 0.95)", "value": hubkit_eps / hand_eps},
    {"measure": "hubkit checkpoint ms per epoch", "value": statistics.median(checkpoints.ms)},
    {
      "measure": "checkpoint share of an epoch",
      "value": statistics.median(checkpoints.ms) / epoch_ms,
    },
  ]
  _report.report(
    [("measure", "measure", "<30"), ("value", "value", ",.3f")],
    rows,
    f"(median of {FLAGS.repeats} alternating runs of {FLAGS.epochs} epochs x "
    f"{FLAGS.examples} examples, batch {FLAGS.batch_size}; TF {tf.__version__}, "
    f"Keras {keras.__version__}, {os.cpu_count()} CPUs)",
    FLAGS.output,
    {
      "benchmark": "finetune",
      "repeats": FLAGS.repeats,
      "epochs": FLAGS.epochs,
      "examples": FLAGS.examples,
      "batch_size": FLAGS.batch_size,
      "target": TARGET,
      "ratio": hubkit_eps / hand_eps,
    },
  )


if __name__ == "__main__":
  app.run(main)
