"""Times resolves of a URL handle in a fresh process, with hubkit or
tensorflow_hub (shared by cache_benchmark.py and speed_benchmark.py).

One probe gives three figures, as users meet them:

  * whole_seconds: from the parent starting the process (Python's start and
    the library import included) to the end of the first resolve into an
    empty cache: a short script as a user runs it;
  * seconds: the same first resolve, timed from after `import hubkit` /
    `import tensorflow_hub` (hubkit defers TensorFlow; hub imports it up
    front, so the two sides pay different things before this point);
  * warm_seconds: a second resolve, into another empty cache, in the same
    (now warm) process.

Plus cached_seconds (a hit) and the peak RSS growth of the first resolve.
"""

import json
import os
import subprocess
import sys
import time

_PROBE = """
import json, os, resource, sys, time
library, url, cache, warm_cache = sys.argv[1:5]
os.environ["TFHUB_CACHE_DIR"] = cache
if library == "hubkit":
  import hubkit
  resolve = hubkit.resolve
else:
  import tensorflow_hub as hub
  resolve = hub.resolve
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
resolve(url)
seconds = time.perf_counter() - start
first_done = time.time()
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
start = time.perf_counter()
resolve(url)
cached = time.perf_counter() - start
os.environ["TFHUB_CACHE_DIR"] = warm_cache
start = time.perf_counter()
resolve(url)
warm = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "first_done": first_done, "cached_seconds": cached,
                  "warm_seconds": warm, "rss_growth_kb": growth}))
"""


def probe(library: str, url: str, cache_dir: str) -> dict:
  """Runs one probe; `cache_dir` and a `cache_dir + "_warm"` sibling must not exist."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("TFHUB_CACHE_DIR", None)
  started = time.time()
  out = subprocess.run(
    [sys.executable, "-c", _PROBE, library, url, cache_dir, cache_dir + "_warm"],
    env=env,
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  result = json.loads(out.strip().splitlines()[-1])
  result["whole_seconds"] = result.pop("first_done") - started
  return result
