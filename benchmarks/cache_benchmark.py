"""Resolving a large module over HTTP: hubkit vs tensorflow_hub, side by side.

Publishes a ~100 MB module into a local registry, serves it on 127.0.0.1 and
resolves it into a fresh cache with each library, each in its own process.
Reports throughput (MB/s of archive) and peak memory growth during the
resolve (flat means streaming: it does not grow with module size), plus the
time of a cached (offline) resolve.

Prints a table and writes JSON (default benchmarks/results/cache.json).

  python benchmarks/cache_benchmark.py [--megabytes=100] [--repeats=3]
"""

import os
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags

import _report
import _resolve_probe
import hubkit

FLAGS = flags.FLAGS
flags.DEFINE_integer("megabytes", 100, "Approximate module size.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed resolves per library (fresh cache each).", lower_bound=1)
flags.DEFINE_string(
  "output",
  os.path.join(os.path.dirname(__file__), "results", "cache.json"),
  "Where to write the JSON.",
)


def main(argv):
  del argv
  rows = []
  with tempfile.TemporaryDirectory() as workdir:
    units = int((FLAGS.megabytes * 1e6 / 4) ** 0.5)
    module = hubkit.export_module(
      "mlp_feature_vector",
      os.path.join(workdir, "module"),
      config={"input_dim": units, "hidden_units": [units], "dropout_rate": 0.0},
    )
    root = os.path.join(workdir, "root")
    archive = hubkit.publish_module(module, root, "bench/big/1")
    megabytes = os.path.getsize(archive) / 1e6
    with hubkit.serving(root) as server:
      url = f"{server.url}/bench/big/1"
      for library in ("hubkit", "tensorflow_hub"):
        runs = []
        for i in range(FLAGS.repeats):
          print(
            f"resolving with {library} ({i + 1}/{FLAGS.repeats}) ...", file=sys.stderr, flush=True
          )
          runs.append(
            _resolve_probe.probe(library, url, os.path.join(workdir, f"cache_{library}_{i}"))
          )
        seconds = statistics.median(r["seconds"] for r in runs)
        rows.append(
          {
            "library": library,
            "archive_mb": megabytes,
            "seconds": seconds,
            "mb_per_s": megabytes / seconds,
            "cached_seconds": statistics.median(r["cached_seconds"] for r in runs),
            "rss_growth_mb": max(r["rss_growth_kb"] for r in runs) / 1024,
          }
        )
  ratio = rows[0]["mb_per_s"] / rows[1]["mb_per_s"]
  _report.report(
    [
      ("library", "library", "<16"),
      ("archive MB", "archive_mb", ".1f"),
      ("MB/s", "mb_per_s", ".1f"),
      ("cached s", "cached_seconds", ".4f"),
      ("peak RSS +MB", "rss_growth_mb", ".1f"),
    ],
    rows,
    f"hubkit / tensorflow_hub throughput: {ratio:.2f} (hubkit also verifies the sha256, "
    f"bounds the archive, scans the ops and writes a manifest); median of {FLAGS.repeats}, {os.cpu_count()} CPUs",
    FLAGS.output,
    {"benchmark": "cache", "repeats": FLAGS.repeats, "throughput_ratio": ratio},
  )


if __name__ == "__main__":
  app.run(main)
