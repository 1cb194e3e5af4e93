"""Check, pack, fine-tune and fetch, each against its anchor, in one run.

Every row is a ratio of two times measured side by side here (medians of
alternating runs, each command in a fresh process, as a user runs it):

  * check floor: `hubkit check` of a ~8.4M-parameter dense module against
    the floor any check pays (Python start, TensorFlow import, one
    `tf.saved_model.load` and one call), target <= 2;
  * check growth: the same for a ~84M-parameter module (10x larger), target
    <= 2.5x the small module's check time;
  * pack: `hubkit pack` of a >= 100 MB module against `tar czf` of the same
    folder, target >= 8x faster with an archive <= 1.01x tar's size, and
    two packs byte-identical;
  * finetune: `hubkit finetune` end to end (5 epochs, 16k examples, a
    checkpoint per epoch, early stopping, export) against the same job
    written by hand (`_hand_finetune.py`: tf_keras + hub.KerasLayer),
    target >= 1.0x;
  * fetch: `hubkit.resolve` of the packed module over HTTP on 127.0.0.1
    into an empty cache against `tensorflow_hub.resolve`, each in a fresh
    process (`_resolve_probe.py`): the whole script, imports included
    (target >= 1.5x), the resolve alone after the import, and a second
    resolve in the warm process (target >= 1.5x).

Prints a table and writes JSON (default benchmarks/results/speed.json).

  python benchmarks/speed_benchmark.py [--repeats=3]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags
import numpy as np

import _report
import _resolve_probe
import hubkit
from hubkit.cache import gzip_codec

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 3, "Alternating runs per side.", lower_bound=1)
flags.DEFINE_string(
  "output",
  os.path.join(os.path.dirname(__file__), "results", "speed.json"),
  "Where to write the JSON.",
)
_HERE = os.path.dirname(os.path.abspath(__file__))
_FLOOR = (
  "import sys, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
  "m(tf.zeros([8, int(sys.argv[2])]), training=False)"
)


def _seconds(argv, env=None):
  start = time.perf_counter()
  subprocess.run(
    argv,
    check=True,
    capture_output=True,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})),
  )
  return time.perf_counter() - start


def _hubkit(*args):
  return [sys.executable, "-m", "hubkit.cli", *args]


def _alternate(first, second, combine=statistics.median):
  """Medians (or `combine` of the results) of FLAGS.repeats alternating runs
  of two zero-argument timers."""
  a, b = [], []
  for i in range(FLAGS.repeats):
    print(f"  run {i + 1}/{FLAGS.repeats}", file=sys.stderr, flush=True)
    a.append(first())
    b.append(second())
  return combine(a), combine(b)


def _export(path, config):
  """Exports the MLP feature vector in its own process: one exported in this
  process stays in TensorFlow's memory pool here (1.4 GB for 84M
  parameters), and a harness holding that much made the large check ~1 s
  slower and noisier on this VM, which a user's shell does not."""
  code = (
    "import json, sys, hubkit; hubkit.export_module("
    "'mlp_feature_vector', sys.argv[1], config=json.loads(sys.argv[2]))"
  )
  subprocess.run(
    [sys.executable, "-c", code, path, json.dumps(config)],
    check=True,
    capture_output=True,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
  )
  return path


def _mlp(workdir, name, width):
  return _export(
    os.path.join(workdir, name),
    {"input_dim": width, "hidden_units": [width, width], "dropout_rate": 0.1},
  )


def main(argv):
  del argv
  rows = []
  with tempfile.TemporaryDirectory() as workdir:
    print("check ...", file=sys.stderr, flush=True)
    checks, params_of = {}, {}
    # Dense w x w layers: 2w^2 + 2w parameters, so 6478 is 10.0x 2048's.
    for name, width in (("small", 2048), ("large", 6478)):
      module = _mlp(workdir, name, width)
      check, floor = _alternate(
        lambda m=module: _seconds(_hubkit("check", m)),
        lambda m=module, w=width: _seconds([sys.executable, "-c", _FLOOR, m, str(w)]),
      )
      checks[name] = check
      params = params_of[name] = hubkit.read_metadata(module)["num_parameters"]
      rows.append(
        {
          "measure": f"check, {params / 1e6:.1f}M parameters / floor",
          "hubkit_s": check,
          "anchor_s": floor,
          "ratio": check / floor,
          "target": "<= 2" if name == "small" else "-",
        }
      )
    rows.append(
      {
        "measure": f"check growth, {params_of['large'] / params_of['small']:.1f}x parameters",
        "hubkit_s": checks["large"],
        "anchor_s": checks["small"],
        "ratio": checks["large"] / checks["small"],
        "target": "<= 2.5",
      }
    )

    print("pack ...", file=sys.stderr, flush=True)
    big = _mlp(workdir, "pack", 3600)  # 26M parameters: ~104 MB of float32 weights
    archive = os.path.join(workdir, "m.tar.gz")
    tarball = os.path.join(workdir, "tar.tar.gz")

    def pack():
      if os.path.exists(archive):
        os.remove(archive)
      return _seconds(_hubkit("pack", big, f"--output={archive}"))

    pack_s, tar_s = _alternate(pack, lambda: _seconds(["tar", "czf", tarball, "-C", big, "."]))
    first = open(archive, "rb").read()
    pack()
    identical = first == open(archive, "rb").read()
    rows.append(
      {
        "measure": f"pack {os.path.getsize(archive) / 1e6:.0f} MB / tar czf (speed-up)",
        "hubkit_s": pack_s,
        "anchor_s": tar_s,
        "ratio": tar_s / pack_s,
        "target": ">= 8",
      }
    )
    rows.append(
      {
        "measure": "pack size / tar czf size",
        "hubkit_s": os.path.getsize(archive) / 1e6,
        "anchor_s": os.path.getsize(tarball) / 1e6,
        "ratio": os.path.getsize(archive) / os.path.getsize(tarball),
        "target": "<= 1.01",
      }
    )

    print("finetune ...", file=sys.stderr, flush=True)
    small = _export(
      os.path.join(workdir, "ft_module"),
      {"input_dim": 64, "hidden_units": [256, 128], "dropout_rate": 0.1},
    )
    rng = np.random.default_rng(0)
    data = os.path.join(workdir, "data.npz")
    np.savez(
      data,
      x=rng.uniform(0, 1, [16000, 64]).astype(np.float32),
      y=rng.integers(0, 10, 16000),
    )

    def fresh(path):
      for p in (path, path + ".checkpoint"):
        shutil.rmtree(p, ignore_errors=True)
      return path

    hub_ft, hand_ft = _alternate(
      lambda: _seconds(
        _hubkit(
          "finetune",
          f"--module={small}",
          f"--data={data}",
          "--head=classification:10",
          f"--export_dir={fresh(os.path.join(workdir, 'ft'))}",
          "--epochs=5",
          "--verbose=0",
        )
      ),
      lambda: _seconds(
        [
          sys.executable,
          os.path.join(_HERE, "_hand_finetune.py"),
          small,
          data,
          fresh(os.path.join(workdir, "hand")),
          "5",
        ]
      ),
    )
    rows.append(
      {
        "measure": "finetune end to end / hand-written",
        "hubkit_s": hub_ft,
        "anchor_s": hand_ft,
        "ratio": hand_ft / hub_ft,
        "target": ">= 1.0",
      }
    )

    print("fetch ...", file=sys.stderr, flush=True)
    root = os.path.join(workdir, "root")
    hubkit.publish_module(big, root, "bench/big/1")
    with hubkit.serving(root) as server:
      url = f"{server.url}/bench/big/1"
      counter = iter(range(10**6))
      hubkit_runs, hub_runs = _alternate(
        lambda: _resolve_probe.probe("hubkit", url, os.path.join(workdir, f"c{next(counter)}")),
        lambda: _resolve_probe.probe(
          "tensorflow_hub", url, os.path.join(workdir, f"c{next(counter)}")
        ),
        combine=list,
      )
    for key, measure, target in (
      ("whole_seconds", "fetch, fresh script incl. import / hub's", ">= 1.5"),
      ("seconds", "fetch, fresh, after the import / hub's", "report"),
      ("warm_seconds", "fetch, warm process / hub's", ">= 1.5"),
    ):
      fetch_s = statistics.median(r[key] for r in hubkit_runs)
      hub_s = statistics.median(r[key] for r in hub_runs)
      rows.append(
        {
          "measure": measure + " (speed-up)",
          "hubkit_s": fetch_s,
          "anchor_s": hub_s,
          "ratio": hub_s / fetch_s,
          "target": target,
        }
      )
  _report.report(
    [
      ("measure", "measure", "<52"),
      ("hubkit", "hubkit_s", ".2f"),
      ("anchor", "anchor_s", ".2f"),
      ("ratio", "ratio", ".2f"),
      ("target", "target", ">8"),
    ],
    rows,
    f"(seconds, or MB for sizes; medians of {FLAGS.repeats} alternating runs; gzip "
    f"{gzip_codec.implementation()}; pack archives byte-identical: {identical}; "
    f"{os.cpu_count()} CPUs)",
    FLAGS.output,
    {"benchmark": "speed", "repeats": FLAGS.repeats, "identical_repack": identical},
  )


if __name__ == "__main__":
  app.run(main)
