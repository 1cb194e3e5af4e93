"""layout.*: what is on disk, before anything is loaded."""

import os
import re

from hubkit.module import layout
from hubkit.checker.context import Context
from hubkit.checker.rule_table import RuleFailed, RuleWarning, rule
from hubkit.safety import ops

# Absolute paths of a developer machine: home directories, temp folders,
# macOS private folders, Windows drives. A SavedModel references its files
# relative to its own root, so such a path is only text (a lookup table's
# shared_name, a function's docstring): the module does not need it, because
# every file it reads at load or call time must be one of its own assets,
# which security.ops proves. It still reveals the publisher's file system,
# so it is a warning.
_LEAK = re.compile(
  rb"(?:/home/|/Users/|/root/|/tmp/|/private/var/|/var/folders/|"
  rb"[A-Za-z]:\\\\(?:Users|Documents and Settings)\\\\)[^\x00-\x1f\"']{0,80}"
)


@rule(
  "layout.saved_model",
  "SavedModel files and allow-list",
  fix="export with hubkit (or tf.saved_model.save) into a clean directory; remove stray "
  "files; keep vocabularies as tf.saved_model.Asset so paths stay relative.",
  static=True,
)
def check_layout(ctx: Context):
  try:
    ops.parse(ctx.path)
  except ops.UnsafeModuleError as e:
    raise RuleFailed(str(e)) from e
  stray = layout.disallowed_paths(ctx.path)
  if stray:
    raise RuleFailed(
      f"files outside the tfhub.dev allow-list: {', '.join(stray[:5])}"
      + (f" and {len(stray) - 5} more" if len(stray) > 5 else "")
    )
  links = layout.symlinks(ctx.path)
  if links:
    raise RuleFailed(f"symbolic links in the module: {', '.join(links[:5])}")
  files = list(layout.iter_files(ctx.path))
  ctx.figures["files"] = len(files)
  ctx.figures["bytes"] = sum(os.path.getsize(os.path.join(ctx.path, f)) for f in files)
  with open(ops.saved_model_proto_path(ctx.path), "rb") as f:
    leaks = sorted({m.group(0).decode("utf-8", "replace") for m in _LEAK.finditer(f.read())})
  if leaks:
    ctx.figures["leaked_paths"] = leaks
    raise RuleWarning(
      f"saved_model.pb mentions {len(leaks)} path(s) of the exporting "
      f"machine as text, e.g. {leaks[0]!r}; the module does not read them "
      "(security.ops checks every file read), but they reveal your file system"
    )
  return f"saved_model.pb parses; {len(files)} allow-listed files; no leaked paths"
