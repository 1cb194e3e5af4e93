"""The registry root on disk: where each published version's files live.

Made so that any static web server (nginx with a plain `root`, an object
store's website, `python -m http.server`) serves the same handle URLs as
`hubkit serve` (`hubkit.registry.http_server`):

    ROOT/<publisher>/<name>/<version>          the archive: what `URL?tf-hub-format=compressed`
                                               returns, since static servers ignore the query
    ROOT/<publisher>/<name>/<version>.tar.gz   the same archive (a hard link), for the card
    ROOT/<publisher>/<name>/<version>.sha256   its digest (sha256sum format), which
                                               `hubkit.resolve` checks where no ETag carries it
    ROOT/<publisher>/<name>/<version>.d/       README.md (tfhub.dev card), Kaggle metadata,
                                               diff.json, model.tflite[.sha256], lite.md
    ROOT/index.json                            every published handle, regenerated atomically
    ROOT/index.html, ROOT/<publisher>/<name>/index.html, <version>.d/index.html
                                               the web pages (`hubkit.registry.pages`)

Registries written by earlier hubkit versions (`<version>/module.tar.gz`)
are still read. Writing a version is `hubkit.registry.publishing`'s job;
this file only names and lists what is there.
"""

import json
import os
import re
from typing import List, Optional, Tuple

from hubkit.registry import card as card_lib
from hubkit.registry import pages
from hubkit.utils.atomic import atomic_file

ARCHIVE_NAME = "module.tar.gz"  # inside a staging folder, and in the earlier layout
INDEX_NAME = "index.json"
CARD_NAME = "README.md"
DIFF_NAME = "diff.json"  # what changed since the previous version
LITE_NAME = "model.tflite"  # the LiteRT variant (publish with formats=["litert"])
LITE_CARD_NAME = "lite.md"


SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def published_archive(base: str) -> Optional[str]:
  """The archive published at ROOT/publisher/name/version (`base`), as its
  `.tar.gz` name, or None (also reading the earlier layout,
  `<version>/module.tar.gz`)."""
  if os.path.isfile(base) and os.path.isfile(f"{base}.tar.gz"):
    return f"{base}.tar.gz"
  legacy = os.path.join(base, ARCHIVE_NAME)
  return legacy if os.path.isfile(legacy) else None


def extras_file(base: str, name: str) -> str:
  """Where a version's other file `name` lives: its .d folder, or the
  version folder of the earlier layout."""
  return os.path.join(base if os.path.isdir(base) else f"{base}.d", name)


def digest_line(digest: str, base: str) -> str:
  """The `<version>.sha256` file's text (sha256sum format)."""
  return f"{digest}  {os.path.basename(base)}\n"


def write_index(root: str) -> None:
  """Rewrites ROOT/index.json (every handle, newest version first) and the
  pages that list modules (`hubkit.registry.pages.write_site`) under a lock, so that
  concurrent publishers do not lose each other's entries."""
  import fcntl

  with open(os.path.join(root, ".index.lock"), "a", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    modules = []
    for publisher in sorted(os.listdir(root)):
      folder = os.path.join(root, publisher)
      if not SEGMENT.match(publisher) or not os.path.isdir(folder):
        continue
      for name in sorted(os.listdir(folder)):
        versions = published_versions(os.path.join(folder, name))
        if versions:
          modules.append({"handle": f"{publisher}/{name}", "versions": versions})
    with atomic_file(os.path.join(root, INDEX_NAME), "w") as f:
      json.dump({"modules": modules}, f, indent=1)
    pages.write_site(
      root,
      [
        (m["handle"], [_version_files(root, m["handle"], v) for v in m["versions"]])
        for m in modules
      ],
    )


def _version_files(root: str, model: str, version: int) -> Tuple[int, str, str]:
  """(version, its archive, its card) in either layout, for the pages."""
  base = os.path.join(root, *model.split("/"), str(version))
  return version, published_archive(base), extras_file(base, CARD_NAME)


def previous_version(root: str, handle: str) -> Optional[str]:
  """The latest published version below `handle`'s, as a handle, or None."""
  publisher, name, version = card_lib.parse_handle(handle)
  earlier = [v for v in published_versions(os.path.join(root, publisher, name)) if v < int(version)]
  return f"{publisher}/{name}/{earlier[0]}" if earlier else None


def published_versions(model_folder: str) -> List[int]:
  """The versions published in ROOT/publisher/name, newest first."""
  names = os.listdir(model_folder) if os.path.isdir(model_folder) else []
  return sorted(
    (int(v) for v in names if v.isdigit() and published_archive(os.path.join(model_folder, v))),
    reverse=True,
  )


def read_digest(path: str) -> Optional[str]:
  """The sha256 in a `sha256sum`-format file, or None."""
  try:
    with open(path, encoding="ascii") as f:
      digest = f.read(64)
  except (OSError, UnicodeDecodeError):
    return None
  return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None
