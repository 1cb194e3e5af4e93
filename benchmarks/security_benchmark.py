"""What safety costs, next to the time it guards, measured side by side.

For a ~90 MB module (and a ResNet50 export for a large graph):
  * the op scan (first time) and the remembered verdict (second time) against
    `tf.saved_model.load` of the same module;
  * the verification of a cache hit (manifest + status check) against the
    same load, and a deep verify (every file hashed);
  * `hubkit check` end to end (a fresh process, as users run it) with the
    dynamic rules confined (child process, Landlock, network namespace)
    against the same command with --unconfined.

Prints a table and writes JSON (default benchmarks/results/security.json).

  python benchmarks/security_benchmark.py [--megabytes=90] [--repeats=5]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags

import _report
import hubkit
from hubkit.cache import manifest
from hubkit.safety import ops
from hubkit.safety import verdicts

FLAGS = flags.FLAGS
flags.DEFINE_integer("megabytes", 90, "Approximate size of the dense module.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed repeats per figure (median reported).", lower_bound=1)
flags.DEFINE_string(
  "output",
  os.path.join(os.path.dirname(__file__), "results", "security.json"),
  "Where to write the JSON.",
)


def _median_seconds(function, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _row(what, guarded, seconds, guarded_seconds):
  return {
    "what": what,
    "guards": guarded,
    "seconds": seconds,
    "guarded_seconds": guarded_seconds,
    "share_pct": 100.0 * seconds / guarded_seconds,
  }


def _module_rows(name, module_dir, repeats):
  import tensorflow as tf

  load = _median_seconds(lambda: tf.saved_model.load(module_dir), repeats)

  def first_scan():
    verdicts._VERDICTS.clear()
    verdicts.ensure_safe(module_dir)

  scan = _median_seconds(first_scan, repeats)
  cached = _median_seconds(lambda: verdicts.ensure_safe(module_dir), repeats)
  return [
    _row(f"{name}: op scan", "load", scan, load),
    _row(f"{name}: remembered verdict", "load", cached, load),
  ], load


def main(argv):
  del argv
  import keras

  rows, figures = [], {}
  with tempfile.TemporaryDirectory() as workdir:
    units = int((FLAGS.megabytes * 1e6 / 4) ** 0.5)
    dense = hubkit.export_module(
      "mlp_feature_vector",
      os.path.join(workdir, "dense"),
      config={"input_dim": units, "hidden_units": [units], "dropout_rate": 0.0},
    )
    resnet = os.path.join(workdir, "resnet50")
    keras.applications.ResNet50(weights=None).export(resnet, verbose=False)
    print("measuring the op scan ...", file=sys.stderr, flush=True)
    dense_rows, dense_load = _module_rows(f"{FLAGS.megabytes} MB dense", dense, FLAGS.repeats)
    resnet_rows, _ = _module_rows("ResNet50", resnet, FLAGS.repeats)
    rows += dense_rows + resnet_rows
    figures["ops_scanned_resnet50"] = ops.scan(resnet)[2]

    print("measuring cache-hit verification ...", file=sys.stderr, flush=True)
    archive = os.path.join(workdir, "dense.tar.gz")
    hubkit.pack_module(dense, archive)
    module_cache = hubkit.ModuleCache(os.path.join(workdir, "cache"), progress=False)
    os.chmod(workdir, 0o700)
    entry = module_cache.resolve(archive)
    hit = _median_seconds(lambda: module_cache.resolve(archive), FLAGS.repeats)
    deep = _median_seconds(lambda: manifest.problems(entry, deep=True), FLAGS.repeats)
    rows += [
      _row("cache hit, verified", "load", hit, dense_load),
      _row("cache verify (all hashed)", "load", deep, dense_load),
    ]

    print("measuring hubkit check, confined and not ...", file=sys.stderr, flush=True)
    small = hubkit.export_module(
      "mlp_feature_vector",
      os.path.join(workdir, "small"),
      config={"input_dim": 64, "hidden_units": [128, 64]},
    )
    checks = max(1, FLAGS.repeats // 2)
    command = [sys.executable, "-m", "hubkit.cli", "check", small]

    def check(*flags_):
      subprocess.run(command + list(flags_), check=True, capture_output=True)

    unconfined = _median_seconds(lambda: check("--unconfined"), checks)
    confined = _median_seconds(check, checks)
    rows.append(
      _row("check: confinement overhead", "unconfined check", confined - unconfined, unconfined)
    )
    figures.update(
      {
        "check_confined_seconds": confined,
        "check_unconfined_seconds": unconfined,
        "load_dense_seconds": dense_load,
      }
    )
  _report.report(
    [
      ("what", "what", "<32"),
      ("guards", "guards", "<16"),
      ("seconds", "seconds", ".4f"),
      ("guarded s", "guarded_seconds", ".4f"),
      ("share %", "share_pct", ".1f"),
    ],
    rows,
    f"median of {FLAGS.repeats} ({checks} for checks); {os.cpu_count()} CPUs; "
    "share = cost / the time it guards, measured in the same run",
    FLAGS.output,
    {"benchmark": "security", "repeats": FLAGS.repeats, **figures},
  )


if __name__ == "__main__":
  app.run(main)
