"""Task contracts (`hubkit check --api`): every clause passes a module that
keeps it and fails one that breaks it, naming what the module returned.

The passing modules include ones hubkit did not write: Keras 3 applications
(MobileNetV3) and a KerasHub BERT backbone and tokenizer built from their
configs (no weights are downloaded), exported with hubkit's exporters.
tf-models-official cannot install beside TensorFlow 2.21 (its newest
release, 2.20.0, pins TensorFlow 2.20), so Model Garden's export is not
among them.
"""

import numpy as np
import pytest
import tensorflow as tf

import hubkit
from hubkit import cli
from hubkit import modules
from hubkit.checker import apis
from hubkit.checker import runner
from hubkit.checker.context import Context
from hubkit.errors import UsageError

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")

_IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32)
_STRINGS = tf.TensorSpec([None], tf.string)
_VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz")
_VOCABULARY += ["the", "quick", "fox", "##s", "dog", "long", "sentence", "about", "brown", "."]


def _save(path, call, specs, variables=(), traced_training=True, **functions):
  """A low-level module: `call(inputs, training)` traced for each spec."""
  obj = tf.train.Checkpoint()
  obj.held = list(variables)
  if traced_training:
    obj.__call__ = tf.function(lambda inputs, training=False: call(inputs, training))
  else:
    obj.__call__ = tf.function(lambda inputs: call(inputs, False))
  for spec in specs:
    for training in (True, False) if traced_training else (None,):
      kwargs = {} if training is None else {"training": training}
      obj.__call__.get_concrete_function(spec, **kwargs)
  for name, function in functions.items():
    setattr(obj, name, function)
  obj.variables = list(variables)
  obj.trainable_variables = [v for v in variables if v.trainable]
  obj.regularization_losses = []
  tf.saved_model.save(obj, path)
  return path


def _run(path, rule_ids):
  """The results of the given rules on the module at `path`, prerequisites passed."""
  ctx = Context(path, path)
  every = {r.id: r for r in runner.rules(rule_ids[0].split(".")[1])}
  done = {r: "pass" for r in every}
  return {r.id: r for r in runner.run_rules(ctx, [every[i] for i in rule_ids], done)}


def _assert(results, rule_id, status, *fragments):
  result = results[rule_id]
  assert result.status == status, (rule_id, result.message)
  for fragment in fragments:
    assert fragment in result.message, (rule_id, result.message)


# Modules hubkit did not write, and ones that break a clause.


@pytest.fixture(scope="session")
def made(tmp_path_factory):
  import keras

  root = tmp_path_factory.mktemp("contracts")
  paths = {}
  dense = tf.Variable(np.linspace(-1, 1, 3 * 4, dtype=np.float32).reshape(3, 4), name="dense")

  def pooled(x):
    return tf.reduce_mean(x, axis=[1, 2])

  keras.utils.set_random_seed(0)
  feature_vector = keras.applications.MobileNetV3Small(
    input_shape=(96, 96, 3),
    weights=None,
    include_top=False,
    pooling="avg",
    include_preprocessing=False,
    minimalistic=True,
  )
  paths["mobilenet_features"] = hubkit.export_keras_submodel(feature_vector, str(root / "mnf"))
  softmax = keras.applications.MobileNetV3Small(
    input_shape=(96, 96, 3),
    weights=None,
    classes=5,
    include_preprocessing=False,
    minimalistic=True,
  )
  paths["mobilenet_softmax"] = hubkit.export_keras_submodel(softmax, str(root / "mns"))
  paths["library_images"] = modules.export_module(
    "image_feature_vector", str(root / "lib_images"), config={"filters": [4, 6], "num_features": 5}
  )
  paths["library_text"] = modules.export_module(
    "text_embedding", str(root / "lib_text"), config={"vocabulary": ["hello", "world"], "dim": 4}
  )
  paths["mlp"] = modules.export_module(
    "mlp_feature_vector", str(root / "mlp"), config={"input_dim": 5, "hidden_units": [4]}
  )
  paths["feature_map"] = _save(str(root / "feature_map"), lambda x, t: x * 2.0, [_IMAGES])
  paths["output_dropout"] = _save(
    str(root / "output_dropout"),
    lambda x, t: tf.nn.dropout(pooled(x) + 1.0, 0.5) if t else pooled(x) + 1.0,
    [_IMAGES],
  )
  paths["softmax"] = _save(
    str(root / "softmax"),
    lambda x, t: tf.nn.softmax(tf.matmul(pooled(x), dense)),
    [_IMAGES],
    [dense],
  )
  paths["logits"] = _save(
    str(root / "logits"), lambda x, t: tf.matmul(pooled(x), dense), [_IMAGES], [dense]
  )
  moving_mean = tf.Variable(tf.zeros([3]), trainable=False, name="bn/moving_mean")
  moving_variance = tf.Variable(tf.ones([3]), trainable=False, name="bn/moving_variance")
  paths["frozen_batch_norm"] = _save(
    str(root / "frozen_batch_norm"),
    lambda x, t: pooled((x - moving_mean) / tf.sqrt(moving_variance + 1e-3)),
    [_IMAGES],
    [moving_mean, moving_variance],
  )

  def hashed(strings, t):
    words = tf.strings.split(strings)
    buckets = tf.strings.to_hash_bucket_fast(words, 3)
    return tf.reduce_mean(tf.gather(dense, buckets), axis=1)  # NaN for no words

  paths["nan_on_empty"] = _save(str(root / "nan_on_empty"), hashed, [_STRINGS], [dense])
  paths["text_per_word"] = _save(
    str(root / "text_per_word"),
    lambda s, t: tf.stack([tf.strings.to_hash_bucket_fast(s, 7)] * 2, axis=1),
    [_STRINGS],
  )
  paths["encoder"], paths["preprocessor"] = _keras_hub_pair(root)
  paths.update(_hand_written_text_modules(root))
  return paths


def _keras_hub_pair(root):
  from hubkit.exporters import keras_hub_text

  backbone = keras_hub.models.BertBackbone(
    vocabulary_size=len(_VOCABULARY),
    num_layers=2,
    num_heads=2,
    hidden_dim=16,
    intermediate_dim=32,
    max_sequence_length=128,
  )
  tokenizer = keras_hub.models.BertTokenizer(vocabulary=_VOCABULARY, lowercase=True)
  return (
    keras_hub_text.export_text_encoder(backbone, str(root / "bert_encoder")),
    keras_hub_text.export_text_preprocessor(tokenizer, str(root / "bert_preprocessor")),
  )


def _hand_written_text_modules(root):
  """Preprocessors and encoders, each breaking one clause of text.md."""
  paths = {}
  ids = tf.TensorSpec([None, None], tf.int32)
  table = tf.Variable(tf.random.stateless_normal([40, 8], seed=[1, 2]), name="word_embeddings")

  def tokenize(strings):
    return tf.cast(tf.strings.to_hash_bucket_fast(tf.strings.split(strings), 30) + 5, tf.int32)

  def pack(segments, seq_length, mark_second=True):
    word_ids = tf.concat([tf.fill([segments[0].nrows(), 1], 2)] + list(segments), axis=1)
    types = tf.concat(
      [tf.zeros_like(word_ids[:, :1])]
      + [tf.ones_like(s) * (i if mark_second else 0) for i, s in enumerate(segments)],
      axis=1,
    )
    dense_ids = word_ids.to_tensor(0, shape=[None, seq_length])
    return {
      "input_word_ids": dense_ids,
      "input_mask": tf.cast(dense_ids > 0, tf.int32),
      "input_type_ids": types.to_tensor(0, shape=[None, seq_length]),
    }

  def preprocessor(name, dtype=tf.int32, mark_second=True, ragged=True):
    def dense_tokenize(strings):
      return tokenize(strings).to_tensor()

    tok = tf.function(tokenize if ragged else dense_tokenize, input_signature=[_STRINGS])
    packer = tf.function(lambda segments, seq_length=16: pack(segments, seq_length, mark_second))
    for n in (1, 2):
      packer.get_concrete_function([tf.RaggedTensorSpec([None, None], tf.int32)] * n, 16)

    def call(strings, t):
      return {k: tf.cast(v, dtype) for k, v in pack([tokenize(strings)], 16).items()}

    return _save(str(root / name), call, [_STRINGS], tokenize=tok, bert_pack_inputs=packer)

  paths["int64_preprocessor"] = preprocessor("int64_preprocessor", dtype=tf.int64)
  paths["dense_tokenize"] = preprocessor("dense_tokenize", ragged=False)
  paths["unmarked_pairs"] = preprocessor("unmarked_pairs", mark_second=False)

  def encoder(name, spec=ids, full=True, use_mask=True):
    def call(inputs, t):
      vectors = tf.gather(table, tf.cast(inputs["input_word_ids"], tf.int32) % 40)
      mask = tf.cast(inputs["input_mask" if use_mask else "input_type_ids"] * 0 + 1, tf.float32)
      mask = tf.cast(inputs["input_mask"], tf.float32) if use_mask else mask
      mask = mask[..., None]
      pooled = tf.reduce_sum(vectors * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
      if not full:
        return {"pooled_output": pooled, "sequence_output": vectors}
      return {
        "pooled_output": pooled,
        "default": pooled,
        "sequence_output": vectors,
        "encoder_outputs": [vectors],
      }

    spec = {k: spec for k in ("input_word_ids", "input_mask", "input_type_ids")}
    return _save(str(root / name), call, [spec], [table])

  paths["hand_encoder"] = encoder("hand_encoder")
  paths["int64_encoder"] = encoder("int64_encoder", spec=tf.TensorSpec([None, None], tf.int64))
  paths["two_output_encoder"] = encoder("two_output_encoder", full=False)
  paths["maskless_encoder"] = encoder("maskless_encoder", use_mask=False)
  return paths


# Images (images.md).


def test_image_feature_vectors_keep_the_contract(made):
  ids = [
    "api.image_feature_vector.input",
    "api.image_feature_vector.output",
    "api.image_feature_vector.no_output_dropout",
    "api.image_feature_vector.batch_norm",
  ]
  mobilenet = _run(made["mobilenet_features"], ids)
  _assert(mobilenet, ids[0], "pass", "float32(None, 96, 96, 3)", "fixed size")
  _assert(mobilenet, ids[1], "pass", "float32 [batch, 576]", "96x96")
  _assert(mobilenet, ids[2], "pass")
  _assert(mobilenet, ids[3], "pass", "batch statistics")
  library = _run(made["library_images"], ids)
  _assert(library, ids[0], "pass", "variable size")
  _assert(library, ids[1], "pass", "[batch, 5]", "64x64 and 96x96")
  assert all(r.status == "pass" for r in library.values()), library


def test_image_clauses_fail_with_what_the_module_returned(made):
  _assert(
    _run(made["mlp"], ["api.image_feature_vector.input"]),
    "api.image_feature_vector.input",
    "fail",
    "takes float32(None, 5)",
    "[None, height, width, 3]",
  )
  _assert(
    _run(made["feature_map"], ["api.image_feature_vector.output"]),
    "api.image_feature_vector.output",
    "fail",
    "returned float32[1, 64, 64, 3]",
    "float32 [batch, num_features]",
  )
  _assert(
    _run(made["output_dropout"], ["api.image_feature_vector.no_output_dropout"]),
    "api.image_feature_vector.no_output_dropout",
    "fail",
    "applies dropout to its output",
  )
  for task in ("image_feature_vector", "image_classification"):
    rule_id = f"api.{task}.batch_norm"
    _assert(_run(made["frozen_batch_norm"], [rule_id]), rule_id, "fail", "does not use the batch")
    _assert(_run(made["logits"], [rule_id]), rule_id, "skip", "no batch normalization")


def test_image_classifiers_must_return_logits(made):
  ids = [
    "api.image_classification.input",
    "api.image_classification.output",
    "api.image_classification.logits",
  ]
  logits = _run(made["logits"], ids)
  _assert(logits, ids[1], "pass", "logits [batch, 4]")
  _assert(logits, ids[2], "pass", "do not sum to 1")
  # Keras' applications end in a softmax unless told otherwise.
  softmax = _run(made["mobilenet_softmax"], ids)
  _assert(softmax, ids[1], "pass", "[batch, 5]")
  _assert(softmax, ids[2], "fail", "every row of the 5 scores", "softmax probabilities")
  _assert(
    _run(made["mlp"], ["api.image_classification.input"]),
    "api.image_classification.input",
    "fail",
    "[None, height, width, 3]",
  )
  _assert(
    _run(made["feature_map"], ["api.image_classification.output"]),
    "api.image_classification.output",
    "fail",
    "float32 [batch, num_classes]",
  )


# Text (text.md).


def test_text_embeddings_keep_the_contract_or_say_why_not(made):
  ids = ["api.text_embedding.input", "api.text_embedding.output", "api.text_embedding.edge_strings"]
  library = _run(made["library_text"], ids)
  _assert(library, ids[0], "pass", "string[None]")
  _assert(library, ids[1], "pass", "float32 [batch, 4]")
  _assert(library, ids[2], "pass", "non-ASCII")
  _assert(_run(made["mlp"], ids[:1]), ids[0], "fail", "one string [batch] tensor")
  _assert(_run(made["encoder"], ids[:1]), ids[0], "fail", "api=text_encoder")
  _assert(_run(made["text_per_word"], ids[1:2]), ids[1], "fail", "returned int64[3, 2]")
  nan = _run(made["nan_on_empty"], ids)
  _assert(nan, ids[1], "pass")
  _assert(nan, ids[2], "fail", "non-finite")


def test_bert_style_preprocessors_keep_the_contract(made):
  ids = [
    "api.text_preprocessor.outputs",
    "api.text_preprocessor.tokenize",
    "api.text_preprocessor.bert_pack_inputs",
  ]
  for name in ("preprocessor", "unmarked_pairs"):
    results = _run(made[name], ids[:2])
    _assert(results, ids[0], "pass", "int32 [batch,")
    _assert(results, ids[1], "pass", "int32 RaggedTensor")
  _assert(_run(made["preprocessor"], ids[2:]), ids[2], "pass", "int32 [batch, 16]")
  _assert(
    _run(made["int64_preprocessor"], ids[:1]), ids[0], "fail", "int64", "int32 [batch, seq_length]"
  )
  _assert(
    _run(made["dense_tokenize"], ids[1:2]),
    ids[1],
    "fail",
    "tokenize returned int32[",
    "RaggedTensor",
  )
  _assert(_run(made["unmarked_pairs"], ids[2:]), ids[2], "fail", "second segment")
  _assert(_run(made["library_text"], ids[:1]), ids[0], "fail", "returned float32[6, 4]")


def test_bert_style_encoders_keep_the_contract(made):
  ids = ["api.text_encoder.inputs", "api.text_encoder.outputs", "api.text_encoder.padding"]
  for name in ("encoder", "hand_encoder"):
    results = _run(made[name], ids)
    assert all(r.status == "pass" for r in results.values()), results
  bert = _run(made["encoder"], ids[1:2])
  _assert(bert, ids[1], "pass", "[batch, 16]", "2 encoder_outputs")
  _assert(
    _run(made["int64_encoder"], ids[:1]), ids[0], "fail", "int64", "int32 [batch, seq_length]"
  )
  _assert(_run(made["library_text"], ids[:1]), ids[0], "fail", "string")
  _assert(
    _run(made["two_output_encoder"], ids[1:2]),
    ids[1],
    "fail",
    "dict(pooled_output: float32[2, 8]",
    "encoder_outputs",
  )
  _assert(_run(made["maskless_encoder"], ids[2:]), ids[2], "fail", "changes pooled_output by")


def test_the_keras_hub_pair_plugs_together_as_tf_hub_documents(made):
  preprocessor = tf.saved_model.load(made["preprocessor"])
  encoder = tf.saved_model.load(made["encoder"])
  texts = tf.constant(["the quick fox", "dogs", ""])
  inputs = preprocessor(texts)
  assert inputs["input_word_ids"].shape == [3, 128]
  outputs = encoder(inputs)
  assert outputs["default"].shape == [3, 16]
  np.testing.assert_array_equal(outputs["default"], outputs["pooled_output"])
  np.testing.assert_array_equal(outputs["encoder_outputs"][-1], outputs["sequence_output"])
  # Two segments: [CLS] the quick fox [SEP] dogs [SEP], then padding.
  pair = preprocessor.bert_pack_inputs(
    [preprocessor.tokenize(texts[:1]), preprocessor.tokenize(texts[1:2])], seq_length=9
  )
  np.testing.assert_array_equal(pair["input_word_ids"], [[2, 31, 32, 33, 3, 35, 34, 3, 0]])
  np.testing.assert_array_equal(pair["input_type_ids"], [[0, 0, 0, 0, 0, 1, 1, 1, 0]])
  np.testing.assert_array_equal(pair["input_mask"], [[1] * 8 + [0]])
  # Too long: both segments are cut to fit.
  cut = preprocessor.bert_pack_inputs([preprocessor.tokenize(texts[:1])] * 2, seq_length=6)
  np.testing.assert_array_equal(cut["input_word_ids"], [[2, 31, 32, 3, 31, 3]])


# Choosing the task.


def test_the_task_comes_from_api_or_the_card(tmp_path):
  assert apis.parse_api("image-feature-vector") == "image_feature_vector"
  assert apis.parse_api("text-preprocessing") == "text_preprocessor"
  with pytest.raises(UsageError, match="valid: image_feature_vector, image_classification"):
    apis.parse_api("object-detection")
  card = tmp_path / "README.md"
  card.write_text("# Module me/x/1\nA thing.\n<!-- task: image-classification-logits -->\n")
  assert apis.resolve_api(None, str(card), "ignored") == "image_classification"
  assert apis.resolve_api("text_embedding", str(card), "ignored") == "text_embedding"
  # Older cards say module-type; a task without a contract names none.
  card.write_text("# Module me/x/1\nA thing.\n<!-- module-type: text-embedding -->\n")
  assert apis.resolve_api(None, str(card), "ignored") == "text_embedding"
  card.write_text("# Module me/x/1\nA thing.\n<!-- task: audio-embedding -->\n")
  assert apis.resolve_api(None, str(card), "ignored") is None
  # A registry root keeps the card of ROOT/p/n/1 in ROOT/p/n/1.d/README.md.
  (tmp_path / "1").write_bytes(b"archive")
  (tmp_path / "1.d").mkdir()
  (tmp_path / "1.d" / "README.md").write_text("<!-- task: text-preprocessing -->\n")
  assert apis.resolve_api(None, None, str(tmp_path / "1.tar.gz")) == "text_preprocessor"


@pytest.mark.slow
def test_check_holds_a_module_to_its_card_task_and_the_cli_to_its_flag(made, tmp_path, capsys):
  card = tmp_path / "README.md"
  card.write_text("# Module me/features/1\nFeatures.\n<!-- task: image-feature-vector -->\n")
  report = hubkit.check_module(made["library_images"], card=str(card))
  assert report.conforms, report.table()
  assert report.result("api.image_feature_vector.output").status == "pass"
  assert report.figures["api"] == "image_feature_vector"
  assert not any(r.id.startswith("api.text") for r in report.results)
  # Confined, through the command line: a softmax classifier breaks one clause.
  code = cli.main(["hubkit", "check", made["softmax"], "--api=image_classification"])
  out = capsys.readouterr().out
  assert code == 1 and "api.image_classification.logits" in out and "softmax" in out
  assert cli.main(["hubkit", "check", made["softmax"], "--api=segmentation"]) == 2
  assert (
    "--api=segmentation is not a task hubkit has a contract for; valid:" in capsys.readouterr().err
  )


@pytest.mark.slow
def test_the_text_pair_passes_every_rule_confined(made):
  for name, api in (("preprocessor", "text_preprocessor"), ("encoder", "text_encoder")):
    report = hubkit.check_module(made[name], api=api)
    assert report.conforms, report.table()
    assert [r.status for r in report.results if r.id.startswith("api.")] == ["pass"] * 3
