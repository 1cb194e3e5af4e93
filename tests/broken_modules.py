"""A corpus of deliberately broken modules, one defect each.

They are built with bare `tf.train.Checkpoint` + `tf.function` +
`tf.saved_model.save`, because `hubkit.ReusableModule` prevents most of these
mistakes. `BROKEN[name]` is (builder, the rule ids expected to fail, the rule
ids expected to warn).
"""

import os

import tensorflow as tf

SPEC = tf.TensorSpec([None, 3], tf.float32)


def _base():
  obj = tf.train.Checkpoint()
  obj.w = tf.Variable([[1.0], [2.0], [3.0]], name="w")
  obj.b = tf.Variable([0.5], name="b")
  return obj


def _finish(
  obj,
  path,
  call,
  specs=(SPEC,),
  trainings=(True, False),
  variables=None,
  trainable=None,
  losses=None,
):
  obj.__call__ = tf.function(call)
  for spec in specs:
    for training in trainings:
      obj.__call__.get_concrete_function(spec, training=training)
  obj.variables = variables if variables is not None else [obj.w, obj.b]
  obj.trainable_variables = trainable if trainable is not None else [obj.w, obj.b]
  if losses is None:
    losses = [tf.function(lambda: 0.01 * tf.reduce_sum(tf.square(obj.w)), input_signature=[])]
  obj.regularization_losses = losses
  for loss in losses:
    if not loss.input_signature:
      loss.get_concrete_function()
  tf.saved_model.save(obj, path)
  return path


def valid(path):
  obj = _base()
  return _finish(obj, path, lambda x, training=False: tf.matmul(x, obj.w) + obj.b)


def missing_training_trace(path):
  obj = _base()
  return _finish(
    obj, path, lambda x, training=False: tf.matmul(x, obj.w) + obj.b, trainings=(False,)
  )


def defined_batch_dimension(path):
  obj = _base()
  return _finish(
    obj,
    path,
    lambda x, training=False: tf.matmul(x, obj.w) + obj.b,
    specs=(tf.TensorSpec([4, 3], tf.float32),),
  )


def regularization_loss_with_argument(path):
  obj = _base()
  loss = tf.function(
    lambda scale: scale * tf.reduce_sum(tf.square(obj.w)),
    input_signature=[tf.TensorSpec([], tf.float32)],
  )
  loss.get_concrete_function()
  return _finish(obj, path, lambda x, training=False: tf.matmul(x, obj.w) + obj.b, losses=[loss])


def trainable_missing_from_variables(path):
  obj = _base()
  return _finish(
    obj, path, lambda x, training=False: tf.matmul(x, obj.w) + obj.b, variables=[obj.w]
  )


def variable_read_but_not_listed(path):
  obj = _base()
  return _finish(
    obj,
    path,
    lambda x, training=False: tf.matmul(x, obj.w) + obj.b,
    variables=[obj.w],
    trainable=[obj.w],
  )


def nondeterministic_inference(path):
  obj = _base()
  return _finish(
    obj,
    path,
    lambda x, training=False: tf.matmul(x, obj.w) + obj.b + tf.random.uniform([1], 0.0, 1e-3),
  )


def non_finite_outputs(path):
  obj = _base()
  return _finish(obj, path, lambda x, training=False: tf.math.log(tf.matmul(x, obj.w) - 100.0))


def softmax_outputs(path):
  obj = tf.train.Checkpoint()
  obj.w = tf.Variable(tf.ones([3, 4]), name="w")
  obj.b = tf.Variable(tf.zeros([4]), name="b")
  return _finish(obj, path, lambda x, training=False: tf.nn.softmax(tf.matmul(x, obj.w) + obj.b))


def read_file_op(path):
  obj = _base()

  def call(x, training=False):
    # The file is never read for ordinary inputs, but the op ships in the graph.
    extra = tf.cond(
      tf.reduce_sum(x) < -1e9,
      lambda: tf.cast(tf.strings.length(tf.io.read_file("config.txt")), tf.float32),
      lambda: tf.constant(0.0),
    )
    return tf.matmul(x, obj.w) + obj.b + extra

  return _finish(obj, path, call)


def print_op(path):
  obj = _base()

  def call(x, training=False):
    tf.print("inputs:", x)
    return tf.matmul(x, obj.w) + obj.b

  return _finish(obj, path, call)


def leaked_path(path):
  obj = _base()

  def call(x, training=False):
    name = tf.constant("/home/alice/projects/secret/vocab.txt")
    return tf.matmul(x, obj.w) + obj.b + 0.0 * tf.cast(tf.strings.length(name), tf.float32)

  return _finish(obj, path, call)


def stray_file(path):
  valid(path)
  with open(os.path.join(path, "notes.txt"), "w") as f:
    f.write("left over")
  return path


def symlinked_file(path):
  valid(path)
  os.rename(os.path.join(path, "fingerprint.pb"), os.path.join(path, "..", "fingerprint.pb"))
  os.symlink(
    os.path.abspath(os.path.join(path, "..", "fingerprint.pb")),
    os.path.join(path, "fingerprint.pb"),
  )
  return path


def garbage_saved_model(path):
  valid(path)
  with open(os.path.join(path, "saved_model.pb"), "wb") as f:
    f.write(b"\x08\x96\x01 this is not a SavedModel proto")
  return path


def inference_updates_state(path):
  obj = _base()
  obj.count = tf.Variable(0.0, trainable=False, name="count")

  def call(x, training=False):
    if not training:
      obj.count.assign_add(1.0)  # batch-norm-like state updated in inference: wrong
    out = tf.matmul(x, obj.w) + obj.b
    return tf.nn.dropout(out, 0.5) if training else out

  return _finish(obj, path, call, variables=[obj.w, obj.b, obj.count])


def trainable_variable_unused(path):
  obj = _base()
  obj.unused = tf.Variable([1.0], name="unused")
  return _finish(
    obj,
    path,
    lambda x, training=False: tf.matmul(x, obj.w) + obj.b,
    variables=[obj.w, obj.b, obj.unused],
    trainable=[obj.w, obj.b, obj.unused],
  )


def no_call(path):
  obj = _base()
  fn = tf.function(lambda x: {"out": tf.matmul(x, obj.w)}, input_signature=[SPEC])
  tf.saved_model.save(obj, path, signatures={"serving_default": fn.get_concrete_function()})
  return path


def text_mean_of_no_words(path):
  """string [None] -> float32 [None, 3]: a vocabulary table and the mean of
  the words' embeddings, which is NaN for the empty string (zero words)."""
  vocabulary = path + "_vocab.txt"
  words = ["[PAD]", "<unk>", "##ing", "apple", "banana", "cherry", "river", "stone", "light"]
  with open(vocabulary, "w", encoding="utf-8") as f:
    f.write("\n".join(words) + "\n")
  obj = tf.train.Checkpoint()
  obj.vocab = tf.saved_model.Asset(vocabulary)
  obj.table = tf.lookup.StaticHashTable(
    tf.lookup.TextFileInitializer(
      obj.vocab,
      tf.string,
      tf.lookup.TextFileIndex.WHOLE_LINE,
      tf.int64,
      tf.lookup.TextFileIndex.LINE_NUMBER,
    ),
    -1,
  )
  obj.embeddings = tf.Variable(tf.random.stateless_normal([len(words), 3], seed=[1, 2]))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def call(text):
    # Unknown words would look up row -1 and fail: the sample sentences must
    # be made of the vocabulary's own words.
    ids = obj.table.lookup(tf.strings.split(text))
    tf.debugging.assert_non_negative(ids.flat_values)
    vectors = tf.ragged.map_flat_values(tf.gather, obj.embeddings, ids)
    return tf.reduce_mean(vectors, axis=1)

  obj.__call__ = call
  obj.variables = [obj.embeddings]
  obj.trainable_variables = [obj.embeddings]
  obj.regularization_losses = []
  tf.saved_model.save(obj, path)
  return path


BROKEN = {
  "missing_training_trace": (missing_training_trace, {"interface.training_traces"}, set()),
  "defined_batch_dimension": (defined_batch_dimension, {"interface.training_traces"}, set()),
  "regularization_loss_with_argument": (
    regularization_loss_with_argument,
    {"interface.regularization_losses"},
    set(),
  ),
  "trainable_missing_from_variables": (
    trainable_missing_from_variables,
    {"interface.variables"},
    set(),
  ),
  "variable_read_but_not_listed": (variable_read_but_not_listed, {"interface.variables"}, set()),
  "nondeterministic_inference": (
    nondeterministic_inference,
    {"behavior.deterministic_inference"},
    set(),
  ),
  "non_finite_outputs": (non_finite_outputs, {"behavior.deterministic_inference"}, set()),
  "inference_updates_state": (inference_updates_state, {"behavior.training_mode"}, set()),
  "softmax_outputs": (softmax_outputs, set(), {"lint.logits"}),
  "read_file_op": (read_file_op, {"security.ops"}, set()),
  "print_op": (print_op, {"security.ops"}, set()),
  # A path that is only text reveals, it does not break: a warning. (A path
  # the module reads is a file read outside its assets: security.ops fails.)
  "leaked_path": (leaked_path, set(), {"layout.saved_model"}),
  "stray_file": (stray_file, {"layout.saved_model"}, set()),
  "symlinked_file": (symlinked_file, {"layout.saved_model"}, set()),
  # Unparseable means unscannable: both static rules fail, nothing loads it.
  "garbage_saved_model": (garbage_saved_model, {"layout.saved_model", "security.ops"}, set()),
  # Both consumers fine-tune it, so both name the variable without a gradient.
  "trainable_variable_unused": (
    trainable_variable_unused,
    {"consumer.hub_keras_layer", "consumer.keras3_layer"},
    set(),
  ),
  "no_call": (no_call, {"interface.call"}, set()),
  # An ordinary text embedding: right for sentences, NaN only for "".
  "text_mean_of_no_words": (text_mean_of_no_words, set(), {"behavior.deterministic_inference"}),
}
