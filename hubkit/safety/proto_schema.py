"""The part of TensorFlow's SavedModel proto that the op scan reads, without TensorFlow.

Importing any `tensorflow.core.*_pb2` module imports all of TensorFlow
(about 3 s of a fresh process), while a fetch only needs to read
`saved_model.pb`. This module declares, in protobuf's own descriptor terms,
the messages and fields the scan reads, with TensorFlow's message names and
field numbers, in a private descriptor pool (so it never clashes with
TensorFlow's own registration when both are imported).

Fields left out are kept as unknown fields by the parser, so nothing is
lost; every member of a `oneof` the scan looks at is declared, so that
"the last member on the wire wins" resolves exactly as in TensorFlow's
parser (a node cannot look like an asset to the scan and like a variable to
the loader). tests/test_safety_proto.py compares every declared field with
TensorFlow's descriptors.
"""

import functools
import re
from typing import Dict, List, Tuple

from google.protobuf import any_pb2
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

PACKAGE = "tensorflow"
_FIELD = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
  "string": _FIELD.TYPE_STRING,
  "bytes": _FIELD.TYPE_BYTES,
  "int32": _FIELD.TYPE_INT32,
  "int64": _FIELD.TYPE_INT64,
  "float": _FIELD.TYPE_FLOAT,
  "bool": _FIELD.TYPE_BOOL,
}
# Message name (nested ones dotted, as in TensorFlow) -> its fields, written
# as in a .proto file; "oneof NAME:" puts a field in that oneof.
SCHEMA: Dict[str, List[str]] = {
  "SavedModel": ["repeated MetaGraphDef meta_graphs = 2"],
  "MetaGraphDef": [
    "GraphDef graph_def = 2",
    "SaverDef saver_def = 3",
    "map<string, CollectionDef> collection_def = 4",
    "repeated AssetFileDef asset_file_def = 6",
    "SavedObjectGraph object_graph_def = 7",
  ],
  "GraphDef": ["repeated NodeDef node = 1", "FunctionDefLibrary library = 2"],
  "FunctionDefLibrary": ["repeated FunctionDef function = 1"],
  "FunctionDef": ["OpDef signature = 1", "repeated NodeDef node_def = 3"],
  "OpDef": ["string name = 1", "repeated OpDef.ArgDef input_arg = 2"],
  "OpDef.ArgDef": ["string name = 1"],
  "NodeDef": [
    "string name = 1",
    "string op = 2",
    "repeated string input = 3",
    "map<string, AttrValue> attr = 5",
  ],
  "AttrValue": [
    "oneof value: AttrValue.ListValue list = 1",
    "oneof value: bytes s = 2",
    "oneof value: int64 i = 3",
    "oneof value: float f = 4",
    "oneof value: bool b = 5",
    "oneof value: TensorShapeProto shape = 7",
    "oneof value: TensorProto tensor = 8",
    "oneof value: string placeholder = 9",
    "oneof value: NameAttrList func = 10",
  ],
  "AttrValue.ListValue": ["repeated NameAttrList func = 9"],
  "NameAttrList": ["string name = 1", "map<string, AttrValue> attr = 2"],
  "TensorShapeProto": [],
  "TensorProto": ["repeated bytes string_val = 8"],
  "SaverDef": [
    "string filename_tensor_name = 1",
    "string save_tensor_name = 2",
    "string restore_op_name = 3",
  ],
  "CollectionDef": [
    "oneof kind: CollectionDef.NodeList node_list = 1",
    "oneof kind: CollectionDef.BytesList bytes_list = 2",
    "oneof kind: CollectionDef.Int64List int64_list = 3",
    "oneof kind: CollectionDef.FloatList float_list = 4",
    "oneof kind: CollectionDef.AnyList any_list = 5",
  ],
  "CollectionDef.NodeList": [],
  "CollectionDef.BytesList": [],
  "CollectionDef.Int64List": [],
  "CollectionDef.FloatList": [],
  "CollectionDef.AnyList": ["repeated google.protobuf.Any value = 1"],
  "AssetFileDef": ["TensorInfo tensor_info = 1", "string filename = 2"],
  "TensorInfo": [
    "oneof encoding: string name = 1",
    "oneof encoding: TensorInfo.CooSparse coo_sparse = 4",
    "oneof encoding: TensorInfo.CompositeTensor composite_tensor = 5",
  ],
  "TensorInfo.CooSparse": [],
  "TensorInfo.CompositeTensor": [],
  "SavedObjectGraph": [
    "repeated SavedObject nodes = 1",
    "map<string, SavedConcreteFunction> concrete_functions = 2",
  ],
  "SavedObject": [
    "repeated TrackableObjectGraph.TrackableObject.ObjectReference children = 1",
    "oneof kind: SavedUserObject user_object = 4",
    "oneof kind: SavedAsset asset = 5",
    "oneof kind: SavedFunction function = 6",
    "oneof kind: SavedVariable variable = 7",
    "oneof kind: SavedBareConcreteFunction bare_concrete_function = 8",
    "oneof kind: SavedConstant constant = 9",
    "oneof kind: SavedResource resource = 10",
    "oneof kind: CapturedTensor captured_tensor = 12",
    "map<string, SaveableObject> saveable_objects = 11",
  ],
  "TrackableObjectGraph": [],
  "TrackableObjectGraph.TrackableObject": [],
  "TrackableObjectGraph.TrackableObject.ObjectReference": [
    "int32 node_id = 1",
    "string local_name = 2",
  ],
  "SavedUserObject": [],
  "SavedAsset": [],
  "SavedFunction": ["repeated string concrete_functions = 1"],
  "SavedVariable": [],
  "SavedBareConcreteFunction": ["string concrete_function_name = 1"],
  "SavedConstant": [],
  "SavedResource": [],
  "CapturedTensor": [],
  "SavedConcreteFunction": ["repeated int32 bound_inputs = 2"],
  "SaveableObject": ["int32 save_function = 2", "int32 restore_function = 3"],
}
_LINE = re.compile(
  r"(?:oneof (?P<oneof>\w+): )?(?:(?P<repeated>repeated) )?"
  r"(?:map<string, (?P<map>[\w.]+)>|(?P<type>[\w.]+)) (?P<name>\w+) = (?P<number>\d+)"
)


def parse_field(line: str) -> Tuple[str, int, str, bool, bool, str]:
  """(name, number, type, repeated, map, oneof) of one SCHEMA line."""
  m = _LINE.fullmatch(line)
  if m is None:
    raise ValueError(f"bad schema line {line!r}")
  return (
    m["name"],
    int(m["number"]),
    m["map"] or m["type"],
    bool(m["repeated"] or m["map"]),
    bool(m["map"]),
    m["oneof"] or "",
  )


def _type_name(name: str) -> str:
  return f".{name}" if name.startswith("google.") else f".{PACKAGE}.{name}"


def _add_field(message, path: str, line: str) -> None:
  name, number, type_, repeated, is_map, oneof = parse_field(line)
  field = message.field.add(name=name, number=number)
  field.label = _FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL
  if oneof:
    names = [o.name for o in message.oneof_decl]
    if oneof not in names:
      message.oneof_decl.add(name=oneof)
      names.append(oneof)
    field.oneof_index = names.index(oneof)
  if is_map:
    # A map is a repeated nested "<Name>Entry" message (key = 1, value = 2).
    entry = message.nested_type.add(name="".join(p.title() for p in name.split("_")) + "Entry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_FIELD.TYPE_STRING, label=_FIELD.LABEL_OPTIONAL)
    entry.field.add(
      name="value",
      number=2,
      type=_FIELD.TYPE_MESSAGE,
      type_name=_type_name(type_),
      label=_FIELD.LABEL_OPTIONAL,
    )
    field.type, field.type_name = _FIELD.TYPE_MESSAGE, f"{_type_name(path)}.{entry.name}"
  elif type_ in _SCALARS:
    field.type = _SCALARS[type_]
  else:
    field.type, field.type_name = _FIELD.TYPE_MESSAGE, _type_name(type_)


@functools.lru_cache(maxsize=1)
def _classes() -> Dict[str, type]:
  pool = descriptor_pool.DescriptorPool()
  pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
  schema = descriptor_pb2.FileDescriptorProto(
    name="hubkit/safety/saved_model_subset.proto",
    package=PACKAGE,
    syntax="proto3",
    dependency=[any_pb2.DESCRIPTOR.name],
  )
  built = {}
  for path in sorted(SCHEMA, key=lambda p: p.count(".")):
    parent, _, leaf = path.rpartition(".")
    container = built[parent].nested_type if parent else schema.message_type
    built[path] = container.add(name=leaf)
  for path, lines in SCHEMA.items():
    for line in lines:
      _add_field(built[path], path, line)
  pool.Add(schema)
  return {
    path: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{path}"))
    for path in SCHEMA
  }


def message_class(name: str) -> type:
  """The message class for a SCHEMA name (e.g. "SavedModel", "AssetFileDef")."""
  return _classes()[name]
