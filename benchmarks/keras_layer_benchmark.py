"""Fine-tuning throughput through a module layer vs. the same model built natively.

Keras 3: a model around `hubkit.KerasLayer` (module exported from a Keras 3
feature extractor) against the same architecture built from Keras 3 layers.
tf_keras: a model around `hub.KerasLayer` against the same architecture built
from tf_keras layers. Both sides of each pair train on the same data with the
same optimizer and compile settings; runs alternate and the median is kept.

Prints a table and writes JSON (default benchmarks/results/keras_layer.json).

  python benchmarks/keras_layer_benchmark.py [--repeats=5] [--epochs=2] [--output=FILE]
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
import tensorflow_hub as hub
import tf_keras

import _models
import _report
import hubkit

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 7, "Alternating timed runs per model.", lower_bound=1)
flags.DEFINE_integer("epochs", 2, "Epochs per timed run.", lower_bound=1)
flags.DEFINE_integer("examples", 16384, "Training examples.", lower_bound=64)
flags.DEFINE_integer("batch_size", 128, "Batch size.", lower_bound=1)
flags.DEFINE_string(
  "output",
  os.path.join(os.path.dirname(__file__), "results", "keras_layer.json"),
  "Where to write the JSON.",
)

INPUT_DIM, UNITS, CLASSES = 128, (512, 256), 10
TARGET = 0.95


def _features(lib):
  return _models.dense_stack(lib, INPUT_DIM, UNITS)


def _classifier(lib, body):
  inputs = lib.Input((INPUT_DIM,))
  return lib.Model(inputs, lib.layers.Dense(CLASSES)(body(inputs)))


def _compile(model, lib):
  model.compile(
    optimizer=lib.optimizers.Adam(1e-3),
    loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True),
    **({"jit_compile": False} if lib is keras else {}),
  )


def _throughput(model, x, y):
  model.fit(
    x[: FLAGS.batch_size * 2],
    y[: FLAGS.batch_size * 2],
    batch_size=FLAGS.batch_size,
    epochs=1,
    verbose=0,
  )  # trace and warm up outside the timed region
  start = time.perf_counter()
  model.fit(x, y, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=0)
  return FLAGS.epochs * len(x) / (time.perf_counter() - start)


def _pair(name, make_module_model, make_native_model, lib, x, y):
  module_model, native_model = make_module_model(), make_native_model()
  _compile(module_model, lib)
  _compile(native_model, lib)
  module_runs, native_runs = [], []
  for _ in range(FLAGS.repeats):
    native_runs.append(_throughput(native_model, x, y))
    module_runs.append(_throughput(module_model, x, y))
  module_eps, native_eps = statistics.median(module_runs), statistics.median(native_runs)
  return {
    "pair": name,
    "module_examples_per_s": module_eps,
    "native_examples_per_s": native_eps,
    "ratio": module_eps / native_eps,
    "target": TARGET,
    "meets_target": module_eps / native_eps >= TARGET,
  }


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 1, [FLAGS.examples, INPUT_DIM]).astype(np.float32)
  y = rng.integers(0, CLASSES, FLAGS.examples)
  rows = []
  with tempfile.TemporaryDirectory() as workdir:
    k3_module = hubkit.export_keras_submodel(_features(keras), os.path.join(workdir, "k3"))
    tk_module = hubkit.export_keras_submodel(_features(tf_keras), os.path.join(workdir, "tk"))
    print("measuring Keras 3 ...", file=sys.stderr, flush=True)
    rows.append(
      _pair(
        "hubkit.KerasLayer / native (Keras 3)",
        lambda: _classifier(keras, hubkit.KerasLayer(k3_module, trainable=True)),
        lambda: _classifier(keras, _features(keras)),
        keras,
        x,
        y,
      )
    )
    print("measuring tf_keras ...", file=sys.stderr, flush=True)
    rows.append(
      _pair(
        "hub.KerasLayer / native (tf_keras)",
        lambda: _classifier(tf_keras, hub.KerasLayer(tk_module, trainable=True)),
        lambda: _classifier(tf_keras, _features(tf_keras)),
        tf_keras,
        x,
        y,
      )
    )
  _report.report(
    [
      ("pair", "pair", "<38"),
      ("module ex/s", "module_examples_per_s", ",.0f"),
      ("native ex/s", "native_examples_per_s", ",.0f"),
      ("ratio", "ratio", ".3f"),
    ],
    rows,
    f"(target ratio >= {TARGET}; median of {FLAGS.repeats} alternating runs of "
    f"{FLAGS.epochs} epochs x {FLAGS.examples} examples, batch {FLAGS.batch_size}; "
    f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs)",
    FLAGS.output,
    {
      "benchmark": "keras_layer",
      "repeats": FLAGS.repeats,
      "epochs": FLAGS.epochs,
      "examples": FLAGS.examples,
      "batch_size": FLAGS.batch_size,
      "tensorflow": tf.__version__,
      "keras": keras.__version__,
    },
  )


if __name__ == "__main__":
  app.run(main)
