"""The registry's web pages: static HTML written at publish time.

What tfhub.dev gave people besides the files: a card, the interface, a
usage snippet and the versions, browsable. Every page is a plain file in the
registry root, so `hubkit serve`, nginx with a plain `root` and an object
store's static website serve them alike:

    ROOT/index.html                   every module (newest version first): filter by
                                      task, search by name
    ROOT/<publisher>/<name>/index.html  a module's versions, newest first
    ROOT/<publisher>/<name>/<version>.d/index.html
                                      one version: the card rendered, the interface
                                      (`hubkit info`), the last check, the changes
                                      from the previous version, files with sizes and
                                      digests, usage for tensorflow_hub,
                                      hubkit.KerasLayer and kagglehub
    ROOT/_static/hubkit.css, hubkit.js

A version page is written with the version and never changes (versions are
immutable); the index and the module pages are rewritten at each publish.

The pages hold text others wrote (cards, descriptions), so everything is
escaped, card Markdown is rendered with raw HTML off (markdown-it-py's
CommonMark renderer, which also drops `javascript:` links), and a
Content-Security-Policy lets a page run only the root's own script. The one
script is progressive: filtering, the registry's address in the usage
snippets (taken from where the page is served, so a copied root shows its
own) and copy buttons; without it every page still reads and every link
works.
"""

import datetime
import html
import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from hubkit.registry import card as card_lib
from hubkit.inspection import info as info_lib
from hubkit.module import metadata
from hubkit.utils.atomic import atomic_file
from hubkit.module.card_metadata import card_metadata

PAGE_NAME = "index.html"
STATIC_DIR = "_static"  # not a valid publisher, so never a module's folder
CHECK_NAME = "check.json"  # the last check summary, beside the card
# Shown in usage snippets until the script puts in the address the page is served from.
PLACEHOLDER_URL = "https://HOST"
_PUBLISHED_CHECK_KEYS = (
  "conforms",
  "failed",
  "verdict",
  "results",
  "hubkit_version",
  "checked_at",
)
_CSP = (
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
  "connect-src 'self'; base-uri 'none'; form-action 'none'"
)

_CSS = """\
:root { --fg: #202124; --muted: #5f6368; --line: #dadce0; --accent: #1a73e8; --bg: #f8f9fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); }
header.top { background: #202124; color: #fff; padding: 10px 24px; }
header.top a { color: #fff; text-decoration: none; font-weight: 600; }
main { max-width: 1040px; margin: 0 auto; padding: 16px 24px 48px; }
a { color: var(--accent); }
h1 { font-size: 26px; margin: 12px 0 4px; word-break: break-all; }
h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.muted { color: var(--muted); }
.tags span { display: inline-block; background: #e8f0fe; color: #174ea6; border-radius: 12px;
  padding: 1px 10px; margin: 2px 4px 2px 0; font-size: 13px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
code, pre { font: 13px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
td code { word-break: break-all; }
td code.id { word-break: normal; white-space: nowrap; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  overflow-x: auto; margin: 0; }
.snippet { margin: 8px 0 16px; }
.snippet-head { display: flex; justify-content: space-between; align-items: center;
  margin-bottom: 4px; }
button.copy { font-size: 12px; padding: 2px 10px; cursor: pointer; }
.controls { display: flex; gap: 12px; margin: 16px 0 8px; flex-wrap: wrap; }
.controls input, .controls select { font-size: 15px; padding: 6px 8px; }
.controls input { flex: 1; min-width: 220px; }
.verdict-pass { color: #137333; font-weight: 600; }
.verdict-fail { color: #c5221f; font-weight: 600; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 4px 20px 12px; }
.card h1 { font-size: 22px; }
.card h2 { font-size: 17px; }
"""

_JS = """\
"use strict";
(function () {
  var root = document.body.getAttribute("data-root");
  if (root !== null && /^https?:$/.test(window.location.protocol)) {
    var base = new URL(root, window.location.href).href.replace(/\\/$/, "");
    document.querySelectorAll(".registry-url").forEach(function (el) {
      el.textContent = base;
    });
  }
  var search = document.getElementById("search");
  var task = document.getElementById("task");
  if (search && task) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("#modules tbody tr"));
    var apply = function () {
      var query = search.value.trim().toLowerCase();
      var wanted = task.value;
      var shown = 0;
      rows.forEach(function (row) {
        var match = (!query || row.getAttribute("data-name").indexOf(query) >= 0) &&
          (!wanted || row.getAttribute("data-tasks").split(" ").indexOf(wanted) >= 0);
        row.hidden = !match;
        if (match) { shown += 1; }
      });
      document.getElementById("count").textContent =
        shown + " of " + rows.length + " modules";
      document.getElementById("none").hidden = shown > 0;
    };
    var params = new URLSearchParams(window.location.search);
    if (params.get("q")) { search.value = params.get("q"); }
    if (params.get("task")) { task.value = params.get("task"); }
    search.addEventListener("input", apply);
    task.addEventListener("change", apply);
    apply();
  }
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var code = document.getElementById(button.getAttribute("data-target"));
      var range = document.createRange();
      range.selectNodeContents(code);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(code.textContent).then(function () {
          button.textContent = "Copied";
        }, function () {});
      }
    });
  });
})();
"""


def _e(value: Any) -> str:
  return html.escape(str(value), quote=True)


def _page(title: str, to_root: str, body: str) -> str:
  """A whole HTML document; `to_root` is the relative path to the root."""
  return (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
    f"<title>{_e(title)}</title>\n"
    '<link rel="icon" href="data:,">\n'
    f'<link rel="stylesheet" href="{to_root}{STATIC_DIR}/hubkit.css">\n'
    f'<script defer src="{to_root}{STATIC_DIR}/hubkit.js"></script>\n'
    f'</head>\n<body data-root="{_e(to_root or "./")}">\n'
    f'<header class="top"><a href="{to_root or "./"}">hubkit registry</a></header>\n'
    f"<main>\n{body}\n</main>\n</body>\n</html>\n"
  )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric=()) -> str:
  """An HTML table; cells are HTML already (escape before)."""
  head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>\n"
  body = "".join(
    "<tr>"
    + "".join(
      f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
      for i, cell in enumerate(row)
    )
    + "</tr>\n"
    for row in rows
  )
  return f"<table>\n{head if header else ''}<tbody>\n{body}</tbody>\n</table>"


def _snippet(ident: str, title: str, code: str) -> str:
  """A code block with a copy button; `code` is HTML (escaped, with
  `.registry-url` spans the script fills in)."""
  return (
    f'<div class="snippet"><div class="snippet-head"><strong>{_e(title)}</strong>'
    f'<button type="button" class="copy" data-target="{ident}">Copy</button></div>'
    f'<pre><code id="{ident}">{code}</code></pre></div>'
  )


def render_markdown(text: str) -> str:
  """Card Markdown as HTML, with raw HTML in the card shown as text."""
  from markdown_it import MarkdownIt

  return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _usage(handle: str, info: Mapping[str, Any], fine_tunable: bool) -> str:
  """Copy-ready snippets for tensorflow_hub, hubkit.KerasLayer and kagglehub."""
  publisher, name, version = card_lib.parse_handle(handle)
  url = f'<span class="registry-url">{PLACEHOLDER_URL}</span>/{_e(handle)}'
  trainable = "True" if fine_tunable else "False"
  inputs = info.get("inputs") or []
  spec = inputs[0] if len(inputs) == 1 and isinstance(inputs[0], dict) else None
  if spec and "dtype" in spec and spec.get("shape"):
    shape = ", ".join("None" if d is None else str(d) for d in spec["shape"][1:])
    keras_input = f'keras.Input(shape=({shape}{"," if len(spec["shape"]) == 2 else ""}), dtype="{_e(spec["dtype"])}")'
  else:
    keras_input = "keras.Input(...)  # the module's input, see Interface"
  kaggle = f"{publisher}/{name}/tensorFlow2/default"
  return "\n".join(
    [
      _snippet(
        "usage-hub",
        "tensorflow_hub (TF2, tf_keras)",
        "import tensorflow_hub as hub\n\n"
        f'module = hub.load("{url}")\n'
        f'layer = hub.KerasLayer("{url}", trainable={trainable})',
      ),
      _snippet(
        "usage-keras3",
        "hubkit.KerasLayer (Keras 3)",
        "import keras\nimport hubkit\n\n"
        f"inputs = {keras_input}\n"
        f'outputs = hubkit.KerasLayer("{url}", trainable={trainable})(inputs)\n'
        "model = keras.Model(inputs, outputs)",
      ),
      _snippet(
        "usage-kagglehub",
        "kagglehub",
        "# Offline, from this registry into kagglehub's cache:\n"
        f"#   hubkit cache kaggle {url} {_e(kaggle)}/{_e(version)}\n"
        "# or on Kaggle Models after: hubkit publish --kaggle_dir=DIR, then\n"
        f'#   kagglehub.model_upload("{_e(kaggle)}", DIR)\n'
        "import kagglehub\nimport tensorflow_hub as hub\n\n"
        f'path = kagglehub.model_download("{_e(kaggle)}/{_e(version)}")\n'
        f"layer = hub.KerasLayer(path, trainable={trainable})",
      ),
    ]
  )


def _check_section(check: Optional[Mapping[str, Any]]) -> str:
  if not check:
    return (
      '<p class="muted">No check was recorded for this content when it was published '
      "(run <code>hubkit check</code> before <code>hubkit publish</code>).</p>"
    )
  verdict = "pass" if check.get("conforms") else "fail"
  failed = check.get("failed") or []
  parts = [
    f'<p><span class="verdict-{verdict}">{_e(check.get("verdict", ""))}</span> '
    f'<span class="muted">checked {_e(check.get("checked_at", "?"))} with hubkit '
    f"{_e(check.get('hubkit_version', '?'))}</span> · "
    f'<a href="{CHECK_NAME}">{CHECK_NAME}</a></p>'
  ]
  results = [r for r in check.get("results") or [] if isinstance(r, dict)]
  if results:
    parts.append(
      _table(
        ("rule", "status", "found"),
        [
          (
            f'<code class="id">{_e(r.get("id", ""))}</code>',
            _e(r.get("status", "")),
            _e(r.get("message", "")),
          )
          for r in results
        ],
      )
    )
  elif failed:
    parts.append("<ul>" + "".join(f"<li><code>{_e(rule)}</code></li>" for rule in failed) + "</ul>")
  return "\n".join(parts)


def _changes_section(diff_record: Optional[Mapping[str, Any]], diff_name: str) -> str:
  if not diff_record:
    return '<p class="muted">The first version: nothing to compare with.</p>'
  previous = str(diff_record.get("old", ""))
  version = previous.rsplit("/", 1)[-1]
  rows = [
    (_e(c.get("severity", "")), _e(c.get("area", "")), _e(c.get("detail", "")))
    for c in diff_record.get("changes") or []
  ]
  verdict = "breaking" if diff_record.get("breaking") else "compatible"
  return (
    f'<p>Against <a href="../{_e(version)}.d/">{_e(previous)}</a>: {verdict} '
    f'(<a href="{diff_name}">{diff_name}</a>).</p>\n'
    + (_table(("severity", "area", "change"), rows) if rows else "<p>No changes found.</p>")
  )


def write_version_page(
  extras_dir: str,
  handle: str,
  card_text: str,
  info: Mapping[str, Any],
  files: Sequence[Tuple[str, int, str]],
  downloads: Sequence[Tuple[str, str, int, str]],
  diff_name: str,
) -> str:
  """Writes `<version>.d/index.html` (and check.json) into a staging folder.

  Args:
    extras_dir: the version's `.d` folder, before it is moved into place.
    handle: publisher/name/version.
    card_text: the tfhub.dev card (Markdown with metadata lines).
    info: the `hubkit.module_info` record of the module.
    files: (path inside the module, bytes, sha256) of each module file.
    downloads: (label, href relative to the page, bytes, sha256) of each
      published file.
    diff_name: the comparison file's name in `extras_dir` (read when there).

  Returns:
    The page's path.
  """
  publisher, name, version = card_lib.parse_handle(handle)
  description, tags, body = card_metadata(card_text)
  diff_record = metadata.read_json_object(os.path.join(extras_dir, diff_name))
  check = info.get("last_check")
  if check:
    # Published without the summary line, which names the publisher's local path.
    check = {k: v for k, v in check.items() if k in _PUBLISHED_CHECK_KEYS}
    check.setdefault(  # older records have no verdict
      "verdict",
      ("conforms" if check.get("conforms") else "does NOT conform")
      + " to the Reusable SavedModel interface",
    )
    with atomic_file(os.path.join(extras_dir, CHECK_NAME), "w") as f:
      json.dump(check, f, indent=1, sort_keys=True)
  fine_tunable = (tags.get("fine-tunable") or ["true"])[0] == "true"
  tag_html = "".join(
    f"<span>{_e(key)}: {_e(value)}</span>"
    for key in ("task", "network-architecture", "dataset", "language", "license")
    for value in tags.get(key, [])
  )
  interface_rows = [
    (_e(k), _e(v)) for k, v in info_lib.info_rows(info) if k not in ("module", "last check")
  ]
  body_html = "\n".join(
    [
      f'<p class="muted"><a href="../../../">all modules</a> / '
      f'<a href="../">{_e(publisher)}/{_e(name)}</a> / version {_e(version)}</p>',
      f"<h1>{_e(handle)}</h1>",
      f"<p>{_e(description)}</p>",
      f'<div class="tags">{tag_html}</div>',
      "<h2>Card</h2>",
      f'<div class="card">{render_markdown(body)}</div>',
      '<p class="muted"><a href="README.md">README.md</a> (the card as published)</p>',
      "<h2>Usage</h2>",
      _usage(handle, info, fine_tunable),
      "<h2>Interface</h2>",
      _table((), interface_rows),
      "<h2>Last check</h2>",
      _check_section(check),
      "<h2>Changes</h2>",
      _changes_section(diff_record, diff_name),
      "<h2>Downloads</h2>",
      _table(
        ("file", "size", "sha256"),
        [
          (
            f'<a href="{_e(href)}">{_e(label)}</a>',
            _e(info_lib.format_size(size)),
            f"<code>{digest}</code>",
          )
          for label, href, size, digest in downloads
        ],
        numeric=(1,),
      ),
      "<h2>Files in the module</h2>",
      _table(
        ("path", "size", "sha256"),
        [
          (f"<code>{_e(path)}</code>", _e(info_lib.format_size(size)), f"<code>{digest}</code>")
          for path, size, digest in files
        ],
        numeric=(1,),
      ),
    ]
  )
  path = os.path.join(extras_dir, PAGE_NAME)
  with atomic_file(path, "w") as f:
    f.write(_page(handle, "../../../", body_html))
  return path


def _version_summary(version: int, archive: str, card: str) -> Dict[str, Any]:
  """What the index shows of one version, read from its published files."""
  extras = os.path.dirname(card)
  try:
    with open(card, encoding="utf-8", errors="replace") as f:
      description, tags, _ = card_metadata(f.read())
  except OSError:
    description, tags = "", {}
  stat = os.stat(archive)
  page = os.path.isfile(os.path.join(extras, PAGE_NAME))
  return {
    "version": version,
    "description": description,
    "tasks": tags.get("task", []),
    "bytes": stat.st_size,
    "published": datetime.datetime.fromtimestamp(stat.st_mtime, datetime.timezone.utc).strftime(
      "%Y-%m-%d %H:%M UTC"
    ),
    # Versions published before pages existed link to their card instead.
    "href": f"{os.path.basename(extras)}/" + ("" if page else os.path.basename(card)),
  }


def write_site(root: str, modules: Sequence[Tuple[str, Sequence[Tuple[int, str, str]]]]) -> None:
  """Rewrites the index, every module page and the static files.

  Call under the root's index lock (`root_layout.write_index` does): concurrent publishers
  must not interleave. Each file is replaced atomically.

  Args:
    root: the registry root.
    modules: (publisher/name, versions newest first) of every module; each
      version as (number, its archive, its card), wherever the layout keeps them.
  """
  static = os.path.join(root, STATIC_DIR)
  os.makedirs(static, exist_ok=True)
  for filename, text in (("hubkit.css", _CSS), ("hubkit.js", _JS)):
    with atomic_file(os.path.join(static, filename), "w") as f:
      f.write(text)
  rows, tasks = [], set()
  for model, versions in modules:
    folder = os.path.join(root, *model.split("/"))
    summaries = [_version_summary(*v) for v in versions]
    _write_model_page(folder, model, summaries)
    newest = summaries[0]
    tasks.update(newest["tasks"])
    links = ", ".join(
      f'<a href="{_e(model)}/{_e(s["href"])}">{s["version"]}</a>' for s in summaries
    )
    rows.append(
      f'<tr data-name="{_e(model.lower())}" data-tasks="{_e(" ".join(newest["tasks"]))}">'
      f'<td><a href="{_e(model)}/{_e(newest["href"])}"><strong>{_e(model)}</strong></a>'
      f'<br><span class="muted">{_e(newest["description"])}</span></td>'
      f"<td>{_e(', '.join(newest['tasks']))}</td>"
      f"<td>{links}</td>"
      f'<td class="num">{_e(newest["published"])}</td>'
      f'<td class="num">{_e(info_lib.format_size(newest["bytes"]))}</td></tr>'
    )
  options = "".join(f'<option value="{_e(t)}">{_e(t)}</option>' for t in sorted(tasks))
  body = "\n".join(
    [
      "<h1>Modules</h1>",
      f'<p class="muted">{len(modules)} modules; <a href="index.json">index.json</a> lists '
      "every handle.</p>",
      '<div class="controls"><input id="search" type="search" placeholder="Search by name" '
      'aria-label="Search by name">'
      f'<select id="task" aria-label="Task"><option value="">All tasks</option>{options}</select>'
      "</div>",
      f'<p id="count" class="muted">{len(modules)} of {len(modules)} modules</p>',
      '<table id="modules"><thead><tr><th>module</th><th>task</th>'
      "<th>versions (newest first)</th><th>published</th><th>size</th></tr></thead>"
      f"<tbody>\n{chr(10).join(rows)}\n</tbody></table>",
      '<p id="none" class="muted" hidden>No module matches.</p>',
    ]
  )
  with atomic_file(os.path.join(root, PAGE_NAME), "w") as f:
    f.write(_page("hubkit registry", "", body))


def _write_model_page(folder: str, model: str, summaries: Sequence[Mapping[str, Any]]) -> None:
  rows = [
    (
      f'<a href="{_e(s["href"])}">{s["version"]}</a>',
      _e(s["description"]),
      _e(", ".join(s["tasks"])),
      _e(s["published"]),
      _e(info_lib.format_size(s["bytes"])),
    )
    for s in summaries
  ]
  body = "\n".join(
    [
      '<p class="muted"><a href="../../">all modules</a></p>',
      f"<h1>{_e(model)}</h1>",
      f"<p>{_e(summaries[0]['description'])}</p>",
      "<h2>Versions</h2>",
      _table(("version", "description", "task", "published", "size"), rows, numeric=(3, 4)),
    ]
  )
  with atomic_file(os.path.join(folder, PAGE_NAME), "w") as f:
    f.write(_page(model, "../../", body))
