"""Publishing: writing one immutable version into a registry root.

A version is packed and staged in a hidden sibling folder, compared with the
previous version (a breaking change is refused), given its card, pages and
optional LiteRT variant, and moved into place archive last
(`hubkit.registry.root_layout` names the files), so a version is either
complete or absent. Handles are immutable: publishing a version again with
other content is refused.
"""

import hashlib
import json
import os
import shutil
import tempfile
from typing import List, Optional, Sequence, Tuple

from absl import logging

from hubkit.errors import UsageError
from hubkit.module import layout
from hubkit.module import metadata
from hubkit.registry import card as card_lib
from hubkit.registry import pack
from hubkit.registry import pages
from hubkit.registry import root_layout
from hubkit.utils import atomic
from hubkit.utils.atomic import as_if_created, atomic_file
from hubkit.utils.digest import sha256_file

FORMATS = ("litert",)


def publish_module(
  module_dir: str,
  root: str,
  handle: str,
  description: Optional[str] = None,
  task: Optional[str] = None,
  fine_tunable: Optional[bool] = None,
  model_format: str = "saved_model_2",
  extra=None,
  allow_breaking: bool = False,
  allow_ops: Sequence[str] = (),
  max_drift: Optional[float] = None,
  formats: Sequence[str] = (),
  quantization: str = "none",
  kaggle_dir: Optional[str] = None,
  signing_key: Optional[str] = None,
) -> str:
  """Packs a module and places it in a registry root under `handle`.

  When an earlier version of the same publisher/name is in the root, the
  module is compared with the latest one (`hubkit.diff_modules`): a
  breaking change is refused unless `allow_breaking`, and the comparison is
  written beside the archive (`diff.json`) and summed up in the card.
  Retrained weights (same interface, other values) are reported, not
  refused, unless their drift exceeds `max_drift`.

  Args:
    module_dir: the SavedModel directory (must pass layout.saved_model).
    root: the registry root folder (created if missing).
    handle: publisher/name/version.
    description: one line for the card (defaults to one made from the
      module's metadata).
    task, fine_tunable, model_format, extra: card metadata (see
      hubkit.registry.card.render_card); task and fine_tunable default from hubkit.json.
    allow_breaking: publish even if consumers of the previous version break.
    allow_ops: op types you reviewed, for the scan before the comparison.
    max_drift: the relative output drift from the previous version that
      consumers accept; beyond it the change is breaking. None: any.
    formats: other formats to publish beside the SavedModel: "litert" adds
      a verified LiteRT variant (`hubkit.formats.litert.convert_module`) and its Lite
      card; a module that cannot convert is not published at all.
    quantization: the LiteRT variant's quantization ("none" or "dynamic").
    kaggle_dir: also write a folder ready for `kagglehub.model_upload` (the
      module's files and its model-instance-metadata.json) there.
    signing_key: sign the module with this PEM private key (OpenSSF
      model-signing; see `hubkit.safety.signing`).

  Returns:
    The path of the published archive.

  Raises:
    UsageError: a bad handle, a module failing layout.saved_model, the
      handle already published with different content, or a breaking change
      from the previous version without `allow_breaking`.
  """
  publisher, name, version = card_lib.parse_handle(handle)
  unknown = sorted(set(formats) - set(FORMATS))
  if unknown:
    raise UsageError(
      f"`formats`={','.join(unknown)} is not a format hubkit publishes; valid: "
      f"{', '.join(FORMATS)} (TF.js: see docs/publishing.md)."
    )
  if kaggle_dir:
    atomic.check_parent_writable(kaggle_dir)
    if os.path.lexists(kaggle_dir):
      raise UsageError(f"`kaggle_dir` {kaggle_dir} already exists; choose a new folder.")
  base = os.path.join(root, publisher, name, version)
  # The folders made here are removed again if publishing is refused.
  made, missing = [], os.path.dirname(os.path.abspath(base))
  while not os.path.exists(missing):
    made.append(missing)
    missing = os.path.dirname(missing)
  os.makedirs(os.path.dirname(base), exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=os.path.dirname(base))
  extras = os.path.join(staging, "extras")
  os.makedirs(extras)
  published = False
  try:
    archive = os.path.join(staging, root_layout.ARCHIVE_NAME)
    pack.pack_module(module_dir, archive, signing_key=signing_key)
    digest = sha256_file(archive)
    existing = root_layout.published_archive(base)
    if existing:
      if sha256_file(existing) == digest:
        logging.info("%s is already published with this content; nothing to do.", handle)
        if kaggle_dir:
          kaggle_metadata = root_layout.extras_file(base, card_lib.KAGGLE_METADATA_NAME)
          _write_kaggle_dir(module_dir, kaggle_metadata, kaggle_dir)
        return existing
      raise UsageError(
        f"{handle} is already published with different content, and handles "
        "are immutable; publish a new version (e.g. "
        f"{publisher}/{name}/{int(version) + 1})."
      )
    changes = _compare_with_previous(
      root, handle, module_dir, extras, allow_breaking, allow_ops, max_drift
    )
    if "litert" in formats:
      _add_lite_variant(module_dir, extras, handle, description, quantization, allow_ops)
    record = metadata.read_metadata(module_dir)
    card_path, _ = card_lib.write_card_files(
      extras,
      handle,
      description or card_lib.default_description(record),
      f"{handle}.tar.gz",
      record,
      task=task,
      fine_tunable=fine_tunable,
      model_format=model_format,
      extra=extra,
      card_name=root_layout.CARD_NAME,
      changes=changes,
    )
    _write_version_page(module_dir, extras, card_path, handle, archive, digest, allow_ops)
    _place(staging, archive, digest, base, handle)
    published = True
    root_layout.write_index(root)
    if kaggle_dir:
      _write_kaggle_dir(
        module_dir, root_layout.extras_file(base, card_lib.KAGGLE_METADATA_NAME), kaggle_dir
      )
    return f"{base}.tar.gz"
  finally:
    shutil.rmtree(staging, ignore_errors=True)
    if not published:
      for folder in made:  # deepest first; stops at one that is not empty
        try:
          os.rmdir(folder)
        except OSError:
          break


def _place(staging: str, archive: str, digest: str, base: str, handle: str) -> None:
  """Moves a finished version into place, the archive last: a reader (or a
  static server) sees either the whole version or none of it."""
  extras = os.path.join(staging, "extras")
  if os.path.isdir(f"{base}.d") and not os.path.exists(base):
    shutil.rmtree(f"{base}.d")  # left by a publish that died before its archive
  as_if_created(extras, is_dir=True)
  os.rename(extras, f"{base}.d")
  with atomic_file(f"{base}.sha256", "w") as f:
    f.write(root_layout.digest_line(digest, base))
  for suffix in (".tar.gz", ""):
    try:
      os.link(archive, base + suffix)
    except FileExistsError as e:
      raise UsageError(
        f"{handle} was published by someone else meanwhile ({e}); check it with 'hubkit check'."
      ) from e
    except OSError:
      # No hard links on this file system: a copy, renamed into place.
      shutil.copyfile(archive, f"{archive}.copy")
      os.rename(f"{archive}.copy", base + suffix)


def _write_version_page(
  module_dir: str,
  extras: str,
  card_path: str,
  handle: str,
  archive: str,
  digest: str,
  allow_ops: Sequence[str],
) -> None:
  """The version's web page (`hubkit.registry.pages`), from `hubkit info` of the
  module and the files about to be published."""
  from hubkit.inspection import info as info_lib

  version = card_lib.parse_handle(handle)[2]
  info = info_lib.module_info(module_dir, allow_ops=allow_ops)
  files = _archive_contents(archive)
  digest_text = root_layout.digest_line(digest, version).encode("ascii")
  downloads = [
    (f"{version}.tar.gz (the module)", f"../{version}.tar.gz", os.path.getsize(archive), digest),
    (
      f"{version}.sha256",
      f"../{version}.sha256",
      len(digest_text),
      hashlib.sha256(digest_text).hexdigest(),
    ),
  ] + [
    (
      name,
      name,
      os.path.getsize(os.path.join(extras, name)),
      sha256_file(os.path.join(extras, name)),
    )
    for name in sorted(os.listdir(extras))
  ]
  with open(card_path, encoding="utf-8") as f:
    card_text = f.read()
  pages.write_version_page(extras, handle, card_text, info, files, downloads, root_layout.DIFF_NAME)


def _archive_contents(archive: str) -> List[Tuple[str, int, str]]:
  """(path, bytes, sha256) of every file in a packed archive (the
  signature and warm-up requests included), in archive order."""
  import tarfile

  from hubkit.cache import gzip_codec

  contents = []
  with open(archive, "rb") as raw, gzip_codec.reader(raw) as stream:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
      for member in tar:
        if member.isfile():
          digest, data = hashlib.sha256(), tar.extractfile(member)
          while chunk := data.read(1 << 20):
            digest.update(chunk)
          contents.append((member.name, member.size, digest.hexdigest()))
  return contents


def _write_kaggle_dir(module_dir: str, metadata_path: str, kaggle_dir: str) -> None:
  """The module's files plus its Kaggle metadata, as kagglehub.model_upload takes them."""
  with atomic.atomic_directory(kaggle_dir) as tmp:
    layout.copy_files(module_dir, tmp, pack.check_layout(module_dir))
    shutil.copyfile(metadata_path, os.path.join(tmp, card_lib.KAGGLE_METADATA_NAME))


def _add_lite_variant(
  module_dir: str,
  extras: str,
  handle: str,
  description: Optional[str],
  quantization: str,
  allow_ops: Sequence[str],
) -> None:
  """Converts and verifies the LiteRT variant and writes it with its card."""
  from hubkit.formats import litert

  result = litert.convert_module(
    module_dir,
    os.path.join(extras, root_layout.LITE_NAME),
    quantization=quantization,
    allow_ops=allow_ops,
  )
  with atomic_file(os.path.join(extras, root_layout.LITE_NAME + ".sha256"), "w") as f:
    f.write(f"{sha256_file(result.path)}  {root_layout.LITE_NAME}\n")
  details = [
    f"{result.bytes} bytes ({result.bytes / max(result.saved_model_bytes, 1):.2f} x the "
    f"SavedModel's {result.saved_model_bytes}); quantization: {result.quantization}",
    f"outputs equal the SavedModel's within {result.max_abs_diff:.3g} (relative "
    f"{result.max_rel_diff:.3g}, tolerance {result.tolerance:g}), checked with "
    f"{result.interpreter}",
  ]
  text = card_lib.render_lite_card(
    handle,
    description or f"The LiteRT variant of {handle}.",
    f"{handle}.d/{root_layout.LITE_NAME}",
    quantization,
    details,
  )
  problems = card_lib.validate_card_text(text)
  if problems:
    raise UsageError(f"the Lite card would be invalid: {problems[0]}.")
  with atomic_file(os.path.join(extras, root_layout.LITE_CARD_NAME), "w") as f:
    f.write(text)


def _compare_with_previous(
  root: str,
  handle: str,
  module_dir: str,
  extras: str,
  allow_breaking: bool,
  allow_ops: Sequence[str],
  max_drift: Optional[float],
) -> List[str]:
  """Diffs the module against the previous version; returns the card lines."""
  previous = root_layout.previous_version(root, handle)
  if previous is None:
    return []
  from hubkit.inspection import diff

  result = diff.diff_modules(
    root_layout.published_archive(os.path.join(root, previous)),
    module_dir,
    allow_ops=allow_ops,
    max_drift=max_drift,
  )

  if result.breaking and not allow_breaking:
    breaking = "; ".join(
      f"{c.area}: {c.detail}" for c in result.changes if c.severity == diff.BREAKING
    )
    raise UsageError(
      f"{handle} would break consumers of {previous} ({breaking}); fix the module, "
      f"publish it under a new name, or pass `allow_breaking`"
      + (" or a larger `max_drift`" if max_drift is not None else "")
      + " (see 'hubkit diff')."
    )
  record = dict(result.as_dict(), old=previous, new=handle)
  with atomic_file(os.path.join(extras, root_layout.DIFF_NAME), "w") as f:
    json.dump(record, f, indent=1)
  return [f"Against {previous}: {result.summary()}."] + [
    f"{c.severity}: {c.area}: {c.detail}" for c in result.changes
  ]
