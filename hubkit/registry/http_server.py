"""The registry's HTTP server: the TF Hub hosting protocol over a root.

`GET /<publisher>/<name>/<version>?tf-hub-format=compressed` streams the
archive (Content-Length, ETag = quoted sha256), `?lite-format=tflite` the
LiteRT variant, `HEAD` answers the same headers, and the same URL without the
query returns the card; any other path is served as a static server would
(a folder's URL ending in "/" returns its index.html; hidden files never).
Unmodified `tensorflow_hub.load("http://HOST:PORT/publisher/name/version")`
works against it. The files it serves are laid out by
`hubkit.registry.root_layout`.

The server holds up against hostile or careless clients: idle connections
time out, concurrent connections are capped (others get 503), digests come
from the file written at publish time (or are computed outside any lock),
and only regular files inside the root are served.
"""

import collections
import contextlib
import http.server
import mimetypes
import os
import re
import socket
import sys
import threading
import time
from typing import Iterator, Optional
import urllib.parse

from absl import logging

from hubkit.errors import UsageError
from hubkit.registry import pages
from hubkit.registry import root_layout
from hubkit.utils.digest import sha256_file

CONNECTION_TIMEOUT_SECONDS = 30
MAX_CONNECTIONS = 64
_CHUNK = 1 << 16


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
    if len(segments) != 3 or not all(root_layout.SEGMENT.match(s) for s in segments):
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
    if url.path == f"/{root_layout.INDEX_NAME}":
      index = self._regular_file(os.path.realpath(self.server.root), root_layout.INDEX_NAME)
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
    ) or self._regular_file(version_dir, root_layout.ARCHIVE_NAME)
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
      card = self._regular_file(version_dir, root_layout.CARD_NAME)
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
    """The pages and the other published files (`hubkit.registry.pages`), as a static
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
    model = self._regular_file(version_dir, root_layout.LITE_NAME)
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
    digest = root_layout.read_digest(archive + ".sha256") or sha256_file(archive)
    with self._lock:
      self._etags[key] = digest
    return digest


def _not_found(path: str) -> str:
  return f"no module at {path}: handles look like /publisher/name/version, pages end in /"


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
