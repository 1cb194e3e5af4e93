"""The last `hubkit check` verdict of each module, kept outside the module.

A check never writes into the module it judges (it may be read-only, in a
shared cache, or someone else's). Its summary is stored under the module's
content digest instead, in `$HUBKIT_CHECK_RECORDS` (default
`~/.cache/hubkit/checks`), so `hubkit info` finds it for the same module
whichever handle, archive or copy it is read from.
"""

import hashlib
import json
import os
from typing import Any, Dict, Optional

from absl import logging

from hubkit.utils import atomic
from hubkit.module import metadata
from hubkit.utils.digest import sha256_file

_ENV = "HUBKIT_CHECK_RECORDS"


def records_dir() -> str:
  """`$HUBKIT_CHECK_RECORDS`, or `~/.cache/hubkit/checks`."""
  return os.environ.get(_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "hubkit", "checks")


def module_digest(module_dir: str) -> str:
  """The module's identity: sha256 over its graph and its variable index
  (which holds a checksum of every variable's bytes)."""
  digest = hashlib.sha256()
  for relpath in ("saved_model.pb", os.path.join("variables", "variables.index")):
    path = os.path.join(module_dir, relpath)
    digest.update(sha256_file(path).encode() if os.path.isfile(path) else b"-")
  return digest.hexdigest()


def save(module_dir: str, summary: Dict[str, Any]) -> Optional[str]:
  """Records a check summary; returns the file, or None when the folder is
  not writable (a record is a convenience, never a reason to fail a check)."""
  path = os.path.join(records_dir(), module_digest(module_dir) + ".json")
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic.atomic_file(path, "w") as f:
      json.dump(summary, f, indent=1, sort_keys=True)
  except OSError as e:
    logging.warning("the check result was not recorded in %s (%s)", path, e.strerror or e)
    return None
  return path


def load(module_dir: str) -> Optional[Dict[str, Any]]:
  """The last recorded check summary of this module's content, or None."""
  return metadata.read_json_object(os.path.join(records_dir(), module_digest(module_dir) + ".json"))
