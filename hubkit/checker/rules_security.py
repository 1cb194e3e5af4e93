"""security.ops: no file-system access or printing in what consumers run."""

from typing import Iterable, Set

from hubkit.checker.context import Context, first_line, parse_saved_model
from hubkit.checker.registry import RuleFailed, RuleSkipped, rule

# Ops that read or write arbitrary files, print, or run Python. The SavedModel
# saver's own save/restore ops and vocabulary-table initialisation from an
# asset are legitimate and live outside the functions a consumer calls.
FORBIDDEN_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "DeleteFile", "FileExists", "IsDirectory",
    "PrintV2", "Print", "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
    "MergeV2Checkpoints", "WholeFileReader", "WholeFileReaderV2", "TextLineReader",
    "TextLineReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2",
    "TFRecordReader", "TFRecordReaderV2", "LMDBReader", "ImmutableConst",
    "CreateSummaryFileWriter", "WriteSummary", "WriteScalarSummary", "WriteHistogramSummary",
    "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary", "WriteRawProtoSummary",
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "DebugIdentity", "DebugIdentityV2",
    "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2",
})


def _called_functions(node) -> Iterable[str]:
  for value in node.attr.values():
    if value.HasField("func"):
      yield value.func.name
    for func in value.list.func:
      yield func.name


def _consumer_functions(meta_graph) -> Set[str]:
  """Function names reachable from what a consumer calls.

  That is every concrete function of the object graph except the save and
  restore functions of checkpointable resources, plus what they call.
  """
  objects = meta_graph.object_graph_def
  saver_nodes = {ref for node in objects.nodes for saveable in node.saveable_objects.values()
                 for ref in (saveable.save_function, saveable.restore_function)}
  roots = set()
  for index, node in enumerate(objects.nodes):
    if index in saver_nodes:
      continue
    kind = node.WhichOneof("kind")
    if kind == "function":
      roots.update(node.function.concrete_functions)
    elif kind == "bare_concrete_function":
      roots.add(node.bare_concrete_function.concrete_function_name)
  library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
  reachable, frontier = set(), [r for r in roots if r in library]
  while frontier:
    name = frontier.pop()
    if name in reachable:
      continue
    reachable.add(name)
    for node in library[name].node_def:
      frontier.extend(f for f in _called_functions(node) if f in library)
  return reachable


@rule("security.ops", "No file-system or print ops",
      fix="remove tf.io.read_file/write_file, tf.print and similar ops from the model code; "
          "ship data as tf.saved_model.Asset files or variables instead.",
      needs_load=False)
def check_ops(ctx: Context):
  try:
    meta_graph = parse_saved_model(ctx.path).meta_graphs[0]
  except Exception as e:  # pylint: disable=broad-except
    raise RuleSkipped(f"saved_model.pb does not parse ({first_line(e)})") from e
  library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
  found = {}
  for name in sorted(_consumer_functions(meta_graph)):
    for node in library[name].node_def:
      if node.op in FORBIDDEN_OPS:
        found.setdefault(node.op, name)
  ctx.figures["functions_scanned"] = len(library)
  if found:
    raise RuleFailed("forbidden ops: " + ", ".join(f"{op} (in {fn})" for op, fn in
                                                    sorted(found.items())))
  return f"no file-system, print or Python ops in {len(library)} functions"
