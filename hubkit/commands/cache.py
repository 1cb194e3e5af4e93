"""Manages the module cache ($TFHUB_CACHE_DIR, shared with tensorflow_hub):

hubkit cache ls                      list cached modules
hubkit cache verify                  check completeness and file checksums
hubkit cache rm HANDLE               remove one module (handle or cache key)
hubkit cache prune --older_than=DAYS remove modules unused for DAYS
hubkit cache kaggle HANDLE OWNER/MODEL/FRAMEWORK/VARIATION/VERSION
                                     put a module into kagglehub's cache
                                     ($KAGGLEHUB_CACHE), so that
                                     kagglehub.model_download returns it offline
"""

import datetime
from typing import List

from absl import flags

from hubkit.errors import UsageError

FLAGS = flags.FlagValues()
flags.DEFINE_string(
  "cache_dir",
  None,
  "Cache folder (default: $TFHUB_CACHE_DIR or <tmp>/tfhub_modules).",
  flag_values=FLAGS,
)
flags.DEFINE_float(
  "older_than",
  None,
  "For prune: remove modules unused for more than this many days.",
  lower_bound=0.0,
  flag_values=FLAGS,
)

flags.DEFINE_string(
  "kagglehub_cache",
  None,
  "For kaggle: kagglehub's cache folder (default: $KAGGLEHUB_CACHE or ~/.cache/kagglehub).",
  flag_values=FLAGS,
)
flags.DEFINE_bool(
  "overwrite", False, "For kaggle: replace a cached version with other content.", flag_values=FLAGS
)

_ACTIONS = ("ls", "verify", "rm", "prune", "kaggle")


def _row(entry) -> str:
  used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M")
  state = "ok" if not entry.problems else "BROKEN: " + "; ".join(entry.problems[:2])
  return f"{entry.key}  {entry.size / 1e6:9.2f} MB  {used}  {state}  {entry.handle or '?'}"


def main(args: List[str]) -> int:
  if not args:
    raise UsageError(f"'hubkit cache' needs an action: {', '.join(_ACTIONS)}.")
  if args[0] not in _ACTIONS:
    raise UsageError(
      f"unknown action {args[0]!r} for 'hubkit cache'; valid actions: {', '.join(_ACTIONS)}."
    )
  action, rest = args[0], args[1:]
  if action == "kaggle":
    if len(rest) != 2:
      raise UsageError(
        "'hubkit cache kaggle' takes a module handle and a kagglehub handle "
        "(owner/model/framework/variation/version)."
      )
    from hubkit.registry import kaggle

    path = kaggle.add_to_kagglehub_cache(
      rest[0], rest[1], cache_dir=FLAGS.kagglehub_cache, overwrite=FLAGS.overwrite
    )
    print(f"kagglehub.model_download({rest[1]!r}) now returns {path}")
    return 0
  from hubkit.cache import store

  module_cache = store.ModuleCache(FLAGS.cache_dir)
  if action == "rm":
    if len(rest) != 1:
      raise UsageError("'hubkit cache rm' takes exactly one handle or cache key.")
    print(f"removed {module_cache.remove(rest[0])}")
    return 0
  if rest:
    raise UsageError(f"unexpected argument(s) {' '.join(rest)} for 'hubkit cache {action}'.")
  if action == "prune":
    days = FLAGS.older_than
    if days is None:
      raise UsageError("'hubkit cache prune' needs --older_than=DAYS.")
    removed = module_cache.prune(days)
    for entry in removed:
      print(f"removed {entry.path}  {entry.handle or '?'}")
    print(f"pruned {len(removed)} module(s) unused for more than {days:g} days")
    return 0
  entries = module_cache.verify() if action == "verify" else module_cache.entries()
  for entry in entries:
    print(_row(entry))
  broken = [e for e in entries if e.problems]
  print(
    f"{len(entries)} module(s) in {module_cache.cache_dir}"
    + (f", {len(broken)} broken (remove them with 'hubkit cache rm KEY')" if broken else "")
  )
  return 1 if action == "verify" and broken else 0
