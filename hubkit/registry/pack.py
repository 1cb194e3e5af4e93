"""Pack a module into the TF Hub hosting-protocol archive.

The archive's root is the SavedModel root (what `tensorflow_hub` expects from
`?tf-hub-format=compressed`), it holds only allow-listed paths, and it is
deterministic: entries sorted, times, owners and modes fixed, and the gzip
header carries no name or time. Packing the same directory twice gives the
same bytes, so an archive's sha256 identifies its content.
"""

import io
import os
import tarfile
import tempfile
from typing import BinaryIO, List, Mapping, Optional, Sequence, Tuple

from hubkit.cache import gzip_codec
from hubkit.module import layout
from hubkit.module import metadata
from hubkit.utils.atomic import atomic_file
from hubkit.errors import UsageError
from hubkit.utils.progress import Progress

_CHUNK = 1 << 20


def check_layout(module_dir: str) -> List[str]:
  """Returns the module's files, or raises when it fails layout.saved_model.

  Raises:
    UsageError: not a directory, no saved_model.pb, or files outside the
      allow-list (named).
  """
  if not os.path.isdir(module_dir):
    raise UsageError(f"{module_dir} is not a directory; pass a SavedModel directory.")
  if not os.path.isfile(os.path.join(module_dir, "saved_model.pb")):
    raise UsageError(f"{module_dir} has no saved_model.pb; pass the SavedModel root.")
  stray = layout.disallowed_paths(module_dir)
  if stray:
    raise UsageError(
      f"{module_dir} fails layout.saved_model: {', '.join(stray[:5])} "
      "outside the allow-list; remove them (or run 'hubkit check')."
    )
  links = layout.symlinks(module_dir)
  if links:
    raise UsageError(
      f"{module_dir} fails layout.saved_model: {links[0]} is a symbolic link; "
      "replace it with the file it points to."
    )
  return list(layout.iter_files(module_dir))


def _info(name: str, size: int = 0, is_dir: bool = False) -> tarfile.TarInfo:
  info = tarfile.TarInfo(name)
  info.size = size
  info.mtime = 0
  info.uid = info.gid = 0
  info.uname = info.gname = ""
  info.mode = 0o755 if is_dir else 0o644
  if is_dir:
    info.type = tarfile.DIRTYPE
  return info


class _Counting:
  """A read-only file wrapper that reports progress."""

  def __init__(self, f: BinaryIO, progress: Progress):
    self._f, self._progress = f, progress

  def read(self, size: int = -1) -> bytes:
    data = self._f.read(size)
    self._progress.add(len(data))
    return data


def write_archive(
  module_dir: str, out: BinaryIO, added: Optional[Mapping[str, bytes]] = None
) -> None:
  """Writes the deterministic archive of a checked module to a binary stream.

  Args:
    module_dir: the module directory.
    out: the binary stream.
    added: archive path -> content of files added beside (or instead of) the
      module's own, e.g. warm-up requests under assets.extra/.
  """
  added = dict(added or {})
  files = sorted(set(check_layout(module_dir)) | set(added))
  directories = sorted(
    {"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)}
  )
  total = sum(
    len(added[f]) if f in added else os.path.getsize(os.path.join(module_dir, f)) for f in files
  )
  # The codec's header has no name and time 0, so repacks are byte-identical.
  with (
    gzip_codec.writer(out) as gz,
    tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    Progress(f"packing {os.path.basename(os.path.abspath(module_dir))}", total) as progress,
  ):
    for name in sorted(directories + files):
      path = os.path.join(module_dir, *name.split("/"))
      if name in directories:
        tar.addfile(_info(name, is_dir=True))
      elif name in added:
        tar.addfile(_info(name, len(added[name])), io.BytesIO(added[name]))
        progress.add(len(added[name]))
      else:
        with open(path, "rb") as f:
          tar.addfile(_info(name, os.path.getsize(path)), _Counting(f, progress))


def pack_module(
  module_dir: str,
  output: str,
  overwrite: bool = False,
  warmup: bool = False,
  signing_key: Optional[str] = None,
) -> str:
  """Packs a SavedModel directory into a deterministic `.tar.gz` archive.

  Args:
    module_dir: the SavedModel root; it must pass layout.saved_model.
    output: the archive to write (must end in `.tar.gz`).
    overwrite: replace an existing archive.
    warmup: add TF Serving warm-up requests made from sample inputs
      (`hubkit.formats.warmup`) as assets.extra/tf_serving_warmup_requests.
    signing_key: sign the module's files with this PEM private key
      (`hubkit.safety.signing`); the signature goes in as assets.extra/model.sig.

  Returns:
    The absolute path of the archive.

  Raises:
    UsageError: a bad output name, an existing output, or a module directory
      that fails layout.saved_model.
  """
  if not output.endswith(".tar.gz"):
    raise UsageError(f"`output` {output} must end in .tar.gz (the hosting protocol's format).")
  check_layout(module_dir)
  added = {}
  if warmup:
    from hubkit.formats import warmup as warmup_lib

    name = os.path.basename(os.path.abspath(module_dir))
    added[warmup_lib.FILE_NAME] = warmup_lib.warmup_requests(module_dir, name)
  if signing_key:
    from hubkit.safety import signing

    # The signature covers the module's own files (not the warm-up requests
    # made from them at pack time).
    with tempfile.TemporaryDirectory(prefix="hubkit_sign_") as tmp:
      signature = signing.sign_module(module_dir, signing_key, os.path.join(tmp, "model.sig"))
      with open(signature, "rb") as f:
        added[signing.SIGNATURE_RELPATH] = f.read()
  with atomic_file(output, "wb", overwrite=overwrite) as f:
    write_archive(module_dir, f, added)
  return os.path.abspath(output)


def pack_with_card(
  module_dir: str,
  output: str,
  handle: str,
  description: Optional[str] = None,
  task: Optional[str] = None,
  fine_tunable: Optional[bool] = None,
  model_format: str = "saved_model_2",
  extra: Optional[Mapping[str, Sequence[str]]] = None,
  overwrite: bool = False,
  warmup: bool = False,
) -> Tuple[str, str, str]:
  """Packs a module and writes its tfhub.dev card and Kaggle metadata beside it.

  The card is `<archive stem>.md`, next to `model-instance-metadata.json`.

  Args:
    module_dir: the SavedModel directory.
    output: the archive to write (.tar.gz).
    handle: publisher/name/version for the card.
    description: the card's one-line description (default: made from the
      module's hubkit.json).
    task, fine_tunable, model_format, extra: card metadata (see
      `hubkit.registry.card.render_card`).
    overwrite: replace an existing archive and card.
    warmup: add TF Serving warm-up requests (see `pack_module`).

  Returns:
    (archive, card, Kaggle metadata) paths.

  Raises:
    UsageError: a bad handle, an existing card without `overwrite`, or as
      `pack_module`.
  """
  from hubkit.registry import card

  card.parse_handle(handle)
  folder = os.path.dirname(os.path.abspath(output))
  stem = os.path.basename(output)[: -len(".tar.gz")] if output.endswith(".tar.gz") else None
  existing = [
    p
    for p in (f"{stem}.md", card.KAGGLE_METADATA_NAME)
    if stem and os.path.lexists(os.path.join(folder, p))
  ]
  if existing and not overwrite:
    raise UsageError(
      f"{', '.join(existing)} already exist(s) beside {output}; pass "
      "`overwrite` to replace them, or write the archive elsewhere."
    )
  path = pack_module(module_dir, output, overwrite=overwrite, warmup=warmup)
  record = metadata.read_metadata(module_dir)
  card_path, kaggle_path = card.write_card_files(
    folder,
    handle,
    description or card.default_description(record),
    os.path.basename(path),
    record,
    task=task,
    fine_tunable=fine_tunable,
    model_format=model_format,
    extra=extra,
    card_name=f"{stem}.md",
  )
  return path, card_path, kaggle_path
