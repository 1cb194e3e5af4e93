"""What a module handle names: one dispatcher for every entry point.

A handle is a SavedModel directory, a module archive (`.tar.gz`, `.tgz` or a
plain `.tar`, as tensorflow_hub reads) or an http(s) URL served with TF Hub's
hosting protocol; `file://` URLs name local paths. `resolve`, `load`,
`KerasLayer`, `check`, `info` and `finetune` all classify handles here, so
they accept and refuse the same things with the same messages.
"""

import os
import urllib.parse
import urllib.request
from typing import Tuple

from hubkit.module import layout
from hubkit.errors import NotFoundError, UsageError

DIRECTORY, ARCHIVE, URL = "directory", "archive", "url"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def is_url(handle: str) -> bool:
  """True for an http(s) handle."""
  return urllib.parse.urlsplit(handle).scheme in ("http", "https")


def is_archive_name(path: str) -> bool:
  """True when the name ends like a module archive."""
  return path.endswith(ARCHIVE_SUFFIXES)


def local_path(path_or_file_url: str) -> str:
  """A local path from a path or a `file://` URL (as tf.io.gfile reads both)."""
  if path_or_file_url.startswith("file://"):
    return urllib.request.url2pathname(urllib.parse.urlsplit(path_or_file_url).path)
  return path_or_file_url


def classify(handle) -> Tuple[str, str]:
  """Says what a handle names.

  Args:
    handle: a path (str or os.PathLike), a `file://` URL or an http(s) URL.

  Returns:
    (kind, where): kind is `DIRECTORY`, `ARCHIVE` or `URL`; `where` is the
    absolute local path, or the URL as given.

  Raises:
    NotFoundError: the path does not exist (a FileNotFoundError too).
    UsageError: not a string, an unsupported URL scheme, a directory without
      saved_model.pb, or a file that is not a module archive.
  """
  try:
    handle = os.fspath(handle)
  except TypeError as e:
    raise UsageError(
      f"a module handle must be a string or path, not {type(handle).__name__}."
    ) from e
  if not isinstance(handle, str) or not handle:
    raise UsageError(
      "a module handle must be a non-empty string: a SavedModel directory, a "
      ".tar.gz archive or an http(s) URL."
    )
  if is_url(handle):
    return URL, handle
  scheme = urllib.parse.urlsplit(handle).scheme
  if scheme not in ("", "file") and len(scheme) > 1:  # one letter: a Windows drive
    raise UsageError(
      f"unsupported handle scheme {scheme!r} in {handle!r}; valid: http://, "
      "https://, file:// or a local path."
    )
  path = os.path.abspath(local_path(handle))
  if os.path.isdir(path):
    if not layout.has_saved_model(path):
      raise UsageError(
        f"{handle} is not a SavedModel: it has no saved_model.pb; pass the "
        "directory that holds saved_model.pb."
      )
    return DIRECTORY, path
  if os.path.isfile(path):
    if not is_archive_name(path):
      raise UsageError(
        f"{handle} is a file but not a module archive (.tar.gz, .tgz or .tar); "
        "pass the SavedModel directory or its archive."
      )
    return ARCHIVE, path
  raise NotFoundError(
    f"{handle} does not exist; pass a SavedModel directory, a .tar.gz "
    "module archive or an http(s) URL."
  )
