"""Times one resolve of a URL handle in a fresh process, with hubkit or
tensorflow_hub (shared by cache_benchmark.py and speed_benchmark.py)."""

import json
import os
import subprocess
import sys

# Runs in a fresh process: imports first, then measures only the resolve.
_PROBE = """
import json, os, resource, sys, time
library, url = sys.argv[1], sys.argv[2]
if library == "hubkit":
  from hubkit import resolver
  from hubkit.safety import ops
  ops.parse  # the op scan reads TensorFlow's protos: import them before timing, as hub does
  import tensorflow
  resolve = resolver.resolve
else:
  import tensorflow_hub as hub
  resolve = hub.resolve
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
path = resolve(url)
seconds = time.perf_counter() - start
start = time.perf_counter()
resolve(url)
cached = time.perf_counter() - start
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": seconds, "cached_seconds": cached, "rss_growth_kb": growth}))
"""


def probe(library, url, cache_dir):
  env = dict(os.environ, TFHUB_CACHE_DIR=cache_dir, TF_CPP_MIN_LOG_LEVEL="3")
  out = subprocess.run(
    [sys.executable, "-c", _PROBE, library, url],
    env=env,
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  return json.loads(out.strip().splitlines()[-1])
