"""LiteRT against the SavedModel for the image feature vector module.

Converts the library's image feature vector (convolutions, batch norm) to
LiteRT, float32 and dynamic-range, with `hubkit.convert_module` (which also
verifies parity), then times single-image and batch-of-8 inference side by
side: the LiteRT interpreter's signature runner against the loaded
SavedModel's `__call__(training=False)` (eager call of the restored
tf.function), medians of alternating runs in one process. Sizes are the
SavedModel folder against each .tflite file.

Prints a table and writes JSON (default benchmarks/results/litert.json).

  python benchmarks/litert_benchmark.py [--repeats=200] [--image_size=96]
"""

import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags
import numpy as np

import _report
import hubkit
from hubkit.formats import litert
from hubkit.cache import locking

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 200, "Alternating timed calls per side.", lower_bound=5)
flags.DEFINE_integer("image_size", 96, "Height and width of the test images.", lower_bound=16)
flags.DEFINE_string(
  "output",
  os.path.join(os.path.dirname(__file__), "results", "litert.json"),
  "Where to write the JSON.",
)


def _median_ms(first, second):
  a, b = [], []
  for _ in range(FLAGS.repeats):
    for fn, times in ((first, a), (second, b)):
      start = time.perf_counter()
      fn()
      times.append(1000 * (time.perf_counter() - start))
  return statistics.median(a), statistics.median(b)


def main(argv):
  del argv
  import tensorflow as tf

  rows = []
  with tempfile.TemporaryDirectory() as workdir:
    module = hubkit.export_module(
      "image_feature_vector",
      os.path.join(workdir, "image"),
      config={"filters": [32, 64, 128], "num_features": 256},
    )
    saved = tf.saved_model.load(module)
    saved_bytes = locking.dir_size(module)
    for quantization in ("none", "dynamic"):
      print(f"converting ({quantization}) ...", file=sys.stderr, flush=True)
      result = hubkit.convert_module(
        module, os.path.join(workdir, f"{quantization}.tflite"), quantization=quantization
      )
      runner = litert.interpreter_class()(model_path=result.path).get_signature_runner(
        "serving_default"
      )
      for batch in (1, 8):
        x = np.random.default_rng(0).random(
          [batch, FLAGS.image_size, FLAGS.image_size, 3], dtype=np.float32
        )
        tensor = tf.constant(x)
        saved(tensor, training=False)  # trace and warm up both before timing
        runner(inputs=x)
        lite_ms, saved_ms = _median_ms(
          lambda x=x, r=runner: r(inputs=x), lambda t=tensor: saved(t, training=False)
        )
        rows.append(
          {
            "variant": f"{quantization}, batch {batch}",
            "convert_s": result.seconds,
            "lite_ms": lite_ms,
            "saved_model_ms": saved_ms,
            "speedup": saved_ms / lite_ms,
            "lite_bytes": result.bytes,
            "size_ratio": result.bytes / saved_bytes,
            "max_rel_diff": result.max_rel_diff,
          }
        )
  _report.report(
    [
      ("variant", "variant", ""),
      ("convert s", "convert_s", ".2f"),
      ("LiteRT ms", "lite_ms", ".2f"),
      ("SavedModel ms", "saved_model_ms", ".2f"),
      ("speed-up", "speedup", ".2f"),
      ("tflite bytes", "lite_bytes", ","),
      ("size ÷ SavedModel", "size_ratio", ".3f"),
      ("max rel diff", "max_rel_diff", ".2g"),
    ],
    rows,
    f"(image feature vector, filters [32, 64, 128], 256 features, {FLAGS.image_size}x"
    f"{FLAGS.image_size} images; SavedModel {saved_bytes:,} bytes; medians of "
    f"{FLAGS.repeats} alternating calls; TF {tf.__version__}, {os.cpu_count()} CPUs)",
    FLAGS.output,
    {"saved_model_bytes": saved_bytes, "image_size": FLAGS.image_size, "repeats": FLAGS.repeats},
  )


if __name__ == "__main__":
  app.run(main)
