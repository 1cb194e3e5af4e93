"""The op scan reads saved_model.pb with its own schema: same fields as
TensorFlow's, and no TensorFlow import on the fetch path."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

import hubkit
from hubkit.safety import ops
from hubkit.safety import proto_schema


def _tensorflow_descriptor(path):
  return saved_model_pb2.SavedModel.DESCRIPTOR.file.pool.FindMessageTypeByName(f"tensorflow.{path}")


@pytest.mark.parametrize("path", sorted(proto_schema.SCHEMA))
def test_every_declared_field_is_tensorflows(path):
  ours = proto_schema.message_class(path).DESCRIPTOR
  theirs = _tensorflow_descriptor(path)
  assert ours.full_name == theirs.full_name
  for field in ours.fields:
    real = theirs.fields_by_name[field.name]
    assert (field.number, field.type, field.is_repeated) == (
      real.number,
      real.type,
      real.is_repeated,
    )
    assert (field.message_type and field.message_type.full_name) == (
      real.message_type and real.message_type.full_name
    )
    if real.containing_oneof is not None:
      assert field.containing_oneof.name == real.containing_oneof.name
  # Every member of a oneof we declare is declared, so "last one wins"
  # resolves as TensorFlow's parser resolves it.
  for oneof in ours.oneofs:
    assert {f.name for f in oneof.fields} == {
      f.name for f in theirs.oneofs_by_name[oneof.name].fields if f.type != f.TYPE_ENUM
    }


def _module(tmp_path):
  class Reader(tf.Module):
    def __init__(self, vocab):
      super().__init__()
      self.vocab = tf.saved_model.Asset(vocab)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
      return x * tf.cast(tf.strings.length(tf.io.read_file(self.vocab.asset_path)), tf.float32)

  vocab = tmp_path / "vocab.txt"
  vocab.write_text("a\nb\n")
  path = str(tmp_path / "module")
  tf.saved_model.save(Reader(str(vocab)), path)
  return path


def test_scan_reads_the_same_as_with_tensorflows_classes(tmp_path):
  path = _module(tmp_path)
  ours, full = ops.parse(path), ops.parse(path, full=True)
  # Nothing is lost: the fields left out of the schema survive as unknown fields.
  assert saved_model_pb2.SavedModel.FromString(ours.SerializeToString()) == full
  graph = full.meta_graphs[0].graph_def
  assert [n.op for f in graph.library.function for n in f.node_def] == [
    n.op for f in ours.meta_graphs[0].graph_def.library.function for n in f.node_def
  ]
  assert ops.scan(path)[0] == []  # ReadFile of its own asset is allowed


def test_tf1_asset_collection_is_read_by_either_schema():
  packed = meta_graph_pb2.CollectionDef()
  packed.any_list.value.add().Pack(meta_graph_pb2.AssetFileDef(filename="../../etc/passwd"))
  proto = saved_model_pb2.SavedModel()
  proto.meta_graphs.add().collection_def["saved_model_assets"].CopyFrom(packed)
  ours = proto_schema.message_class("SavedModel").FromString(proto.SerializeToString())
  for parsed in (ours, proto):
    assets = ops._asset_file_defs(parsed.meta_graphs[0])
    assert [a.filename for a in assets] == ["../../etc/passwd"]


_FRESH_RESOLVE = """
import json, sys
import hubkit
path = hubkit.resolve(sys.argv[1])
print(json.dumps({"path": path, "tensorflow": "tensorflow" in sys.modules}))
"""


def test_fetching_and_scanning_do_not_import_tensorflow(tmp_path):
  module = hubkit.export_module("mul", str(tmp_path / "mul"))
  archive = hubkit.pack_module(module, str(tmp_path / "mul.tar.gz"))
  env = dict(os.environ, TFHUB_CACHE_DIR=str(tmp_path / "cache"))
  out = subprocess.run(
    [sys.executable, "-c", _FRESH_RESOLVE, archive],
    env=env,
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result["tensorflow"] is False
  assert os.path.isfile(os.path.join(result["path"], "saved_model.pb"))
  assert os.path.isfile(result["path"] + ".manifest.json")  # scanned and recorded
