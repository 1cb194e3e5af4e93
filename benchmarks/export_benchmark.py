"""Export and reload cost of a ~10M-parameter feature extractor.

For each export path (tf_keras exporter, Keras 3 exporter, hubkit module
library) it measures, side by side in one run:
  * export time (median over --repeats; includes hubkit's parity verification),
  * reload time with tf.saved_model.load (median),
  * export size / parameter bytes (float32): 1.0 is the physical limit,
    the target is <= 1.01.

Prints a table and writes JSON (default benchmarks/results/export.json).

  python benchmarks/export_benchmark.py [--repeats=3] [--output=FILE]
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
import tensorflow as tf
import tf_keras

import _models
import _report
import hubkit

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 3, "Timed repetitions per measurement.", lower_bound=1)
flags.DEFINE_string(
  "output",
  os.path.join(os.path.dirname(__file__), "results", "export.json"),
  "Where to write the JSON results.",
)

# 1024 -> 2048 -> 2048 -> 1536 -> 384: 10,030,464 parameters.
INPUT_DIM = 1024
UNITS = (2048, 2048, 1536, 384)
SIZE_TARGET = 1.01


def _exporters():
  return {
    "tf_keras exporter": lambda d: hubkit.export_keras_submodel(
      _models.dense_stack(tf_keras, INPUT_DIM, UNITS), d
    ),
    "Keras 3 exporter": lambda d: hubkit.export_keras_submodel(
      _models.dense_stack(keras, INPUT_DIM, UNITS), d
    ),
    "module library (mlp)": lambda d: hubkit.export_module(
      "mlp_feature_vector",
      d,
      config={"input_dim": INPUT_DIM, "hidden_units": list(UNITS), "dropout_rate": 0.0},
    ),
  }


def _dir_bytes(path):
  return sum(
    os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
  )


def _measure(name, export, workdir, repeats):
  export_times, reload_times = [], []
  for i in range(repeats):
    path = os.path.join(workdir, f"{name.split()[0]}_{i}")
    start = time.perf_counter()
    export(path)
    export_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    obj = tf.saved_model.load(path)
    reload_times.append(time.perf_counter() - start)
  params = sum(int(v.shape.num_elements()) for v in obj.variables)
  size = _dir_bytes(path)
  return {
    "exporter": name,
    "parameters": params,
    "export_s": statistics.median(export_times),
    "reload_s": statistics.median(reload_times),
    "export_bytes": size,
    "size_ratio": size / (4 * params),
    "size_target": SIZE_TARGET,
    "meets_size_target": size / (4 * params) <= SIZE_TARGET,
  }


def main(argv):
  del argv
  rows = []
  with tempfile.TemporaryDirectory() as workdir:
    for name, export in _exporters().items():
      print(f"measuring {name} ...", file=sys.stderr, flush=True)
      rows.append(_measure(name, export, workdir, FLAGS.repeats))
  _report.report(
    [
      ("exporter", "exporter", "<22"),
      ("params", "parameters", ",d"),
      ("export s", "export_s", ".2f"),
      ("reload s", "reload_s", ".2f"),
      ("size/param bytes", "size_ratio", ".4f"),
    ],
    rows,
    f"(size target <= {SIZE_TARGET}; median of {FLAGS.repeats} runs; "
    f"TF {tf.__version__}, {os.cpu_count()} CPUs)",
    FLAGS.output,
    {"benchmark": "export", "repeats": FLAGS.repeats, "tensorflow": tf.__version__},
  )


if __name__ == "__main__":
  app.run(main)
