"""A local module registry that speaks the TF Hub hosting protocol.

Layout on disk, made so that any static web server (nginx with a plain
`root`, an object store's website, `python -m http.server`) serves the same
handle URLs as `hubkit serve`:

    ROOT/<publisher>/<name>/<version>          the archive: what `URL?tf-hub-format=compressed`
                                               returns, since static servers ignore the query
    ROOT/<publisher>/<name>/<version>.tar.gz   the same archive (a hard link), for the card
    ROOT/<publisher>/<name>/<version>.sha256   its digest (sha256sum format), which
                                               `hubkit.resolve` checks where no ETag carries it
    ROOT/<publisher>/<name>/<version>.d/       README.md (tfhub.dev card), Kaggle metadata,
                                               diff.json, model.tflite[.sha256], lite.md
    ROOT/index.json                            every published handle, regenerated atomically
    ROOT/index.html, ROOT/<publisher>/<name>/index.html, <version>.d/index.html
                                               the web pages (`hubkit.pages`)

The archive is written last, so a version is either complete or absent.
Registries written by earlier hubkit versions (`<version>/module.tar.gz`)
are still served.

`GET /<publisher>/<name>/<version>?tf-hub-format=compressed` streams the
archive (Content-Length, ETag = quoted sha256), `?lite-format=tflite` the
LiteRT variant, `HEAD` answers the same headers, and the same URL without the
query returns the card; any other path is served as a static server would
(a folder's URL ending in "/" returns its index.html; hidden files never).
Unmodified
`tensorflow_hub.load("http://HOST:PORT/publisher/name/version")` works
against it. Handles are immutable: publishing a version again with other
content is refused.

The server holds up against hostile or careless clients: idle connections
time out, concurrent connections are capped (others get 503), digests come
from the file written at publish time (or are computed outside any lock),
and only regular files inside the root are served.
"""

import collections
import contextlib
import hashlib
import http.server
import mimetypes
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from typing import Iterator, List, Optional, Sequence, Tuple
import urllib.parse

from absl import logging

from hubkit import card as card_lib
from hubkit import atomic
from hubkit.atomic import as_if_created, atomic_file
from hubkit import layout
from hubkit import metadata
from hubkit import pack
from hubkit import pages
from hubkit.errors import UsageError

ARCHIVE_NAME = "module.tar.gz"  # inside a staging folder, and in the earlier layout
INDEX_NAME = "index.json"
CARD_NAME = "README.md"
DIFF_NAME = "diff.json"  # what changed since the previous version
LITE_NAME = "model.tflite"  # the LiteRT variant (publish with formats=["litert"])
LITE_CARD_NAME = "lite.md"
FORMATS = ("litert",)
# Seconds a connection may stay idle (or a client take to send a request).
CONNECTION_TIMEOUT_SECONDS = 30
MAX_CONNECTIONS = 64
_CHUNK = 1 << 16
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Any other file in the root may be served, but never a hidden one (staging
# folders, the index lock).
_STATIC_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_HANDLE_PATH = re.compile(r"^/[^/]+/[^/]+/[0-9]+/?$")
_CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".md": "text/markdown; charset=utf-8",
  ".sha256": "text/plain; charset=utf-8",
  ".gz": "application/gzip",
}


def _sha256(path: str) -> str:
  return metadata.sha256_file(path)


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
      hubkit.card.render_card); task and fine_tunable default from hubkit.json.
    allow_breaking: publish even if consumers of the previous version break.
    allow_ops: op types you reviewed, for the scan before the comparison.
    max_drift: the relative output drift from the previous version that
      consumers accept; beyond it the change is breaking. None: any.
    formats: other formats to publish beside the SavedModel: "litert" adds
      a verified LiteRT variant (`hubkit.litert.convert_module`) and its Lite
      card; a module that cannot convert is not published at all.
    quantization: the LiteRT variant's quantization ("none" or "dynamic").
    kaggle_dir: also write a folder ready for `kagglehub.model_upload` (the
      module's files and its model-instance-metadata.json) there.
    signing_key: sign the module with this PEM private key (OpenSSF
      model-signing; see `hubkit.signing`).

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
    archive = os.path.join(staging, ARCHIVE_NAME)
    pack.pack_module(module_dir, archive, signing_key=signing_key)
    digest = _sha256(archive)
    existing = published_archive(base)
    if existing:
      if _sha256(existing) == digest:
        logging.info("%s is already published with this content; nothing to do.", handle)
        if kaggle_dir:
          kaggle_metadata = _extras_file(base, card_lib.KAGGLE_METADATA_NAME)
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
      card_name=CARD_NAME,
      changes=changes,
    )
    _write_version_page(module_dir, extras, card_path, handle, archive, digest, allow_ops)
    _place(staging, archive, digest, base, handle)
    published = True
    _write_index(root)
    if kaggle_dir:
      _write_kaggle_dir(module_dir, _extras_file(base, card_lib.KAGGLE_METADATA_NAME), kaggle_dir)
    return f"{base}.tar.gz"
  finally:
    shutil.rmtree(staging, ignore_errors=True)
    if not published:
      for folder in made:  # deepest first; stops at one that is not empty
        try:
          os.rmdir(folder)
        except OSError:
          break


def published_archive(base: str) -> Optional[str]:
  """The archive published at ROOT/publisher/name/version (`base`), as its
  `.tar.gz` name, or None (also reading the earlier layout,
  `<version>/module.tar.gz`)."""
  if os.path.isfile(base) and os.path.isfile(f"{base}.tar.gz"):
    return f"{base}.tar.gz"
  legacy = os.path.join(base, ARCHIVE_NAME)
  return legacy if os.path.isfile(legacy) else None


def _extras_file(base: str, name: str) -> str:
  """Where a version's other file `name` lives: its .d folder, or the
  version folder of the earlier layout."""
  return os.path.join(base if os.path.isdir(base) else f"{base}.d", name)


def _place(staging: str, archive: str, digest: str, base: str, handle: str) -> None:
  """Moves a finished version into place, the archive last: a reader (or a
  static server) sees either the whole version or none of it."""
  extras = os.path.join(staging, "extras")
  if os.path.isdir(f"{base}.d") and not os.path.exists(base):
    shutil.rmtree(f"{base}.d")  # left by a publish that died before its archive
  as_if_created(extras, is_dir=True)
  os.rename(extras, f"{base}.d")
  with atomic_file(f"{base}.sha256", "w") as f:
    f.write(_digest_line(digest, base))
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


def _digest_line(digest: str, base: str) -> str:
  """The `<version>.sha256` file's text (sha256sum format)."""
  return f"{digest}  {os.path.basename(base)}\n"


def _write_version_page(
  module_dir: str,
  extras: str,
  card_path: str,
  handle: str,
  archive: str,
  digest: str,
  allow_ops: Sequence[str],
) -> None:
  """The version's web page (`hubkit.pages`), from `hubkit info` of the
  module and the files about to be published."""
  from hubkit import info as info_lib

  version = card_lib.parse_handle(handle)[2]
  info = info_lib.module_info(module_dir, allow_ops=allow_ops)
  files = _archive_contents(archive)
  digest_text = _digest_line(digest, version).encode("ascii")
  downloads = [
    (f"{version}.tar.gz (the module)", f"../{version}.tar.gz", os.path.getsize(archive), digest),
    (
      f"{version}.sha256",
      f"../{version}.sha256",
      len(digest_text),
      hashlib.sha256(digest_text).hexdigest(),
    ),
  ] + [
    (name, name, os.path.getsize(os.path.join(extras, name)), _sha256(os.path.join(extras, name)))
    for name in sorted(os.listdir(extras))
  ]
  with open(card_path, encoding="utf-8") as f:
    card_text = f.read()
  pages.write_version_page(extras, handle, card_text, info, files, downloads, DIFF_NAME)


def _archive_contents(archive: str) -> List[Tuple[str, int, str]]:
  """(path, bytes, sha256) of every file in a packed archive (the
  signature and warm-up requests included), in archive order."""
  import tarfile

  from hubkit import gzip_codec

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


def _write_index(root: str) -> None:
  """Rewrites ROOT/index.json (every handle, newest version first) and the
  pages that list modules (`hubkit.pages.write_site`) under a lock, so that
  concurrent publishers do not lose each other's entries."""
  import fcntl

  with open(os.path.join(root, ".index.lock"), "a", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    modules = []
    for publisher in sorted(os.listdir(root)):
      folder = os.path.join(root, publisher)
      if not _SEGMENT.match(publisher) or not os.path.isdir(folder):
        continue
      for name in sorted(os.listdir(folder)):
        versions = _published_versions(os.path.join(folder, name))
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
  return version, published_archive(base), _extras_file(base, CARD_NAME)


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
  from hubkit import litert

  result = litert.convert_module(
    module_dir, os.path.join(extras, LITE_NAME), quantization=quantization, allow_ops=allow_ops
  )
  with atomic_file(os.path.join(extras, LITE_NAME + ".sha256"), "w") as f:
    f.write(f"{_sha256(result.path)}  {LITE_NAME}\n")
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
    f"{handle}.d/{LITE_NAME}",
    quantization,
    details,
  )
  problems = card_lib.validate_card_text(text)
  if problems:
    raise UsageError(f"the Lite card would be invalid: {problems[0]}.")
  with atomic_file(os.path.join(extras, LITE_CARD_NAME), "w") as f:
    f.write(text)


def _previous_version(root: str, handle: str) -> Optional[str]:
  """The latest published version below `handle`'s, as a handle, or None."""
  publisher, name, version = card_lib.parse_handle(handle)
  earlier = [
    v for v in _published_versions(os.path.join(root, publisher, name)) if v < int(version)
  ]
  return f"{publisher}/{name}/{earlier[0]}" if earlier else None


def _published_versions(model_folder: str) -> List[int]:
  """The versions published in ROOT/publisher/name, newest first."""
  names = os.listdir(model_folder) if os.path.isdir(model_folder) else []
  return sorted(
    (int(v) for v in names if v.isdigit() and published_archive(os.path.join(model_folder, v))),
    reverse=True,
  )


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
  previous = _previous_version(root, handle)
  if previous is None:
    return []
  from hubkit import diff

  result = diff.diff_modules(
    published_archive(os.path.join(root, previous)),
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
  with atomic_file(os.path.join(extras, DIFF_NAME), "w") as f:
    json.dump(record, f, indent=1)
  return [f"Against {previous}: {result.summary()}."] + [
    f"{c.severity}: {c.area}: {c.detail}" for c in result.changes
  ]


class _Handler(http.server.BaseHTTPRequestHandler):
  """Serves ROOT/<publisher>/<name>/<version>/ over HTTP."""

  server_version = "hubkit-hosting"
  protocol_version = "HTTP/1.1"
  timeout = CONNECTION_TIMEOUT_SECONDS

  def log_message(self, format, *args):
    logging.info("%s %s", self.address_string(), format % args)

  def _send_text(self, code: int, text: str, content_type: str = "text/plain") -> None:
    body = (text + "\n").encode("utf-8")
    self.send_response(code)
    self.send_header("Content-Type", f"{content_type}; charset=utf-8")
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def _version_dir(self, path: str) -> Optional[str]:
    segments = [urllib.parse.unquote(s) for s in path.strip("/").split("/")]
    if len(segments) != 3 or not all(_SEGMENT.match(s) for s in segments):
      return None
    root = os.path.realpath(self.server.root)
    candidate = os.path.realpath(os.path.join(root, *segments))
    if os.path.commonpath([root, candidate]) != root:
      return None
    return candidate

  def _regular_file(self, version_dir: str, name: str) -> Optional[str]:
    """`version_dir/name` if it is a regular file (not a link) inside the root."""
    path = os.path.join(version_dir, name)
    root = os.path.realpath(self.server.root)
    if (
      os.path.islink(path)
      or not os.path.isfile(path)
      or os.path.commonpath([root, os.path.realpath(path)]) != root
    ):
      return None
    return path

  def do_HEAD(self):
    self.do_GET()

  def do_GET(self):
    url = urllib.parse.urlsplit(self.path)
    query = urllib.parse.parse_qs(url.query)
    if url.path == f"/{INDEX_NAME}":
      index = self._regular_file(os.path.realpath(self.server.root), INDEX_NAME)
      if index is None:
        self._send_text(404, "no index yet; publish a module with 'hubkit publish'")
        return
      with open(index, encoding="utf-8") as f:
        self._send_text(200, f.read().rstrip("\n"), "application/json")
      return
    if not _HANDLE_PATH.match(url.path):
      self._send_static(url.path)
      return
    version_dir = self._version_dir(url.path)
    if version_dir is None:
      self._send_text(
        400 if ".." in url.path or "%2e" in url.path.lower() else 404, _not_found(url.path)
      )
      return
    archive = self._regular_file(
      os.path.dirname(version_dir), os.path.basename(version_dir)
    ) or self._regular_file(version_dir, ARCHIVE_NAME)
    if archive is None:
      self._send_text(404, f"no module published as {url.path.strip('/')}")
      return
    # The card and variants: in <version>.d/, or beside the archive in the
    # earlier layout.
    version_dir = version_dir if os.path.isdir(version_dir) else f"{version_dir}.d"
    lite = query.get("lite-format", [None])[0]
    if lite is not None:
      self._send_lite(version_dir, url.path.strip("/"), lite)
      return
    if "tfjs-format" in query:
      self._send_text(400, "TF.js variants are not published here; see docs/publishing.md")
      return
    fmt = query.get("tf-hub-format", [None])[0]
    if fmt is None:
      card = self._regular_file(version_dir, CARD_NAME)
      if card is None:
        self._send_text(
          404, f"{url.path.strip('/')} has no card; publish it again with 'hubkit publish'"
        )
        return
      with open(card, encoding="utf-8", errors="replace") as f:
        self._send_text(200, f.read(), "text/markdown")
      return
    if fmt != "compressed":
      self._send_text(400, f"tf-hub-format={fmt} is not served; use tf-hub-format=compressed")
      return
    self._send_archive(archive, url.path.strip("/"))

  def _send_static(self, path: str) -> None:
    """The pages and the other published files (`hubkit.pages`), as a static
    server with an index file would serve them: a folder's URL ends in "/"
    and returns its index.html."""
    parts = [urllib.parse.unquote(s) for s in path.split("/") if s]
    if any(not _STATIC_SEGMENT.match(s) for s in parts):
      self._send_text(400 if ".." in path or "%2e" in path.lower() else 404, _not_found(path))
      return
    root = os.path.realpath(self.server.root)
    target = os.path.join(root, *parts)
    if os.path.isdir(target) and not os.path.islink(target):
      if not path.endswith("/"):
        self.send_response(301)
        self.send_header("Location", urllib.parse.quote(path + "/"))
        self.send_header("Content-Length", "0")
        self.end_headers()
        return
      target = os.path.join(target, pages.PAGE_NAME)
    found = self._regular_file(os.path.dirname(target), os.path.basename(target))
    if found is None:
      self._send_text(404, _not_found(path))
      return
    content_type = _CONTENT_TYPES.get(
      os.path.splitext(found)[1], mimetypes.guess_type(found)[0] or "application/octet-stream"
    )
    self.send_response(200)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(os.path.getsize(found)))
    self.end_headers()
    if self.command != "HEAD":
      self._stream(found)

  def _stream(self, path: str) -> None:
    with open(path, "rb") as f:
      for chunk in iter(lambda: f.read(_CHUNK), b""):
        self.wfile.write(chunk)
        if self.server.bytes_per_second:
          time.sleep(len(chunk) / self.server.bytes_per_second)

  def _send_lite(self, version_dir: str, handle: str, fmt: str) -> None:
    if fmt != "tflite":
      self._send_text(400, f"lite-format={fmt} is not served; use lite-format=tflite")
      return
    model = self._regular_file(version_dir, LITE_NAME)
    if model is None:
      self._send_text(
        404, f"{handle} has no LiteRT variant; publish it with 'hubkit publish --formats=litert'"
      )
      return
    self._send_archive(model, handle, "application/octet-stream")

  def _send_archive(
    self, archive: str, handle: str, content_type: str = "application/x-tar"
  ) -> None:
    etag = self.server.etag_for(archive)
    if self.headers.get("If-None-Match") == f'"{etag}"':
      self.send_response(304)
      self.send_header("ETag", f'"{etag}"')
      self.end_headers()
      return
    self.send_response(200)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(os.path.getsize(archive)))
    self.send_header("ETag", f'"{etag}"')
    self.end_headers()
    if self.command == "HEAD":
      return
    self.server.count(handle)
    self._stream(archive)


class RegistryServer(http.server.ThreadingHTTPServer):
  """The registry's HTTP server; counts archive downloads per handle.

  Args:
    root: the registry root folder.
    address: (host, port); port 0 picks a free one.
    bytes_per_second: throttle archive bodies (to simulate slow links).
    max_connections: connections served at once; more are answered 503.
  """

  daemon_threads = True

  def __init__(
    self,
    root: str,
    address=("127.0.0.1", 0),
    bytes_per_second: float = 0.0,
    max_connections: int = MAX_CONNECTIONS,
  ):
    if not os.path.isdir(root):
      raise UsageError(
        f"registry root {root} is not a directory; publish a module there "
        "first with 'hubkit publish'."
      )
    self.root = root
    self.bytes_per_second = bytes_per_second
    self.downloads = collections.Counter()
    self._etags = {}
    self._lock = threading.Lock()
    self._slots = threading.BoundedSemaphore(max_connections)
    try:
      super().__init__(address, _Handler)
    except OSError as e:
      raise UsageError(
        f"cannot listen on {address[0]}:{address[1]} ({e.strerror or e}); "
        "choose another `host` or `port`."
      ) from e

  def process_request(self, request, client_address):
    # Refused at once rather than queued: a flood of idle connections must
    # not leave real clients waiting or grow threads without bound.
    if not self._slots.acquire(blocking=False):
      with contextlib.suppress(OSError):
        request.sendall(
          b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
          b"Connection: close\r\nRetry-After: 1\r\n\r\n"
        )
      self.shutdown_request(request)
      return
    super().process_request(request, client_address)

  def handle_error(self, request, client_address):
    # A client that hangs up mid-download (a killed resolve, a timeout) is
    # routine for a file server: log it, without a traceback on stderr.
    error = sys.exc_info()[1]
    if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
      logging.info("%s went away: %s", client_address[0], error)
      return
    logging.exception("request from %s failed", client_address[0])

  def process_request_thread(self, request, client_address):
    try:
      super().process_request_thread(request, client_address)
    finally:
      self._slots.release()

  @property
  def url(self) -> str:
    host, port = self.server_address[:2]
    return f"http://{host}:{port}"

  def count(self, handle: str) -> None:
    with self._lock:
      self.downloads[handle] += 1

  def etag_for(self, archive: str) -> str:
    """The archive's sha256: from the digest file written at publish time,
    else computed once, outside the lock, so no request waits on another's
    hashing."""
    stat = os.stat(archive)
    key = (archive, stat.st_size, stat.st_mtime_ns)
    with self._lock:
      if key in self._etags:
        return self._etags[key]
    digest = _read_digest(archive + ".sha256") or _sha256(archive)
    with self._lock:
      self._etags[key] = digest
    return digest


def _not_found(path: str) -> str:
  return f"no module at {path}: handles look like /publisher/name/version, pages end in /"


def _read_digest(path: str) -> Optional[str]:
  """The sha256 in a `sha256sum`-format file, or None."""
  try:
    with open(path, encoding="ascii") as f:
      digest = f.read(64)
  except (OSError, UnicodeDecodeError):
    return None
  return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None


@contextlib.contextmanager
def serving(
  root: str, host: str = "127.0.0.1", port: int = 0, bytes_per_second: float = 0.0
) -> Iterator[RegistryServer]:
  """Runs the registry in a background thread for the duration of a block.

  Yields:
    The running RegistryServer (`server.url` is its base URL).
  """
  server = RegistryServer(root, (host, port), bytes_per_second)
  thread = threading.Thread(target=server.serve_forever, name="hubkit-registry", daemon=True)
  thread.start()
  try:
    yield server
  finally:
    server.shutdown()
    server.server_close()
    thread.join()


def serve(root: str, host: str = "127.0.0.1", port: int = 8765) -> None:
  """Serves a registry root until interrupted (Ctrl-C)."""
  server = RegistryServer(root, (host, port))
  logging.info("serving %s at %s (Ctrl-C stops)", os.path.abspath(root), server.url)
  print(f"serving {os.path.abspath(root)} at {server.url}", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    logging.info("stopped")
  finally:
    server.server_close()
