"""The op scan: every op a SavedModel could run, checked against an allow-list.

A SavedModel is a program. Loading one runs its resource initialisers and the
restore functions of its saveables; calling it runs its traced functions; TF
Serving and TF1 loaders run the nodes of each MetaGraph's `graph_def`. This
scan reads `saved_model.pb` (or `.pbtxt`, as the loader would) without
loading anything and looks at all of it: every node of every MetaGraph, every
function of the library (saver, restore and initialiser functions included)
and every function named in an attribute. It fails closed: an op type not in
`allowed_ops.txt` is a finding, whatever it is.

Three families are allowed only where they are harmless:

* `ReadFile` and table initialisation from a text file, when the file name
  can only be one of the module's own `assets/` (an asset capture bound by
  the object graph, or a TF1 asset tensor), never a constant.
* The checkpoint ops (`SaveV2`, `RestoreV2`, ...), only inside the functions
  that the MetaGraph's own `saver_def` runs, and only on the file name the
  loader passes in.
"""

import dataclasses
import functools
import hashlib
import os
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from hubkit.errors import HubkitError
from hubkit.safety import proto_schema

_HERE = os.path.dirname(os.path.abspath(__file__))
# Ops that read a file named by one input (index): allowed for own assets only.
_FILE_READ_INPUT = {
  "ReadFile": 0,
  "InitializeTableFromTextFile": 1,
  "InitializeTableFromTextFileV2": 1,
}
_CHECKPOINT_OPS = frozenset(
  {"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec"}
)
# Call ops whose inputs (after `skip` leading ones) map to the callee's arguments.
_CALL_INPUT_SKIP = {
  "PartitionedCall": 0,
  "StatefulPartitionedCall": 0,
  "If": 1,
  "StatelessIf": 1,
  "Case": 1,
  "StatelessCase": 1,
}
_PASS_THROUGH = frozenset({"Identity", "Snapshot"})


class UnsafeModuleError(HubkitError):
  """The module contains ops that may reach outside the process."""


@dataclasses.dataclass(frozen=True)
class Finding:
  """One op that is not allowed where it sits.

  Attributes:
    op: the op type (or the unknown function name for `kind == "function"`).
    where: the function or graph node holding it, readable.
    why: what is wrong, one phrase.
  """

  op: str
  where: str
  why: str

  def __str__(self) -> str:
    return f"{self.op} in {self.where} ({self.why})"


@functools.lru_cache(maxsize=1)
def allowed_ops() -> frozenset:
  """The op types on the allow-list (`hubkit/safety/allowed_ops.txt`)."""
  with open(os.path.join(_HERE, "allowed_ops.txt"), encoding="utf-8") as f:
    return frozenset(line.strip() for line in f if line.strip() and not line.startswith("#"))


def allow_list_digest() -> str:
  """A digest of the allow-list, part of every cached verdict's key."""
  return hashlib.sha256("\n".join(sorted(allowed_ops())).encode()).hexdigest()[:16]


def saved_model_proto_path(module_dir: str) -> str:
  """The file the SavedModel loader would parse (`.pb` first, then `.pbtxt`).

  Raises:
    UnsafeModuleError: neither exists.
  """
  for name in ("saved_model.pb", "saved_model.pbtxt"):
    path = os.path.join(module_dir, name)
    if os.path.isfile(path):
      return path
  raise UnsafeModuleError(f"{module_dir} has no saved_model.pb; pass the SavedModel directory.")


def parse(module_dir: str, full: bool = False):
  """Parses the module's SavedModel proto as the loader would.

  Args:
    module_dir: the SavedModel root.
    full: parse with TensorFlow's own message classes (every field, e.g. the
      signatures; imports TensorFlow). By default only the fields the scan
      reads are declared (`proto_schema`), so a binary `saved_model.pb` is
      read without importing TensorFlow; a `.pbtxt` (whose text names every
      field) always uses TensorFlow's classes.

  Raises:
    UnsafeModuleError: it does not parse (a module that cannot be scanned is
      not loaded).
  """
  from google.protobuf import message, text_format

  path = saved_model_proto_path(module_dir)
  text = path.endswith(".pbtxt")
  if full or text:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
  else:
    proto = proto_schema.message_class("SavedModel")()
  try:
    with open(path, "rb") as f:
      data = f.read()
    if text:
      text_format.Parse(data.decode("utf-8"), proto)
    else:
      proto.ParseFromString(data)
  except (message.DecodeError, text_format.ParseError, UnicodeDecodeError, OSError) as e:
    raise UnsafeModuleError(
      f"{os.path.basename(path)} does not parse ({e}); re-export the module."
    ) from e
  if not proto.meta_graphs:
    raise UnsafeModuleError(f"{os.path.basename(path)} holds no MetaGraph; re-export the module.")
  return proto


def _node_name(ref: str) -> str:
  return ref.lstrip("^").split(":")[0]


def _data_inputs(node) -> List[str]:
  return [i for i in node.input if not i.startswith("^")]


def _asset_file_defs(meta_graph) -> List:
  """The MetaGraph's AssetFileDefs: the TF2 field and the collection where TF1's
  SavedModelBuilder keeps them (the loader reads both)."""
  assets = list(meta_graph.asset_file_def)
  collection = meta_graph.collection_def.get("saved_model_assets")
  if collection is not None:
    asset_class = proto_schema.message_class("AssetFileDef")
    for packed in collection.any_list.value:
      # What Any.Unpack checks, spelled out: the classes of either schema read it.
      if packed.type_url.rpartition("/")[2] == f"{proto_schema.PACKAGE}.AssetFileDef":
        assets.append(asset_class.FromString(packed.value))
  return assets


def _closure(roots: Iterable[str], successors) -> Set[str]:
  """Everything reachable from `roots` through `successors(item)`."""
  seen, frontier = set(), list(roots)
  while frontier:
    item = frontier.pop()
    if item not in seen:
      seen.add(item)
      frontier.extend(successors(item))
  return seen


def _called(node) -> Iterator[Tuple[str, str]]:
  """(attribute name, function name) of every function a node names, including
  functions named in the attributes of a function attribute (a callee
  instantiated with a function-valued attribute runs that function too)."""
  yield from _named_functions(node.attr)


def _named_functions(attrs) -> Iterator[Tuple[str, str]]:
  # No depth bound needed: the protobuf parser already bounds message nesting.
  for key, value in attrs.items():
    funcs = ([value.func] if value.HasField("func") else []) + list(value.list.func)
    for func in funcs:
      yield key, func.name
      yield from _named_functions(func.attr)


class _MetaGraphScan:
  """Scans one MetaGraph; see the module docstring for the rules."""

  def __init__(self, meta_graph, extra_allowed: Set[str]):
    self.mg = meta_graph
    self.allowed = allowed_ops() | extra_allowed
    self.library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    self.graph_nodes = {n.name: n for n in meta_graph.graph_def.node}
    self.assets = _asset_file_defs(meta_graph)
    self.asset_tensors = {_node_name(a.tensor_info.name) for a in self.assets}
    self.function_nodes = {
      name: {n.name: n for n in f.node_def} for name, f in self.library.items()
    }
    self.assigns: Dict[str, List] = {}
    for node in meta_graph.graph_def.node:
      if node.op == "AssignVariableOp" and _data_inputs(node):
        self.assigns.setdefault(_node_name(_data_inputs(node)[0]), []).append(node)
    self.paths = self._object_paths()
    self.saver_nodes, self.saver_functions = self._saver_scope()
    reads_files = any(n.op in _FILE_READ_INPUT for n in meta_graph.graph_def.node) or any(
      n.op in _FILE_READ_INPUT for f in self.library.values() for n in f.node_def
    )
    # The data-flow analysis only matters where a file is read.
    self.asset_args = self._asset_arguments() if reads_files else {}
    self.findings: List[Finding] = []

  # Where things sit, for messages.
  def _object_paths(self) -> Dict[str, str]:
    objects = self.mg.object_graph_def
    if not objects.nodes:
      return {}
    names, frontier = {0: "module"}, [0]
    while frontier:
      index = frontier.pop(0)
      for child in objects.nodes[index].children:
        if child.node_id not in names and child.node_id < len(objects.nodes):
          names[child.node_id] = f"{names[index]}.{child.local_name}"
          frontier.append(child.node_id)
    paths = {}
    for index, node in enumerate(objects.nodes):
      kind = node.WhichOneof("kind")
      where = names.get(index, f"object {index}")
      if kind == "function":
        for fn in node.function.concrete_functions:
          paths.setdefault(fn, where)
      elif kind == "bare_concrete_function":
        paths.setdefault(node.bare_concrete_function.concrete_function_name, where)
      for saveable_name, saveable in node.saveable_objects.items():
        for ref, role in ((saveable.save_function, "save"), (saveable.restore_function, "restore")):
          target = objects.nodes[ref] if ref < len(objects.nodes) else None
          if target is not None and target.WhichOneof("kind") == "function":
            for fn in target.function.concrete_functions:
              paths[fn] = f"{role} function of {where} ({saveable_name})"
    return paths

  def _where(self, function: Optional[str], node_name: str) -> str:
    if function is None:
      return f"graph node {node_name!r}"
    path = self.paths.get(function)
    return f"function {function}" + (f" ({path})" if path else "")

  # The saver: graph nodes the saver_def runs, and functions only they reach.
  def _reachable_functions(self, names: Iterable[str]) -> Set[str]:
    return _closure(
      [n for n in names if n in self.library],
      lambda name: [
        f for node in self.library[name].node_def for _, f in _called(node) if f in self.library
      ],
    )

  def _saver_scope(self) -> Tuple[Set[str], Set[str]]:
    saver = self.mg.saver_def
    roots = [_node_name(n) for n in (saver.save_tensor_name, saver.restore_op_name) if n]
    nodes = _closure(
      [r for r in roots if r in self.graph_nodes],
      lambda name: [
        _node_name(i) for i in self.graph_nodes[name].input if _node_name(i) in self.graph_nodes
      ],
    )
    saver_calls = {f for n in nodes for _, f in _called(self.graph_nodes[n])}
    # A function also reachable from anything else (a consumer's call, an
    # initialiser, another graph node) does not get the saver's licence.
    other_roots = set(self.paths)
    other_roots.update(
      f for n, node in self.graph_nodes.items() if n not in nodes for _, f in _called(node)
    )
    others = self._reachable_functions(other_roots)
    return nodes, self._reachable_functions(saver_calls) - others

  # Which function arguments can only hold one of the module's assets.
  def _graph_value_is_asset(self, ref: str, depth: int = 0) -> bool:
    node = self.graph_nodes.get(_node_name(ref))
    if node is None or depth > 16:
      return False
    if node.name in self.asset_tensors:
      return True
    if node.op in _PASS_THROUGH and _data_inputs(node):
      return self._graph_value_is_asset(_data_inputs(node)[0], depth + 1)
    if node.op == "ReadVariableOp" and _data_inputs(node):
      assigns = self.assigns.get(_node_name(_data_inputs(node)[0]), [])
      return bool(assigns) and all(
        len(_data_inputs(a)) > 1 and self._graph_value_is_asset(_data_inputs(a)[1], depth + 1)
        for a in assigns
      )
    return False

  def _function_value_is_asset(self, function: str, ref: str, asset_args, depth=0) -> bool:
    fdef = self.library[function]
    name = ref.split(":", 1)[0]
    args = [a.name for a in fdef.signature.input_arg]
    if ":" not in ref and name in args:
      return asset_args[function][args.index(name)]
    node = self.function_nodes[function].get(name)
    if node is not None and node.op in _PASS_THROUGH and _data_inputs(node) and depth < 16:
      return self._function_value_is_asset(function, _data_inputs(node)[0], asset_args, depth + 1)
    return False

  def _asset_arguments(self) -> Dict[str, List[bool]]:
    objects = self.mg.object_graph_def
    asset_kinds = {i for i, n in enumerate(objects.nodes) if n.WhichOneof("kind") == "asset"}
    # Greatest fixed point: an argument holds an asset when every way it is
    # filled (the loader's capture binding, every call site) passes one.
    asset_args = {name: [True] * len(f.signature.input_arg) for name, f in self.library.items()}
    sources = {name: [] for name in self.library}
    for name, concrete in objects.concrete_functions.items():
      if name in self.library:
        count = len(self.library[name].signature.input_arg)
        bound = list(concrete.bound_inputs)
        flags = [False] * (count - len(bound)) + [b in asset_kinds for b in bound]
        sources[name].append(("bound", flags[:count]))
    call_sites = []
    for function, fdef in self.library.items():
      for node in fdef.node_def:
        call_sites.extend((function, node, callee) for _, callee in _called(node))
    for node in self.graph_nodes.values():
      call_sites.extend((None, node, callee) for _, callee in _called(node))
    called = {callee for _, _, callee in call_sites}
    for _ in range(len(self.library) + 1):
      changed = False
      computed = {name: list(flags) for name, flags in asset_args.items()}
      for name in self.library:
        # A function nothing binds or calls has no trustworthy arguments.
        values = [bool(sources[name]) or name in called] * len(computed[name])
        for _, flags in sources[name]:
          values = [v and f for v, f in zip(values, flags)]
        computed[name] = values
      for caller, node, callee in call_sites:
        if callee not in self.library:
          continue
        skip = _CALL_INPUT_SKIP.get(node.op)
        inputs = _data_inputs(node)
        for index in range(len(computed[callee])):
          position = None if skip is None else index + skip
          if position is None or position >= len(inputs):
            is_asset = False
          elif caller is None:
            is_asset = self._graph_value_is_asset(inputs[position])
          else:
            is_asset = self._function_value_is_asset(caller, inputs[position], asset_args)
          computed[callee][index] = computed[callee][index] and is_asset
      if computed != asset_args:
        asset_args, changed = computed, True
      if not changed:
        break
    return asset_args

  # The scan proper.
  def _check_node(self, node, function: Optional[str]) -> None:
    where = self._where(function, node.name)
    for _, callee in _called(node):
      if callee not in self.library and callee not in self.allowed:
        self.findings.append(Finding(callee, where, "calls a function the module does not define"))
    op = node.op
    if op in _FILE_READ_INPUT:
      inputs = _data_inputs(node)
      position = _FILE_READ_INPUT[op]
      ref = inputs[position] if position < len(inputs) else ""
      own_asset = (
        self._graph_value_is_asset(ref)
        if function is None
        else self._function_value_is_asset(function, ref, self.asset_args)
      )
      if not own_asset and op not in self.allowed:
        self.findings.append(
          Finding(op, where, "reads a file that is not one of the module's own assets")
        )
      return
    if op in _CHECKPOINT_OPS and op not in self.allowed:
      in_saver = (
        node.name in self.saver_nodes if function is None else function in self.saver_functions
      )
      if not in_saver:
        self.findings.append(
          Finding(op, where, "checkpoint I/O outside the SavedModel's own saver")
        )
      return
    if op == "Const" and function in self.saver_functions:
      tensor = node.attr["value"].tensor
      for value in tensor.string_val:
        if b".." in value or value.startswith(b"/"):
          self.findings.append(
            Finding(op, where, f"saver path {value[:40]!r} leaves the checkpoint directory")
          )
      return
    if op not in self.allowed:
      self.findings.append(Finding(op, where, "not on the allow-list of computation ops"))

  def run(self) -> List[Finding]:
    for node in self.mg.graph_def.node:
      self._check_node(node, None)
    for name, fdef in self.library.items():
      for node in fdef.node_def:
        self._check_node(node, name)
    for asset in self.assets:
      parts = asset.filename.replace("\\", "/").split("/")
      if asset.filename.startswith(("/", "\\")) or ".." in parts or ":" in asset.filename:
        self.findings.append(
          Finding(
            "asset", f"asset_file_def {asset.filename!r}", "points outside the module's assets/"
          )
        )
    return self.findings


def scan(module_dir: str, allow_ops: Sequence[str] = ()) -> Tuple[List[Finding], int, int]:
  """Scans a SavedModel directory without loading it.

  Args:
    module_dir: the SavedModel root.
    allow_ops: op types the user reviewed and allows in addition to the
      allow-list (e.g. `["PrintV2"]`).

  Returns:
    (findings, number of functions scanned, number of graph nodes scanned);
    no findings means every op is allowed where it sits.

  Raises:
    UnsafeModuleError: the SavedModel does not parse.
  """
  proto = parse(module_dir)
  findings, functions, nodes = [], 0, 0
  for meta_graph in proto.meta_graphs:
    scanner = _MetaGraphScan(meta_graph, set(allow_ops))
    findings.extend(scanner.run())
    functions += len(scanner.library)
    nodes += len(meta_graph.graph_def.node) + sum(len(f.node_def) for f in scanner.library.values())
  unique = list(dict.fromkeys(findings))
  return unique, functions, nodes


def describe(findings: Sequence[Finding], limit: int = 3) -> str:
  """One line naming the first findings and the fix."""
  shown = "; ".join(str(f) for f in findings[:limit])
  more = f" and {len(findings) - limit} more" if len(findings) > limit else ""
  ops = ",".join(sorted({f.op for f in findings if f.op != "asset"}))
  return (
    f"unsafe ops: {shown}{more}. Remove them from the model, or, after reviewing the "
    f"module, allow them with --allow_ops={ops} (allow_ops=[...] in Python)."
  )
