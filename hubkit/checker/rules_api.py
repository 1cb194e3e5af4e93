"""api.*: what a module promises its task (TF Hub's Common SavedModel APIs).

Run only for the task the check was asked about (`api=`, or the card's
task); `apis.py` names the tasks and their sources. Each rule is one clause
of a contract and says what the module returned and what the contract wants.
"""

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from hubkit.checker.context import Context
from hubkit.checker.rule_table import RuleFailed, RuleSkipped, rule
from hubkit.checker.rules_behavior import looks_like_probabilities, op_types
from hubkit.module import interface

_IMAGES = ("image_feature_vector", "image_classification")
_BERT_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
_ENCODER_OUTPUTS = ("pooled_output", "sequence_output", "default", "encoder_outputs")
# Sizes tried for an image dimension the module leaves open.
_OPEN_SIZES = (64, 96)
_SENTENCES = ("A long sentence about a quick brown fox.", "single-word", "http://example.com")
# The empty string and text beyond ASCII: accents, CJK, an emoji.
_EDGE_STRINGS = ("", "naïve café", "東京の天気 🙂")


def _describe(value: Any) -> str:
  """`float32[3, 8]`, `dict(a: int32[2, 4], ...)`: what a call returned."""
  if isinstance(value, tf.RaggedTensor):
    return f"ragged {value.dtype.name}{value.shape}"
  if tf.is_tensor(value):
    return f"{value.dtype.name}{list(value.shape)}"
  if isinstance(value, dict):
    return "dict(" + ", ".join(f"{k}: {_describe(v)}" for k, v in sorted(value.items())) + ")"
  if isinstance(value, (list, tuple)):
    return f"{type(value).__name__}[" + ", ".join(_describe(v) for v in value) + "]"
  return type(value).__name__


def _input_specs(ctx: Context) -> List[Any]:
  """The distinct input structures `__call__` was traced for."""
  seen, specs = set(), []
  for trace in interface.call_traces(ctx.obj.__call__):
    key = repr(trace.inputs)
    if key not in seen:
      seen.add(key)
      specs.append(trace.inputs)
  return specs


def _call(ctx: Context, obj: Any, inputs: Any, training: bool = False) -> Any:
  return interface.call(obj, inputs, training=training, **ctx.arguments)


def _float_matrix(value: Any, what: str, rows: int) -> int:
  """Fails unless `value` is a float32 [rows, n] tensor; returns n."""
  if not tf.is_tensor(value) or isinstance(value, tf.RaggedTensor):
    raise RuleFailed(f"returned {_describe(value)}; the contract wants one float32 {what}")
  if value.dtype != tf.float32 or value.shape.rank != 2 or value.shape[0] != rows:
    raise RuleFailed(
      f"returned {_describe(value)} for a batch of {rows}; the contract wants float32 {what}"
    )
  if not np.all(np.isfinite(value.numpy())):
    raise RuleFailed(f"returned non-finite values ({_describe(value)})")
  return int(value.shape[1])


# Images (images.md): input, output, batch norm, and the output's own rules.


def _image_spec(ctx: Context) -> tf.TensorSpec:
  specs = _input_specs(ctx)
  single = [s for s in specs if isinstance(s, tf.TensorSpec)]
  if len(single) != len(specs) or not single:
    raise RuleFailed(
      f"__call__ takes {_describe_specs(specs)}; the contract wants one float32 "
      "[batch, height, width, 3] tensor of images"
    )
  for spec in single:
    shape = spec.shape
    if spec.dtype != tf.float32 or shape.rank != 4 or shape[-1] != 3 or shape[0] is not None:
      raise RuleFailed(
        f"__call__ takes {spec.dtype.name}{shape}; the contract wants float32 "
        "[None, height, width, 3] (RGB in [0, 1], any batch size)"
      )
  return single[0]


def _describe_specs(specs: Sequence[Any]) -> str:
  def one(structure):
    return tf.nest.map_structure(
      lambda s: f"{s.dtype.name}{s.shape}" if hasattr(s, "dtype") else repr(s), structure
    )

  return ", ".join(str(one(s)) for s in specs) or "nothing"


def _image_sizes(spec: tf.TensorSpec) -> List[Tuple[int, int]]:
  height, width = spec.shape[1], spec.shape[2]
  if height is not None and width is not None:
    return [(height, width)]
  return [(height or size, width or size) for size in _OPEN_SIZES]


def _images(batch: int, size: Tuple[int, int], seed: int = 0) -> tf.Tensor:
  rng = np.random.default_rng(seed)
  return tf.constant(rng.uniform(0.0, 1.0, (batch, *size, 3)).astype(np.float32))


def _image_input(ctx: Context) -> str:
  spec = _image_spec(ctx)
  size = _image_sizes(spec)[0]
  for name, value in (("black", 0.0), ("white", 1.0)):
    out = tf.nest.flatten(_call(ctx, ctx.obj, tf.fill([2, *size, 3], value)))
    if not all(np.all(np.isfinite(np.asarray(t))) for t in out if tf.is_tensor(t)):
      raise RuleFailed(f"an all-{name} image (every value {value:g}) gives non-finite outputs")
  sizes = "fixed" if spec.shape[1] is not None and spec.shape[2] is not None else "variable"
  return f"takes float32{spec.shape} ({sizes} size); RGB in [0, 1] gives finite outputs"


def _image_output(ctx: Context, what: str) -> Tuple[str, List[np.ndarray]]:
  spec = _image_spec(ctx)
  widths, outputs = set(), []
  for size in _image_sizes(spec):
    for batch in (1, 3):
      out = _call(ctx, ctx.obj, _images(batch, size))
      widths.add(_float_matrix(out, what, batch))
      outputs.append(out.numpy())
  if len(widths) > 1:
    raise RuleFailed(
      f"the output width changes with the input ({sorted(widths)}); the contract wants a "
      "constant independent of batch and image size"
    )
  sizes = " and ".join(f"{h}x{w}" for h, w in _image_sizes(spec))
  return f"float32 [batch, {widths.pop()}] for batches of 1 and 3 at {sizes}", outputs


def _has_batch_norm(ctx: Context) -> bool:
  names = [v.name for v in ctx.obj.variables]
  if any("moving_mean" in n or "moving_variance" in n for n in names):
    return True
  concrete = interface.concrete_for(ctx.obj.__call__, True) or interface.concrete_for(
    ctx.obj.__call__, None
  )
  ops = op_types(concrete) if concrete is not None else set()
  return any(op.startswith("FusedBatchNorm") for op in ops)


def _batch_norm(ctx: Context) -> str:
  if not _has_batch_norm(ctx):
    raise RuleSkipped("the module has no batch normalization")
  if interface.concrete_for(ctx.obj.__call__, True) is None:
    raise RuleFailed(
      "the module has batch normalization but __call__ has no training=True trace, so "
      "fine-tuning cannot use batch statistics"
    )
  images = _images(4, _image_sizes(_image_spec(ctx))[0], seed=1)
  with ctx.borrowed() as obj:
    inference = np.asarray(tf.nest.flatten(_call(ctx, obj, images))[0])
    training = np.asarray(tf.nest.flatten(_call(ctx, obj, images, training=True))[0])
  if np.allclose(inference, training, rtol=1e-5, atol=1e-6):
    raise RuleFailed(
      "training=True returns what training=False does on the same batch: batch "
      "normalization does not use the batch's statistics when fine-tuned"
    )
  return "batch normalization uses batch statistics under training=True"


for _task in _IMAGES:
  rule(
    f"api.{_task}.input",
    "Takes float32 [batch, height, width, 3] images in [0, 1]",
    fix="trace __call__ for tf.TensorSpec([None, H, W, 3], tf.float32) (H, W may be None) and "
    "scale pixels inside the module, not before it (images.md: Image input).",
    requires=("interface.call",),
  )(_image_input)


@rule(
  "api.image_feature_vector.output",
  "Returns float32 [batch, num_features]",
  fix="pool or flatten away the spatial dimensions and return one float32 "
  "[batch, num_features] tensor (images.md: Image Feature Vector).",
  requires=("api.image_feature_vector.input",),
)
def check_feature_vector_output(ctx: Context):
  message, _ = _image_output(ctx, "[batch, num_features]")
  return message


@rule(
  "api.image_feature_vector.no_output_dropout",
  "No dropout on the output features",
  fix="remove dropout after the last layer; the consumer decides on dropout (images.md: Notes).",
  requires=("api.image_feature_vector.output",),
)
def check_no_output_dropout(ctx: Context):
  if interface.concrete_for(ctx.obj.__call__, True) is None:
    raise RuleSkipped("__call__ has no training=True trace")
  images = _images(4, _image_sizes(_image_spec(ctx))[0], seed=2)
  with ctx.borrowed() as obj:
    inference = _call(ctx, obj, images).numpy()
    first, second = (_call(ctx, obj, images, training=True).numpy() for _ in range(2))
  dropped = np.mean((first == 0) & (inference != 0))
  if dropped > 0.05 and not np.array_equal(first, second):
    raise RuleFailed(
      f"training=True zeroes {dropped:.0%} of the features that inference returns, at "
      "random: the module applies dropout to its output"
    )
  return "training=True does not drop output features"


@rule(
  "api.image_classification.output",
  "Returns float32 [batch, num_classes]",
  fix="return one float32 [batch, num_classes] tensor (images.md: Image Classification).",
  requires=("api.image_classification.input",),
)
def check_classification_output(ctx: Context):
  message, _ = _image_output(ctx, "[batch, num_classes]")
  return message.replace("float32 [batch,", "logits [batch,")


@rule(
  "api.image_classification.logits",
  "Returns logits, not probabilities",
  fix="export the layer before the softmax (or build it with activation=None); consumers "
  "apply softmax or sigmoid themselves (images.md: Image Classification).",
  requires=("api.image_classification.output",),
)
def check_logits(ctx: Context):
  _, outputs = _image_output(ctx, "[batch, num_classes]")
  scores = np.concatenate(outputs)
  if looks_like_probabilities(scores):
    raise RuleFailed(
      f"every row of the {scores.shape[1]} scores is non-negative and sums to 1: the module "
      "returns softmax probabilities; the contract wants logits"
    )
  return f"scores range over [{scores.min():.3g}, {scores.max():.3g}]; rows do not sum to 1"


for _task in _IMAGES:
  rule(
    f"api.{_task}.batch_norm",
    "Batch normalization follows `training`",
    fix="trace __call__ for training=True and pass `training` to every BatchNormalization "
    "layer (images.md: API details).",
    requires=("interface.call",),
  )(_batch_norm)


# Text embeddings from text (text.md).


def _string_batch_spec(ctx: Context) -> None:
  specs = _input_specs(ctx)
  for spec in specs:
    if isinstance(spec, dict) and set(_BERT_INPUTS) <= set(spec):
      raise RuleFailed(
        f"__call__ takes {_describe_specs([spec])}: that is an encoder of preprocessed "
        "inputs; check it with api=text_encoder"
      )
    if not (
      isinstance(spec, tf.TensorSpec)
      and spec.dtype == tf.string
      and spec.shape.rank == 1
      and spec.shape[0] is None
    ):
      raise RuleFailed(
        f"__call__ takes {_describe_specs(specs)}; the contract wants one string [batch] tensor"
      )


@rule(
  "api.text_embedding.input",
  "Takes a string [batch] tensor",
  fix="trace __call__ for tf.TensorSpec([None], tf.string) and tokenize inside the module "
  "(text.md: Text Embedding from Text Inputs).",
  requires=("interface.call",),
)
def check_text_input(ctx: Context):
  _string_batch_spec(ctx)
  return "__call__ takes string[None]"


def _embed(ctx: Context, texts: Sequence[str]) -> int:
  out = _call(ctx, ctx.obj, tf.constant(list(texts)))
  return _float_matrix(out, "[batch, dim] embedding", len(texts))


@rule(
  "api.text_embedding.output",
  "Returns float32 [batch, dim]",
  fix="return one float32 [batch, dim] tensor, one row per input string "
  "(text.md: Text Embedding from Text Inputs).",
  requires=("api.text_embedding.input",),
)
def check_text_output(ctx: Context):
  dims = {_embed(ctx, _SENTENCES), _embed(ctx, _SENTENCES[:1])}
  if len(dims) > 1:
    raise RuleFailed(f"the embedding width changes with the batch ({sorted(dims)})")
  return f"float32 [batch, {dims.pop()}] for batches of 3 and 1"


@rule(
  "api.text_embedding.edge_strings",
  "Embeds the empty string and non-ASCII text",
  fix="handle empty token lists (e.g. an all-zero or <UNK> embedding) and decode inputs as "
  "UTF-8 (text.md: the text inputs are UTF-8 encoded strings).",
  requires=("api.text_embedding.output",),
)
def check_edge_strings(ctx: Context):
  try:
    width = _embed(ctx, _EDGE_STRINGS)
  except (tf.errors.OpError, ValueError) as e:
    raise RuleFailed(f"{list(_EDGE_STRINGS)} raise {type(e).__name__}: {str(e)[:160]}") from e
  if width != _embed(ctx, _SENTENCES):
    raise RuleFailed("the empty and non-ASCII strings get embeddings of another width")
  return f"the empty string and non-ASCII text get finite float32 [3, {width}] embeddings"


# BERT-style preprocessors and encoders (text.md: Transformer Encoders).


def _bert_dict(value: Any, rows: int, seq_length: Any = None) -> Tuple[int, Dict[str, np.ndarray]]:
  """Fails unless `value` holds the three int32 [rows, seq_length] inputs."""
  wanted = "a dict of int32 [batch, seq_length] " + ", ".join(_BERT_INPUTS)
  if not isinstance(value, dict) or not set(_BERT_INPUTS) <= set(value):
    raise RuleFailed(f"returned {_describe(value)}; the contract wants {wanted}")
  lengths = set()
  for key in _BERT_INPUTS:
    tensor = value[key]
    if (
      not tf.is_tensor(tensor)
      or isinstance(tensor, tf.RaggedTensor)
      or tensor.dtype != tf.int32
      or tensor.shape.rank != 2
      or tensor.shape[0] != rows
    ):
      raise RuleFailed(
        f"{key} is {_describe(tensor)} for {rows} inputs; the contract wants {wanted}"
      )
    lengths.add(int(tensor.shape[1]))
  if len(lengths) > 1:
    raise RuleFailed(f"the three inputs have different lengths ({sorted(lengths)})")
  length = lengths.pop()
  if seq_length is not None and length != seq_length:
    raise RuleFailed(f"seq_length={seq_length} gave sequences of {length}")
  return length, {k: value[k].numpy() for k in _BERT_INPUTS}


def _check_mask(arrays: Dict[str, np.ndarray]) -> None:
  mask = arrays["input_mask"]
  if not np.isin(mask, (0, 1)).all():
    raise RuleFailed(
      f"input_mask holds {sorted(set(mask.ravel().tolist()))[:5]}; it must be 0 or 1"
    )
  if (np.diff(mask, axis=1) > 0).any() or (mask[:, 0] != 1).any():
    raise RuleFailed("input_mask is not 1 for the tokens and 0 for the padding after them")


@rule(
  "api.text_preprocessor.outputs",
  "Maps string [batch] to int32 input_word_ids, input_mask, input_type_ids",
  fix="return dict(input_word_ids=..., input_mask=..., input_type_ids=...), each int32 "
  "[batch, seq_length] (text.md: Transformer Encoders, Preprocessor).",
  requires=("interface.call",),
)
def check_preprocessor_outputs(ctx: Context):
  _string_batch_spec(ctx)
  texts = tf.constant(list(_SENTENCES + _EDGE_STRINGS))
  length, arrays = _bert_dict(_call(ctx, ctx.obj, texts), len(_SENTENCES + _EDGE_STRINGS))
  _check_mask(arrays)
  if arrays["input_type_ids"].any():
    raise RuleFailed("input_type_ids is not 0 everywhere for single-segment inputs")
  if interface.concrete_for(ctx.obj.__call__, True) is not None:
    _, trained = _bert_dict(_call(ctx, ctx.obj, texts, training=True), texts.shape[0])
    if any(not np.array_equal(arrays[k], trained[k]) for k in _BERT_INPUTS):
      raise RuleFailed("training=True changes the preprocessing; it must have no effect")
  return f"int32 [batch, {length}] input_word_ids, input_mask, input_type_ids (also for '' and non-ASCII)"


def _tokenized(ctx: Context, texts: Sequence[str]) -> tf.RaggedTensor:
  tokenize = getattr(ctx.obj, "tokenize", None)
  if tokenize is None or not callable(tokenize):
    raise RuleFailed("the preprocessor has no callable `tokenize`")
  tokens = interface.call(tokenize, tf.constant(list(texts)))
  if not isinstance(tokens, tf.RaggedTensor) or tokens.dtype != tf.int32:
    raise RuleFailed(
      f"tokenize returned {_describe(tokens)}; the contract wants an int32 RaggedTensor "
      "[batch, (tokens)]"
    )
  if tokens.shape[0] != len(texts) or tokens.shape[1:].num_elements() is not None:
    raise RuleFailed(
      f"tokenize returned shape {tokens.shape}: only ragged dimensions may follow batch"
    )
  return tokens


@rule(
  "api.text_preprocessor.tokenize",
  "`tokenize`: string [batch] to int32 RaggedTensor [batch, (tokens)]",
  fix="save a `tokenize` tf.function on the root object, traced for tf.TensorSpec([None], "
  "tf.string), returning the token ids as an int32 RaggedTensor (text.md: Details of tokenize).",
  requires=("interface.call",),
)
def check_tokenize(ctx: Context):
  tokens = _tokenized(ctx, _SENTENCES + _EDGE_STRINGS)
  return f"tokenize returns an int32 RaggedTensor with {tokens.ragged_rank} ragged dimension(s)"


@rule(
  "api.text_preprocessor.bert_pack_inputs",
  "`bert_pack_inputs`: segments to fixed-length encoder inputs",
  fix="save a `bert_pack_inputs` tf.function taking a list of tokenized segments and "
  "seq_length, returning the three int32 [batch, seq_length] inputs, segment 2 marked by "
  "input_type_ids 1 (text.md: Details of bert_pack_inputs).",
  requires=("api.text_preprocessor.tokenize",),
)
def check_bert_pack_inputs(ctx: Context):
  pack = getattr(ctx.obj, "bert_pack_inputs", None)
  if pack is None or not callable(pack):
    raise RuleFailed("the preprocessor has no callable `bert_pack_inputs`")
  first, second = _tokenized(ctx, _SENTENCES), _tokenized(ctx, _SENTENCES[::-1])
  seq_length = 16
  try:
    packed = pack([first, second], seq_length=seq_length)
  except (TypeError, ValueError) as e:
    raise RuleFailed(
      f"bert_pack_inputs([a, b], seq_length={seq_length}) raises {type(e).__name__}: "
      f"{str(e).splitlines()[0][:160]}"
    ) from e
  _, arrays = _bert_dict(packed, len(_SENTENCES), seq_length)
  _check_mask(arrays)
  types = arrays["input_type_ids"]
  if not np.isin(types, (0, 1)).all() or not (types == 1).any(axis=1).all():
    raise RuleFailed("input_type_ids does not mark the second segment with 1 in every packed pair")
  if (types * (1 - arrays["input_mask"])).any():
    raise RuleFailed("input_type_ids is not 0 on the padding")
  return f"two segments pack into int32 [batch, {seq_length}] with segment ids 0 and 1"


def _encoder_spec(ctx: Context) -> Dict[str, Any]:
  for spec in _input_specs(ctx):
    if isinstance(spec, dict) and set(_BERT_INPUTS) <= set(spec):
      bad = [
        f"{k}: {spec[k].dtype.name}{spec[k].shape}"
        for k in _BERT_INPUTS
        if spec[k].dtype != tf.int32 or spec[k].shape.rank != 2
      ]
      if bad:
        raise RuleFailed(
          f"__call__ takes {', '.join(bad)}; the contract wants int32 [batch, seq_length]"
        )
      return spec
  raise RuleFailed(
    f"__call__ takes {_describe_specs(_input_specs(ctx))}; the contract wants a dict of int32 "
    f"[batch, seq_length] {', '.join(_BERT_INPUTS)}"
  )


def _vocabulary_size(ctx: Context) -> int:
  """The rows of the word embedding (the largest 2-D variable named *embed*)."""
  rows = [
    int(v.shape[0])
    for v in ctx.obj.variables
    if v.shape.rank == 2 and "embed" in v.name.lower() and "position" not in v.name.lower()
  ]
  return max(rows) if rows else 2


def _encoder_inputs(ctx: Context, spec: Dict[str, Any], padding: int = 0) -> Dict[str, tf.Tensor]:
  length = spec["input_word_ids"].shape[1] or 16
  rng = np.random.default_rng(3)
  ids = rng.integers(1, min(_vocabulary_size(ctx), 100), (2, length)).astype(np.int32)
  mask = np.ones((2, length), np.int32)
  mask[:, length - padding :] = 0
  ids[mask == 0] = 0
  types = np.zeros((2, length), np.int32)
  types[:, length // 2 :] = 1
  types[mask == 0] = 0
  return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


@rule(
  "api.text_encoder.inputs",
  "Takes int32 input_word_ids, input_mask, input_type_ids",
  fix="trace __call__ for a dict of tf.TensorSpec([None, seq_length], tf.int32) named "
  "input_word_ids, input_mask and input_type_ids (text.md: Transformer Encoders, Encoder).",
  requires=("interface.call",),
)
def check_encoder_inputs(ctx: Context):
  spec = _encoder_spec(ctx)
  length = spec["input_word_ids"].shape[1]
  return f"__call__ takes the three int32 [batch, {length or 'seq_length'}] inputs"


@rule(
  "api.text_encoder.outputs",
  "Returns pooled_output, sequence_output, encoder_outputs and default",
  fix="return dict(pooled_output=[batch, dim], sequence_output=[batch, seq_length, dim], "
  "encoder_outputs=[one [batch, seq_length, dim] per layer], default=pooled_output), all "
  "float32 (text.md: Encoder, Details).",
  requires=("api.text_encoder.inputs",),
)
def check_encoder_outputs(ctx: Context):
  spec = _encoder_spec(ctx)
  inputs = {k: tf.constant(v) for k, v in _encoder_inputs(ctx, spec).items()}
  out = _call(ctx, ctx.obj, inputs)
  if not isinstance(out, dict) or not set(_ENCODER_OUTPUTS) <= set(out):
    raise RuleFailed(
      f"returned {_describe(out)}; the contract wants a dict with {', '.join(_ENCODER_OUTPUTS)}"
    )
  length = inputs["input_word_ids"].shape[1]
  dim = _float_matrix(out["pooled_output"], "[batch, dim] pooled_output", 2)
  if _float_matrix(out["default"], "[batch, dim] default", 2) != dim:
    raise RuleFailed(
      f"default is {_describe(out['default'])}; it must be [batch, {dim}] like pooled_output"
    )
  layers = out["encoder_outputs"]
  for name, tensor in [("sequence_output", out["sequence_output"])] + [
    (f"encoder_outputs[{i}]", t)
    for i, t in enumerate(layers if isinstance(layers, (list, tuple)) else [layers])
  ]:
    if (
      not tf.is_tensor(tensor)
      or tensor.dtype != tf.float32
      or tensor.shape.as_list() != [2, length, dim]
    ):
      raise RuleFailed(
        f"{name} is {_describe(tensor)}; the contract wants float32 [2, {length}, {dim}]"
      )
  if not isinstance(layers, (list, tuple)) or not layers:
    raise RuleFailed(
      f"encoder_outputs is {_describe(layers)}; the contract wants a list, one per layer"
    )
  return f"pooled_output and default [batch, {dim}], sequence_output and {len(layers)} encoder_outputs [batch, {length}, {dim}]"


@rule(
  "api.text_encoder.padding",
  "Padding (input_mask 0) does not change pooled_output",
  fix="mask attention with input_mask, so the tokens after the text do not reach the "
  "outputs (text.md: input_mask is 0 for the padding tokens).",
  requires=("api.text_encoder.outputs",),
)
def check_encoder_padding(ctx: Context):
  spec = _encoder_spec(ctx)
  inputs = _encoder_inputs(ctx, spec, padding=4)
  other = dict(inputs, input_word_ids=inputs["input_word_ids"].copy())
  other["input_word_ids"][inputs["input_mask"] == 0] = 1
  pooled = [
    _call(ctx, ctx.obj, {k: tf.constant(v) for k, v in x.items()})["pooled_output"].numpy()
    for x in (inputs, other)
  ]
  change = float(np.max(np.abs(pooled[0] - pooled[1])))
  if change > 1e-4 * max(1.0, float(np.max(np.abs(pooled[0])))):
    raise RuleFailed(
      f"changing the word ids where input_mask is 0 changes pooled_output by {change:.3g}"
    )
  return f"the padding's word ids change pooled_output by {change:.2g}"
