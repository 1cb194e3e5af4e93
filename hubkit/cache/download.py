"""Fetching a module over HTTP(S) with TF Hub's hosting protocol.

The client asks for `URL?tf-hub-format=compressed` and streams the answer,
a tar (usually gzip-compressed) whose root is the SavedModel root, straight
into `archive.extract_module_archive`, hashing it on the way. What the server
says about the archive is checked: its Content-Length, and its sha256 when
the ETag is one (as `hubkit serve` sends) or, from a static server, when a
`<handle>.sha256` file is published beside it (as `hubkit publish` writes).
`TFHUB_DISABLE_CERT_VALIDATION=true` turns certificate checks off, as it does
for tensorflow_hub.
"""

import hashlib
import http.client
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO, Dict, Optional

from absl import logging

from hubkit.cache import archive
from hubkit.errors import FetchError
from hubkit.utils.progress import Progress

TIMEOUT_SECONDS = 60
_DISABLE_CERT_VALIDATION = "TFHUB_DISABLE_CERT_VALIDATION"


def compressed_url(handle: str) -> str:
  """`handle` with `tf-hub-format=compressed` appended to its query."""
  parts = urllib.parse.urlsplit(handle)
  query = urllib.parse.parse_qsl(parts.query) + [("tf-hub-format", "compressed")]
  return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def ssl_context() -> ssl.SSLContext:
  """The TLS context for downloads: verified unless the user turned it off
  with TFHUB_DISABLE_CERT_VALIDATION=true (exactly "true", as for hub)."""
  context = ssl.create_default_context()
  if os.environ.get(_DISABLE_CERT_VALIDATION) == "true":
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    logging.warning("certificate validation is off (%s=true)", _DISABLE_CERT_VALIDATION)
  return context


class HashingReader:
  """Wraps a stream: hashes and counts what is read, reports progress, and
  turns a read that breaks off into a `FetchError` naming the source."""

  def __init__(self, raw: BinaryIO, progress: Progress, source: str):
    self._raw, self._progress, self._source = raw, progress, source
    self.sha256 = hashlib.sha256()
    self.size = 0

  def read(self, size: int = -1) -> bytes:
    try:
      data = self._raw.read(size)
    except (OSError, http.client.HTTPException) as e:
      raise FetchError(
        f"reading {self._source} broke off after {self.size} bytes "
        f"({type(e).__name__}: {e}); try again."
      ) from e
    self.sha256.update(data)
    self.size += len(data)
    self._progress.add(len(data))
    return data

  def drain(self) -> None:
    while self.read(1 << 16):
      pass


def _published_digest(handle: str) -> Optional[str]:
  """The sha256 a static registry publishes beside the archive (`<handle>.sha256`,
  as `hubkit publish` writes it), or None when there is none."""
  parts = urllib.parse.urlsplit(handle)
  url = urllib.parse.urlunsplit(
    (parts.scheme, parts.netloc, parts.path.rstrip("/") + ".sha256", "", "")
  )
  try:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=ssl_context()) as response:
      text = response.read(200).decode("ascii", "replace")
  except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError):
    return None
  match = re.match(r"\s*([0-9a-f]{64})\b", text)
  return match.group(1) if match else None


def download_module(
  handle: str, target: str, digests: Dict[str, str], progress: Optional[bool] = None
) -> str:
  """Downloads and extracts a URL handle into the existing folder `target`.

  Args:
    handle: an http(s) URL.
    target: an empty folder to fill.
    digests: filled with each extracted file's sha256.
    progress: show a progress bar (default: only on a terminal).

  Returns:
    The archive's sha256.

  Raises:
    FetchError: the server could not be reached or refused, the download
      broke off, was truncated or does not match the server's checksum.
    hubkit.errors.ArchiveError, UsageError: the archive is not a valid or
      safe module archive.
  """
  url = compressed_url(handle)
  try:
    response = urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=ssl_context())
  except urllib.error.HTTPError as e:
    detail = e.read(200).decode("utf-8", "replace").strip()
    raise FetchError(
      f"{handle}: the server answered {e.code} {e.reason}"
      + (f" ({detail})" if detail else "")
      + "; check the handle."
    ) from e
  except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
    reason = getattr(e, "reason", e)
    raise FetchError(
      f"cannot reach {handle} ({reason}); check the URL and network, or use a cached copy."
    ) from e
  with response:
    expected_size = response.headers.get("Content-Length")
    etag = (response.headers.get("ETag") or "").strip('"')
    with Progress(
      f"downloading {handle}", int(expected_size) if expected_size else None, enabled=progress
    ) as bar:
      reader = HashingReader(response, bar, handle)
      archive.extract_module_archive(handle, target, fileobj=reader, digests=digests)
      reader.drain()
  if expected_size and reader.size != int(expected_size):
    raise FetchError(
      f"the download of {handle} is truncated ({reader.size} of {expected_size} bytes); try again."
    )
  # The checksum: the ETag where it is one (hubkit serve), else the digest
  # file a static registry keeps beside the archive (nginx's ETag is not).
  expected, source = etag, "server ETag"
  if not re.fullmatch(r"[0-9a-f]{64}", etag):
    expected, source = _published_digest(handle) or "", f"{handle}.sha256"
  if expected and reader.sha256.hexdigest() != expected:
    raise FetchError(
      f"the archive of {handle} does not match its checksum (sha256 "
      f"{reader.sha256.hexdigest()[:12]}…, {source} {expected[:12]}…); "
      "nothing was cached; the server copy may be corrupt."
    )
  return reader.sha256.hexdigest()
