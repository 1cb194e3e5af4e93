"""Safe extraction of module archives (a tar, usually gzip-compressed, whose
root is the SavedModel root; plain tar is read too, as tensorflow_hub does).

An archive comes from someone else's machine, so every entry is checked
before anything is written: no absolute paths, no `..`, no symbolic or hard
links, no device files, FIFOs or sparse members, and only paths the tfhub.dev
allow-list permits. Members are streamed to disk in chunks, so memory use
does not grow with the module's size, and `ExtractLimits` bound what the
stream may expand to while it is read (a gzip bomb stops at the limit, not
at the end of the disk).
"""

import contextlib
import dataclasses
import functools
import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
from typing import Any, BinaryIO, Callable, Dict, List, Optional

from hubkit.cache import gzip_codec
from hubkit.module import layout
from hubkit.errors import ArchiveError, HubkitError, UsageError

_CHUNK = 1 << 20
# The compression-ratio limit applies only past this size: small files
# (metadata, vocabularies) legitimately compress well.
_RATIO_FLOOR_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class ExtractLimits:
  """Bounds on what one module archive may expand to.

  The defaults fit every real module (the largest TF Hub modules are a few
  GiB of weights that barely compress, in tens of files); each can be
  raised with an environment variable for a module you trust.

  Attributes:
    max_bytes: total uncompressed bytes (HUBKIT_MAX_EXTRACT_BYTES).
    max_ratio: uncompressed / compressed bytes, checked once past 64 MiB
      (HUBKIT_MAX_EXTRACT_RATIO).
    max_entries: files and directories (HUBKIT_MAX_EXTRACT_ENTRIES).
    max_depth: path components of one entry (HUBKIT_MAX_EXTRACT_DEPTH).
    max_name_bytes: bytes of one entry's path (HUBKIT_MAX_EXTRACT_NAME_BYTES).
  """

  max_bytes: int = 32 << 30
  max_ratio: float = 100.0
  max_entries: int = 10_000
  max_depth: int = 16
  max_name_bytes: int = 1024

  @classmethod
  def from_env(cls) -> "ExtractLimits":
    """The defaults, with any HUBKIT_MAX_EXTRACT_* environment variable applied.

    Raises:
      UsageError: a variable is not a positive number.
    """
    values = {}
    for field in dataclasses.fields(cls):
      name = _limit_env(field.name)
      raw = os.environ.get(name)
      if raw is None:
        continue
      try:
        value = field.type(float(raw)) if field.type is int else float(raw)
      except ValueError:
        value = 0
      if value <= 0:
        raise UsageError(f"{name}={raw!r} must be a positive number.")
      values[field.name] = value
    return cls(**values)


def _limit_env(field: str) -> str:
  return "HUBKIT_" + field.upper().replace("MAX_", "MAX_EXTRACT_", 1)


class _CountingReader:
  """Counts the compressed bytes tarfile reads from the underlying stream."""

  def __init__(self, raw: BinaryIO):
    self._raw = raw
    self.count = 0

  def read(self, size: int = -1) -> bytes:
    data = self._raw.read(size)
    self.count += len(data)
    return data


def _refuse(archive: str, entry: str, why: str) -> UsageError:
  return UsageError(
    f"refusing to extract {archive}: entry {entry!r} {why}; only publish "
    "archives made by 'hubkit pack' (or tar -czf m.tar.gz -C module_dir .)."
  )


def _over_limit(archive: str, what: str, field: str, limit: Any) -> UsageError:
  return UsageError(
    f"refusing to extract {archive}: {what} (limit {limit}); nothing was kept. "
    f"If you trust this archive, raise the limit with {_limit_env(field)}=N."
  )


def _normalized(archive: str, member: tarfile.TarInfo, limits: ExtractLimits) -> Optional[str]:
  """Returns the member's safe relative path, None for the root entry, or raises."""
  name = member.name
  if len(name.encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
    raise _over_limit(
      archive,
      f"an entry's path is {len(name)} characters long",
      "max_name_bytes",
      limits.max_name_bytes,
    )
  if len([p for p in name.split("/") if p not in ("", ".")]) > limits.max_depth:
    raise _over_limit(
      archive,
      f"entry {name[:60]!r}… is nested {name.count('/') + 1} directories deep",
      "max_depth",
      limits.max_depth,
    )
  if member.issparse():
    raise _refuse(archive, name, "is a sparse file (its holes would expand on disk)")
  if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
    raise _refuse(archive, name, "has an absolute or Windows path")
  if ".." in name.split("/"):
    raise _refuse(archive, name, "climbs out of the module directory with '..'")
  if member.issym() or member.islnk():
    raise _refuse(archive, name, f"is a {'symbolic' if member.issym() else 'hard'} link")
  if not (member.isfile() or member.isdir()):
    raise _refuse(archive, name, "is a device, FIFO or other special file")
  relpath = posixpath.normpath(name)
  if relpath in (".", ""):
    if member.isfile():
      raise _refuse(archive, name, "is a file at the archive root's own path")
    return None
  if not layout.is_allowed(relpath):
    raise _refuse(
      archive,
      name,
      "is outside the SavedModel allow-list (saved_model.pb, "
      "variables/, assets/, assets.extra/, fingerprint.pb, keras_metadata.pb)",
    )
  return relpath


def extract_module_archive(
  archive: str,
  target_dir: str,
  on_bytes: Optional[Callable[[int], None]] = None,
  fileobj: Optional[BinaryIO] = None,
  limits: Optional[ExtractLimits] = None,
  digests: Optional[Dict[str, str]] = None,
) -> List[str]:
  """Extracts a module archive into an existing, empty directory.

  The archive is read as a stream (gzip-compressed or plain tar, as
  tensorflow_hub accepts), so it may come straight from a network response.

  Args:
    archive: path of the `.tar.gz` file, or its name (URL) when `fileobj`
      is given; used in messages.
    target_dir: the directory to fill (the caller makes it, usually a
      temporary sibling that it renames into place afterwards).
    on_bytes: called with the number of bytes written after each chunk
      (progress reporting).
    fileobj: read the archive from this binary stream instead of `archive`.
    limits: bounds on the expanded size (default: `ExtractLimits.from_env()`).
    digests: if given, filled with the sha256 of each file written, computed
      while it streams (so the files need not be read again).

  Returns:
    The relative paths of the files written.

  Raises:
    ArchiveError: the archive is unreadable, truncated or not a tar (an
      OSError, as hub raises; also a UsageError).
    UsageError: it holds an unsafe or non-allow-listed entry, exceeds a
      limit, or has no saved_model.pb.
    FetchError: reading `fileobj` broke off (raised by the stream).
    The caller removes `target_dir`.
  """
  limits = limits or ExtractLimits.from_env()
  written, entries, total = [], 0, 0
  try:
    with contextlib.ExitStack() as stack:
      raw = fileobj if fileobj is not None else stack.enter_context(open(archive, "rb"))
      counter = _CountingReader(raw)
      # The codec inflates (ISA-L where installed, in a background thread
      # that overlaps reading the source with writing files here).
      stream = stack.enter_context(contextlib.closing(gzip_codec.reader(counter)))
      tar = stack.enter_context(tarfile.open(None, mode="r|", fileobj=stream))
      for member in tar:
        entries += 1
        if entries > limits.max_entries:
          raise _over_limit(
            archive,
            f"it holds more than {limits.max_entries} entries",
            "max_entries",
            limits.max_entries,
          )
        relpath = _normalized(archive, member, limits)
        if relpath is None:
          continue
        destination = os.path.join(target_dir, *relpath.split("/"))
        if member.isdir():
          os.makedirs(destination, exist_ok=True)
          continue
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        if total + member.size > limits.max_bytes:
          raise _over_limit(
            archive,
            f"it expands to more than {limits.max_bytes} bytes",
            "max_bytes",
            limits.max_bytes,
          )
        source = tar.extractfile(member)
        digest = hashlib.sha256() if digests is not None else None
        with source, open(destination, "xb") as out:
          for chunk in iter(functools.partial(source.read, _CHUNK), b""):
            total += len(chunk)
            if total > limits.max_bytes:
              raise _over_limit(
                archive,
                f"it expands to more than {limits.max_bytes} bytes",
                "max_bytes",
                limits.max_bytes,
              )
            if total > _RATIO_FLOOR_BYTES and total > limits.max_ratio * max(counter.count, 1):
              raise _over_limit(
                archive,
                f"it expands more than {limits.max_ratio:g}-fold "
                f"({counter.count} compressed bytes gave {total})",
                "max_ratio",
                limits.max_ratio,
              )
            out.write(chunk)
            if digest:
              digest.update(chunk)
            if on_bytes:
              on_bytes(len(chunk))
        if digest:
          digests[relpath] = digest.hexdigest()
        written.append(relpath)
  except HubkitError:
    raise
  except FileExistsError as e:
    raise _refuse(archive, os.path.relpath(e.filename, target_dir), "appears twice") from e
  except (tarfile.TarError, *gzip_codec.errors()) as e:
    raise ArchiveError(
      f"{archive} does not appear to be a valid module archive ({e}); "
      "download it again or re-pack it with 'hubkit pack'."
    ) from e
  except OSError as e:
    raise ArchiveError(
      f"cannot extract {archive}: {e.strerror or e} ({e.filename}); check "
      "the path and free disk space."
    ) from e
  if "saved_model.pb" not in written:
    raise UsageError(
      f"{archive} has no saved_model.pb at its root; the archive root must be "
      "the SavedModel directory (tar -czf m.tar.gz -C module_dir .)."
    )
  return written


def extract_to_temp(archive: str, parent: Optional[str] = None) -> str:
  """Extracts a module archive into a new temporary directory and returns it.

  The caller owns the directory (remove it with shutil.rmtree). On failure
  nothing is left behind.
  """
  target = tempfile.mkdtemp(prefix="hubkit_module_", dir=parent)
  try:
    extract_module_archive(archive, target)
  except BaseException:
    shutil.rmtree(target, ignore_errors=True)
    raise
  return target
