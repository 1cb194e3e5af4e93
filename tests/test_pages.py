"""The registry's web pages (hubkit/registry/pages.py): what publish writes, how
`hubkit serve`, nginx and a copied root serve them, and how they behave in
a real headless browser (Debian's Chromium driven by Playwright)."""

import hashlib
import html
import json
import os
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

import helpers
import hubkit
from hubkit.registry import http_server
from hubkit.inspection import info
from hubkit import modules
from hubkit.registry import pages

_HOSTILE = '<img src=x onerror="alert(1)"> <script>alert(2)</script>'
_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory, monkeypatch_module):
  """A root with two versions of one module (the first one checked), a text
  module, and a module whose description tries to inject HTML."""
  base = tmp_path_factory.mktemp("pages")
  monkeypatch_module.setenv("HUBKIT_CHECK_RECORDS", str(base / "checks"))
  root = str(base / "root")
  mlp = modules.export_module(
    "mlp_feature_vector", str(base / "mlp"), config={"input_dim": 5, "hidden_units": [3]}
  )
  hubkit.publish_module(mlp, root, "me/mlp/1", task="image-feature-vector")
  mlp2 = modules.export_module(
    "mlp_feature_vector",
    str(base / "mlp2"),
    config={"input_dim": 5, "hidden_units": [3], "seed": 7},
  )
  report = hubkit.check_module(mlp2)
  hubkit.publish_module(mlp2, root, "me/mlp/2", task="image-feature-vector", allow_breaking=True)
  text = modules.export_module("text_embedding", str(base / "text"))
  hubkit.publish_module(
    text, root, "google/tiny-text/1", task="text-embedding", description="Hashed tokens."
  )
  hostile = modules.export_module("mul", str(base / "mul"), config={"dim": 5})
  hubkit.publish_module(
    hostile, root, "evil/mul/1", task="image-feature-vector", description=_HOSTILE
  )
  return {"root": root, "mlp": mlp, "mlp2": mlp2, "report": report, "base": base}


@pytest.fixture(scope="module")
def monkeypatch_module():
  with pytest.MonkeyPatch.context() as patch:
    yield patch


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def _text(page_html):
  """A page's visible text, tags dropped and entities decoded."""
  return html.unescape(re.sub(r"<[^>]+>", " ", page_html))


def test_version_page_lists_digests_interface_check_and_changes(site):
  root = site["root"]
  page = _read(os.path.join(root, "me", "mlp", "2.d", "index.html"))
  text = " ".join(_text(page).split())
  with open(os.path.join(root, "me", "mlp", "2.tar.gz"), "rb") as f:
    archive = f.read()
  assert hashlib.sha256(archive).hexdigest() in page
  assert f"2.tar.gz (the module) {info.format_size(len(archive))}" in text
  # Every file of the archive, with the digest of its bytes in the module.
  for rel in ("saved_model.pb", "variables/variables.index", "assets.extra/hubkit.json"):
    digest = hashlib.sha256(open(os.path.join(site["mlp2"], rel), "rb").read()).hexdigest()
    assert re.search(rf"{re.escape(rel)}\s.*?{digest}", text), rel
  # The interface, as `hubkit info` reads it.
  assert "inputs float32 [None, 5]" in text
  assert "outputs float32 [None, 3]" in text
  assert "signature serving_default: {inputs: float32 [None, 5]}" in text
  # Changes: against version 1, linked, with the published diff.json.
  diff = json.loads(_read(os.path.join(root, "me", "mlp", "2.d", "diff.json")))
  assert diff["old"] == "me/mlp/1"
  assert '<a href="../1.d/">me/mlp/1</a>' in page
  # Other weights: the outputs drift, shown as the diff recorded it.
  assert [c["area"] for c in diff["changes"]] == ["values"]
  assert f"values changed values {diff['changes'][0]['detail']}" in text
  # Version 2 was checked before it was published, and its page shows that
  # verdict; version 1 was not.
  assert site["report"].verdict() in text and site["mlp2"] not in page
  check = json.loads(_read(os.path.join(root, "me", "mlp", "2.d", "check.json")))
  assert (
    check["conforms"] is site["report"].conforms and check["verdict"] == site["report"].verdict()
  )
  assert "summary" not in check  # it names the publisher's local path
  # The report itself: every rule with its status and what it found.
  assert len(check["results"]) == len(site["report"].results)
  for result in site["report"].results:
    assert f"{result.id} {result.status} {' '.join(result.message.split())}" in text
  page1 = _text(_read(os.path.join(root, "me", "mlp", "1.d", "index.html")))
  assert "No check was recorded" in page1 and not os.path.exists(
    os.path.join(root, "me", "mlp", "1.d", "check.json")
  )
  assert "Against" not in page1 and "The first version" in page1


def test_usage_snippets_name_the_handle_and_the_module_input(site):
  page = _read(os.path.join(site["root"], "me", "mlp", "2.d", "index.html"))
  snippets = {
    ident: html.unescape(re.sub(r"<[^>]+>", "", code))
    for ident, code in re.findall(r'<code id="(usage-[a-z0-9]+)">(.*?)</code>', page, re.S)
  }
  assert set(snippets) == {"usage-hub", "usage-keras3", "usage-kagglehub"}
  assert f'hub.load("{pages.PLACEHOLDER_URL}/me/mlp/2")' in snippets["usage-hub"]
  assert 'keras.Input(shape=(5,), dtype="float32")' in snippets["usage-keras3"]
  assert 'kagglehub.model_download("me/mlp/tensorFlow2/default/2")' in snippets["usage-kagglehub"]
  for code in snippets.values():  # each is a Python program as it stands
    compile(code, "snippet", "exec")


def test_card_text_cannot_inject_html(site):
  page = _read(os.path.join(site["root"], "evil", "mul", "1.d", "index.html"))
  index = _read(os.path.join(site["root"], "index.html"))
  for document in (page, index):
    assert "<script>alert" not in document and "<img src=x" not in document
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in document
    # The only script is the root's own file.
    assert re.findall(r"<script[^>]*>", document) == [
      f'<script defer src="{"../../../" if document is page else ""}_static/hubkit.js">'
    ]
    assert "script-src 'self'" in document


def test_markdown_is_rendered_without_raw_html_or_script_links():
  rendered = pages.render_markdown(
    "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<b>raw</b> [x](javascript:alert(1)) **bold**\n"
  )
  assert "<h1>Title</h1>" in rendered and "<td>1</td>" in rendered
  assert "<strong>bold</strong>" in rendered
  assert "<b>raw</b>" not in rendered and "&lt;b&gt;raw&lt;/b&gt;" in rendered
  assert 'href="javascript' not in rendered


def test_index_lists_every_module_newest_version_first(site):
  index = _read(os.path.join(site["root"], "index.html"))
  rows = re.findall(r'<tr data-name="([^"]+)" data-tasks="([^"]*)">(.*?)</tr>', index, re.S)
  assert [(name, tasks) for name, tasks, _ in rows] == [
    ("evil/mul", "image-feature-vector"),
    ("google/tiny-text", "text-embedding"),
    ("me/mlp", "image-feature-vector"),
  ]
  mlp_row = rows[2][2]
  assert re.findall(r">(\d+)</a>", mlp_row) == ["2", "1"]
  assert '<a href="me/mlp/2.d/"><strong>me/mlp</strong>' in mlp_row
  options = re.findall(r'<option value="([^"]*)">', index)
  assert options == ["", "image-feature-vector", "text-embedding"]
  model_page = _read(os.path.join(site["root"], "me", "mlp", "index.html"))
  assert re.findall(r'<a href="(\d)\.d/">', model_page) == ["2", "1"]
  # Written atomically: no temporary files are left in the root.
  leftovers = [
    os.path.join(folder, name)
    for folder, _, names in os.walk(site["root"])
    for name in names
    if ".tmp" in name
  ]
  assert leftovers == []


def _get(url):
  request = urllib.request.Request(url)
  try:
    with urllib.request.urlopen(request, timeout=10) as response:
      return response.status, response.headers.get("Content-Type", ""), response.read()
  except urllib.error.HTTPError as e:
    return e.code, e.headers.get("Content-Type", ""), e.read()


def test_hubkit_serve_serves_pages_like_a_static_server(site):
  with http_server.serving(site["root"]) as server:
    status, kind, body = _get(f"{server.url}/")
    assert (status, kind) == (200, "text/html; charset=utf-8") and b"<h1>Modules</h1>" in body
    status, kind, body = _get(f"{server.url}/me/mlp/2.d/")
    assert status == 200 and b"<h1>me/mlp/2</h1>" in body
    status, kind, _ = _get(f"{server.url}/_static/hubkit.js")
    assert (status, kind) == (200, "text/javascript; charset=utf-8")
    # A folder without its slash redirects, as nginx does.
    connection = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10)
    connection.sendall(b"GET /me/mlp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = connection.makefile("rb").read().decode()
    connection.close()
    assert reply.startswith("HTTP/1.1 301") and "Location: /me/mlp/\r\n" in reply
    # Hidden files (the index lock, staging folders) and escapes are not served.
    assert _get(f"{server.url}/.index.lock")[0] == 404
    assert _get(f"{server.url}/me/%2e%2e/%2e%2e/etc/passwd")[0] == 400
    # The handle URL still serves the module.
    status, kind, body = _get(f"{server.url}/me/mlp/2?tf-hub-format=compressed")
    assert status == 200 and body == open(os.path.join(site["root"], "me", "mlp", "2"), "rb").read()


def _launch(playwright):
  # The flags keep Chromium off the network it cannot reach here (its
  # background services would otherwise fail to connect at every start).
  return playwright.chromium.launch(
    executable_path=_CHROMIUM,
    args=[
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  )


def _browse(browser, base, screenshots=None):
  """Visits the index and every page it leads to; checks console, filter
  and links. Returns the usage snippet for tensorflow_hub as shown."""
  context = browser.new_context(
    viewport={"width": 1100, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
  )
  page = context.new_page()
  problems = []
  page.on(
    "console",
    lambda m: (
      problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    ),
  )
  page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
  page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
  page.on(
    "response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None
  )

  page.goto(f"{base}/")
  visible = lambda: page.locator(
    "#modules tbody tr:visible td:first-child strong"
  ).all_inner_texts()  # noqa: E731
  assert visible() == ["evil/mul", "google/tiny-text", "me/mlp"]
  page.select_option("#task", "text-embedding")
  assert visible() == ["google/tiny-text"]
  assert page.inner_text("#count") == "1 of 3 modules"
  page.select_option("#task", "")
  page.fill("#search", "MLP")
  assert visible() == ["me/mlp"]
  page.fill("#search", "no-such-module")
  assert visible() == [] and page.is_visible("#none")
  page.fill("#search", "")
  assert visible() == ["evil/mul", "google/tiny-text", "me/mlp"] and not page.is_visible("#none")
  if screenshots:
    page.screenshot(path=os.path.join(screenshots, "registry-index.png"), full_page=True)

  # Follow the module's link, as a user would.
  page.click("text=me/mlp")
  page.wait_for_load_state()
  assert page.url == f"{base}/me/mlp/2.d/"
  assert page.inner_text("h1") == "me/mlp/2"
  snippet = page.inner_text("#usage-hub")
  assert f'hub.load("{base}/me/mlp/2")' in snippet  # the address it is served from
  page.click("button[data-target=usage-hub]")
  page.wait_for_function(
    "document.querySelector('[data-target=usage-hub]').textContent == 'Copied'"
  )
  assert page.evaluate("navigator.clipboard.readText()") == snippet
  if screenshots:
    page.screenshot(path=os.path.join(screenshots, "registry-module.png"), full_page=True)

  # Every link of every page resolves (pages are crawled; files fetched).
  seen, queue = set(), [f"{base}/"]
  while queue:
    url = queue.pop()
    if url in seen:
      continue
    seen.add(url)
    response = context.request.get(url)  # files are fetched, pages opened
    assert response.status == 200, url
    if "text/html" not in response.headers.get("content-type", ""):
      continue
    page.goto(url)
    for attribute in ("href", "src"):
      for element in page.query_selector_all(f"[{attribute}]"):
        target = urllib.parse.urljoin(url, element.get_attribute(attribute)).split("#")[0]
        if target.startswith(base) and target not in seen:
          queue.append(target)
  assert len(seen) > 20  # index, module pages, version pages, downloads
  context.close()
  assert problems == []
  return snippet


@pytest.mark.slow
@pytest.mark.skipif(_CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_pages_in_a_headless_browser_on_every_host(site, tmp_path, monkeypatch):
  playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra)")
  copied = tmp_path / "copied"
  shutil.copytree(site["root"], copied)
  screenshots = os.environ.get("HUBKIT_SCREENSHOTS_DIR") or str(tmp_path / "screenshots")
  os.makedirs(screenshots, exist_ok=True)
  servers = []
  with http_server.serving(site["root"]) as server, playwright_api.sync_playwright() as playwright:
    browser = _launch(playwright)
    try:
      hosts = [("hubkit serve", server.url)]
      proc, url = helpers.start_file_server(str(copied))
      servers.append(proc)
      hosts.append(("a copied root, python -m http.server", url))
      if shutil.which("nginx"):
        proc, url = helpers.start_nginx(site["root"], tmp_path)
        servers.append(proc)
        hosts.append(("nginx", url))
      for number, (name, base) in enumerate(hosts):
        snippet = _browse(browser, base, screenshots if number == 0 else None)
        # The snippet as shown loads the module from that host.
        url = re.search(r'hub\.load\("([^"]+)"\)', snippet).group(1)
        monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / f"cache{number}"))
        x = np.ones((2, 5), np.float32)
        expected = hubkit.load(site["mlp2"])(x, training=False).numpy()
        np.testing.assert_allclose(
          hubkit.load(url)(x, training=False).numpy(), expected, err_msg=name
        )
    finally:
      browser.close()
      for proc in servers:
        helpers.stop(proc)
  for name in ("registry-index.png", "registry-module.png"):
    with open(os.path.join(screenshots, name), "rb") as f:
      data = f.read()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1100 and height >= 500, (name, width, height)
