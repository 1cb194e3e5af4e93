"""A corpus of hostile modules: each tries to touch the machine that checks or
loads it, by writing a marker file the tests then assert does not exist.

`HOSTILE[name](path, marker)` writes the module to `path`; `marker` is the
file it tries to create (or, for the exfiltration module, the file it tries
to copy `/etc/hostname` to).
"""

import os

import tensorflow as tf

SPEC = tf.TensorSpec([None, 3], tf.float32)


def _interface(obj, call):
  """Gives `obj` a conforming Reusable SavedModel interface around `call`."""
  obj.w = tf.Variable([[1.0], [2.0], [3.0]], name="w")
  obj.__call__ = tf.function(call)
  for training in (True, False):
    obj.__call__.get_concrete_function(SPEC, training=training)
  obj.variables = [obj.w]
  obj.trainable_variables = [obj.w]
  obj.regularization_losses = []


def call_writes(path, marker):
  """`__call__` writes a file (tf.io.write_file)."""
  obj = tf.train.Checkpoint()

  def call(x, training=False):
    tf.io.write_file(marker, "pwned")
    return tf.matmul(x, obj.w)

  _interface(obj, call)
  tf.saved_model.save(obj, path)
  return path


class _WritingResource(tf.saved_model.experimental.TrackableResource):
  """A resource whose initializer (run at load time) writes a file."""

  def __init__(self, marker):
    super().__init__()
    self._marker = marker
    self._resource_handle

  def _create_resource(self):
    return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

  def _initialize(self):
    tf.io.write_file(self._marker, "pwned")
    tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)


def initializer_writes(path, marker):
  """A resource initializer, run by every loader, writes a file."""
  obj = tf.train.Checkpoint()
  obj.resource = _WritingResource(marker)
  _interface(obj, lambda x, training=False: tf.matmul(x, obj.w))
  tf.saved_model.save(obj, path)
  return path


class _WritingSaveable(tf.Module):
  """State whose checkpoint restore function writes a file."""

  def __init__(self, marker):
    super().__init__()
    self._marker = marker

  def _serialize_to_tensors(self):
    return {"value": tf.constant(1.0)}

  def _restore_from_tensors(self, restored_tensors):
    del restored_tensors
    return tf.io.write_file(self._marker, "pwned")


def restore_writes(path, marker):
  """A saveable's restore function, run while loading, writes a file."""
  obj = tf.train.Checkpoint()
  obj.state = _WritingSaveable(marker)
  _interface(obj, lambda x, training=False: tf.matmul(x, obj.w))
  tf.saved_model.save(obj, path)
  return path


def tf1_main_op_writes(path, marker):
  """A TF1 SavedModel whose main_op (run by TF1 loaders) writes a file."""
  with tf.Graph().as_default() as graph:
    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
    w = tf.compat.v1.get_variable("w", initializer=tf.ones([3, 1]))
    y = tf.matmul(x, w)
    main_op = tf.group(
      tf.compat.v1.global_variables_initializer(), tf.io.write_file(marker, "pwned")
    )
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(tf.compat.v1.global_variables_initializer())
      builder = tf.compat.v1.saved_model.Builder(path)
      signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
      builder.add_meta_graph_and_variables(
        session, ["serve"], signature_def_map={"serving_default": signature}, main_op=main_op
      )
      builder.save()
  return path


def dataset_exfiltrates(path, marker):
  """tf.data reads /etc/hostname and writes it out as a TFRecord file."""
  obj = tf.train.Checkpoint()

  def call(x, training=False):
    lines = tf.data.TextLineDataset("/etc/hostname")
    tf.data.experimental.TFRecordWriter(marker).write(lines)
    return tf.matmul(x, obj.w)

  _interface(obj, call)
  tf.saved_model.save(obj, path)
  return path


def _edit_proto(path, edit):
  from tensorflow.core.protobuf import saved_model_pb2

  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  edit(proto)
  with open(os.path.join(path, "saved_model.pb"), "wb") as f:
    f.write(proto.SerializeToString())


def table_reads_foreign_file(path, marker):
  """A vocabulary table whose initialiser was rewired, in the proto, from the
  module's own asset to a constant path outside it (/etc/hostname)."""
  del marker
  vocabulary = os.path.join(os.path.dirname(path), "vocab.txt")
  with open(vocabulary, "w", encoding="utf-8") as f:
    f.write("a\nb\n")
  obj = tf.train.Checkpoint()
  obj.table = tf.lookup.StaticHashTable(
    tf.lookup.TextFileInitializer(
      vocabulary,
      tf.string,
      tf.lookup.TextFileIndex.WHOLE_LINE,
      tf.int64,
      tf.lookup.TextFileIndex.LINE_NUMBER,
    ),
    -1,
  )
  _interface(
    obj, lambda x, training=False: tf.matmul(x, obj.w) + tf.cast(obj.table.size(), tf.float32)
  )
  tf.saved_model.save(obj, path)

  def rewire(proto):
    for function in proto.meta_graphs[0].graph_def.library.function:
      for node in function.node_def:
        if node.op == "InitializeTableFromTextFileV2":
          const = function.node_def.add(name="foreign_path", op="Const")
          const.attr["dtype"].type = tf.string.as_datatype_enum
          const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto("/etc/hostname"))
          node.input[1] = "foreign_path:output:0"

  _edit_proto(path, rewire)
  return path


def pbtxt_writes(path, marker):
  """The `call_writes` module with its graph as saved_model.pbtxt (the loader
  reads that when saved_model.pb is absent)."""
  from google.protobuf import text_format
  from tensorflow.core.protobuf import saved_model_pb2

  call_writes(path, marker)
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  with open(os.path.join(path, "saved_model.pbtxt"), "w", encoding="utf-8") as f:
    f.write(text_format.MessageToString(proto))
  os.remove(os.path.join(path, "saved_model.pb"))
  return path


HOSTILE = {
  "call_writes": call_writes,
  "initializer_writes": initializer_writes,
  "restore_writes": restore_writes,
  "tf1_main_op_writes": tf1_main_op_writes,
  "dataset_exfiltrates": dataset_exfiltrates,
  "table_reads_foreign_file": table_reads_foreign_file,
  "pbtxt_writes": pbtxt_writes,
}
