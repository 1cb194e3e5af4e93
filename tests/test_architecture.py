"""The package's imports run one way and never in a circle.

docs/architecture.md draws the layers. Every import counts, also the ones
inside functions: an import deferred to keep TensorFlow off the CLI's start
still couples the two files, and a circle hidden that way breaks as soon as
someone moves the import to the top.
"""

import ast
import pathlib
from typing import Dict, List, Set

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# Where each package's source lives (setup.cfg's package_dir).
SOURCES = {
  "hubkit": REPO / "hubkit",
  "hubkit.exporters": REPO / "exporters",
  "hubkit.modules": REPO / "modules",
}

# Top to bottom: a file may import its own layer and the layers below it,
# never one above.
LAYERS = (
  ("hubkit",),  # the public face: `import hubkit` for users, never for hubkit itself
  ("hubkit.cli", "hubkit.commands"),
  ("hubkit.demo",),
  ("hubkit.registry",),
  ("hubkit.training",),
  ("hubkit.formats",),
  ("hubkit.checker",),
  ("hubkit.inspection",),
  ("hubkit.exporters", "hubkit.modules"),
  ("hubkit.keras_layer",),
  ("hubkit.cache",),
  ("hubkit.module",),
  ("hubkit.safety",),
  ("hubkit.utils", "hubkit.errors", "hubkit.version"),
)


def _modules() -> Dict[str, pathlib.Path]:
  found = {}
  for package, folder in SOURCES.items():
    for path in sorted(folder.rglob("*.py")):
      parts = list(path.relative_to(folder).with_suffix("").parts)
      if parts[-1] == "__init__":
        parts.pop()
      if package == "hubkit" and parts and parts[0] in ("exporters", "modules"):
        continue
      found[".".join([package, *parts])] = path
  return found


def _imports(name: str, path: pathlib.Path, modules: Set[str]) -> Set[str]:
  """The hubkit modules `name` imports anywhere in its file."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      for alias in node.names:
        submodule = f"{base}.{alias.name}"
        found.add(submodule if submodule in modules else base)
  return {m for m in found if m in modules and m != name}


def _layer(module: str) -> int:
  best, depth = None, -1
  for index, group in enumerate(LAYERS):
    for prefix in group:
      if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
        best, depth = index, len(prefix)
  if best is None:
    raise AssertionError(f"{module} belongs to no layer; add its package to LAYERS")
  return best


@pytest.fixture(scope="module")
def graph() -> Dict[str, Set[str]]:
  modules = _modules()
  return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """One circle per strongly connected component bigger than a file (Tarjan)."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  on_stack: Set[str] = set()
  cycles = []

  def visit(node: str) -> None:
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in sorted(graph.get(node, ())):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        cycles.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return cycles


def test_every_file_belongs_to_a_layer(graph):
  for name in graph:
    _layer(name)


def test_no_import_circles(graph):
  assert _cycles(graph) == []


def _climbing(graph: Dict[str, Set[str]]) -> List[str]:
  return sorted(
    f"{source} imports {target}"
    for source, targets in graph.items()
    for target in targets
    if _layer(target) < _layer(source)
  )


def test_imports_never_climb_a_layer(graph):
  assert _climbing(graph) == []


def _package(module: str) -> str:
  """The LAYERS entry a module belongs to (its package, or a top-level file)."""
  return max((p for g in LAYERS for p in g if module == p or module.startswith(p + ".")), key=len)


def _declared(path: pathlib.Path) -> Set[str]:
  """The packages a package's docstring says it may import."""
  doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
  _, found, rest = doc.partition("May import:")
  assert found, f"{path} does not say what it may import ('May import: ...')"
  return {name.strip(" .\n") for name in rest.split("\n\n")[0].replace("\n", " ").split(",")}


def test_each_package_says_what_it_may_import_and_keeps_to_it(graph):
  modules = _modules()
  packages = [
    p for g in LAYERS[1:] for p in g if modules.get(p, pathlib.Path()).name == "__init__.py"
  ]
  assert len(packages) >= 12
  for package in packages:
    declared = _declared(modules[package])
    allowed = {p for g in LAYERS[_layer(package) :] for p in g} - {package}
    assert declared <= allowed, f"{package} declares imports from a layer above it"
    used = {
      _package(target)
      for source, targets in graph.items()
      if _package(source) == package
      for target in targets
      if _package(target) != package
    }
    assert used <= declared, f"{package} imports {sorted(used - declared)} it does not declare"


def test_the_checks_find_what_they_look_for():
  # The same functions on a made-up graph: a circle and a climbing import.
  made_up = {
    "hubkit.utils.a": {"hubkit.cache.b"},
    "hubkit.cache.b": {"hubkit.utils.a"},
    "hubkit.commands.c": {"hubkit", "hubkit.cli", "hubkit.cache.b"},
  }
  assert _cycles(made_up) == [["hubkit.cache.b", "hubkit.utils.a"]]
  assert _climbing(made_up) == [
    "hubkit.commands.c imports hubkit",
    "hubkit.utils.a imports hubkit.cache.b",
  ]
  with pytest.raises(AssertionError, match="belongs to no layer"):
    _layer("hubkit_elsewhere.x")


def test_the_graph_reads_deferred_and_aliased_imports(graph):
  # checker.child imports runner inside main(), after confining itself.
  assert "hubkit.checker.runner" in graph["hubkit.checker.child"]
  assert "hubkit.cache.store" in graph["hubkit.cache.resolver"]
  assert "hubkit.module.reusable" in graph["hubkit.modules"]
