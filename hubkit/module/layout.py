"""What a shareable SavedModel directory may contain (the tfhub.dev allow-list).

The allow-list follows tensorflow/tfhub.dev's validator: a SavedModel proto,
its variables, assets and extra assets, and the two files that TF and tf_keras
write beside them. Anything else (editor droppings, stray checkpoints) would
be shipped to every consumer, so exporters and packers refuse it.
"""

import os
import shutil
from typing import Iterator, List

ALLOWED_FILES = (
  "saved_model.pb",
  "saved_model.pbtxt",
  "keras_metadata.pb",
  "fingerprint.pb",
  "tfhub_module.pb",
)
ALLOWED_DIRS = ("variables", "assets", "assets.extra")
METADATA_RELPATH = os.path.join("assets.extra", "hubkit.json")


def has_saved_model(directory: str) -> bool:
  """Whether `directory` holds a SavedModel proto the loader would read."""
  return any(
    os.path.isfile(os.path.join(directory, name))
    for name in ("saved_model.pb", "saved_model.pbtxt")
  )


def is_allowed(relpath: str) -> bool:
  """Returns whether a path relative to the SavedModel root may be shipped.

  Args:
    relpath: a file or directory path relative to the SavedModel root, with
      "/" or the OS separator.

  Returns:
    True for allow-listed files, the allow-listed directories and what they
    contain; False otherwise, including for names with a leading dot.
  """
  parts = [p for p in relpath.replace(os.sep, "/").split("/") if p not in ("", ".")]
  if not parts or any(p.startswith(".") and p != "assets.extra" for p in parts):
    return False
  if len(parts) == 1:
    return parts[0] in ALLOWED_FILES or parts[0] in ALLOWED_DIRS
  if parts[0] == "variables":
    return len(parts) == 2 and parts[1].startswith("variables.")
  return parts[0] in ("assets", "assets.extra")


def iter_files(root: str) -> Iterator[str]:
  """Yields every file below `root` as a sorted, "/"-separated relative path."""
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
      full = os.path.join(dirpath, name)
      yield os.path.relpath(full, root).replace(os.sep, "/")


def disallowed_paths(root: str) -> List[str]:
  """Returns the relative paths below `root` that the allow-list refuses."""
  bad = []
  for dirpath, dirnames, filenames in os.walk(root):
    for name in sorted(dirnames) + sorted(filenames):
      rel = os.path.relpath(os.path.join(dirpath, name), root)
      if not is_allowed(rel):
        bad.append(rel.replace(os.sep, "/"))
  return bad


def symlinks(root: str) -> List[str]:
  """Returns the relative paths below `root` that are symbolic links.

  A link can point anywhere on the publisher's (or consumer's) machine, so a
  shareable module must not contain any.
  """
  found = []
  for dirpath, dirnames, filenames in os.walk(root):
    for name in sorted(dirnames) + sorted(filenames):
      full = os.path.join(dirpath, name)
      if os.path.islink(full):
        found.append(os.path.relpath(full, root).replace(os.sep, "/"))
  return found


def copy_files(module_dir: str, target: str, files: List[str]) -> None:
  """Copies `files` (module-relative, "/"-separated) from `module_dir` into
  the existing folder `target`, creating subfolders."""
  for name in files:
    destination = os.path.join(target, *name.split("/"))
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    shutil.copyfile(os.path.join(module_dir, *name.split("/")), destination)
