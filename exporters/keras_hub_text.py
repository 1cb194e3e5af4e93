"""KerasHub text models as TF Hub's BERT-style module pair.

TF Hub's text encoders come in two SavedModels (tensorflow/hub
`docs/common_saved_model_apis/text.md`, "Transformer Encoders"): a
preprocessor (strings to `input_word_ids`, `input_mask`, `input_type_ids`,
with `tokenize` and `bert_pack_inputs`) and an encoder (those inputs to
`pooled_output`, `sequence_output`, `encoder_outputs`, `default`). KerasHub
names the same things `token_ids`, `padding_mask`, `segment_ids`; these
exporters translate, so a KerasHub backbone and tokenizer (pre-trained or
built from a config) reach every TF Hub consumer.

Example:

```python
import keras_hub
from hubkit.exporters import keras_hub_text

vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "fox"]
backbone = keras_hub.models.BertBackbone(
    vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=16,
    intermediate_dim=32, max_sequence_length=128)
keras_hub_text.export_text_encoder(backbone, "/tmp/bert_encoder", overwrite=True)
tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
keras_hub_text.export_text_preprocessor(tokenizer, "/tmp/bert_preprocessor", overwrite=True)
```
"""

from typing import Any, Dict, List

import tensorflow as tf

from hubkit.errors import UsageError
from hubkit.exporters.keras3_module import Keras3Module
from hubkit.module.reusable import ReusableModule

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
# KerasHub's input name for each TF Hub one.
_KERAS_HUB_INPUTS = {
  "input_word_ids": "token_ids",
  "input_mask": "padding_mask",
  "input_type_ids": "segment_ids",
}
_INT_SEQUENCE = tf.TensorSpec([None, None], tf.int32)


def _transformer_outputs(backbone: Any) -> List[Any]:
  """The output of each transformer layer of a functional KerasHub backbone."""
  import keras_hub

  layers = [
    layer for layer in backbone.layers if isinstance(layer, keras_hub.layers.TransformerEncoder)
  ]
  if not layers:
    raise UsageError(
      f"{type(backbone).__name__} has no keras_hub.layers.TransformerEncoder layers; pass a "
      "Transformer encoder backbone such as keras_hub.models.BertBackbone."
    )
  return [layer.output for layer in layers]


class TextEncoderModule(Keras3Module):
  """A KerasHub Transformer backbone behind TF Hub's encoder API.

  `__call__({"input_word_ids", "input_mask", "input_type_ids"}, training)`
  returns `pooled_output` and `default` ([batch, dim]), `sequence_output`
  ([batch, seq_length, dim]) and `encoder_outputs` (one such tensor per
  transformer layer, the last equal to `sequence_output`).

  Args:
    backbone: a functional KerasHub backbone taking `token_ids` and
      `padding_mask` (and `segment_ids` where it has segment embeddings),
      returning `sequence_output` and `pooled_output`.
  """

  def __init__(self, backbone: Any):
    import keras

    names = {t.name for t in backbone.inputs} if isinstance(backbone.input, dict) else set()
    missing = {"token_ids", "padding_mask"} - names
    outputs = backbone.output if isinstance(backbone.output, dict) else {}
    if missing or not {"sequence_output", "pooled_output"} <= set(outputs):
      raise UsageError(
        f"{type(backbone).__name__} takes {sorted(names) or backbone.input} and returns "
        f"{sorted(outputs) or backbone.output}; export_text_encoder needs a backbone taking "
        "token_ids and padding_mask and returning sequence_output and pooled_output."
      )
    object.__setattr__(self, "_hubkit_has_segments", "segment_ids" in names)
    inner = keras.Model(
      backbone.input,
      {
        "pooled_output": outputs["pooled_output"],
        "encoder_outputs": _transformer_outputs(backbone),
      },
    )
    super().__init__(inner, [{name: _INT_SEQUENCE for name in INPUT_NAMES}])

  def call(self, inputs, training):
    renamed = {
      _KERAS_HUB_INPUTS[name]: inputs[name]
      for name in INPUT_NAMES
      if name != "input_type_ids" or self._hubkit_has_segments
    }
    outputs = self._hubkit_model(renamed, training=training)
    layers = list(outputs["encoder_outputs"])
    return {
      "pooled_output": outputs["pooled_output"],
      "default": outputs["pooled_output"],
      "sequence_output": layers[-1],
      "encoder_outputs": layers,
    }


class TextPreprocessorModule(ReusableModule):
  """A KerasHub word-piece tokenizer behind TF Hub's BERT preprocessor API.

  `__call__(strings)` returns the three int32 [batch, seq_length] encoder
  inputs of single segments; `tokenize(strings)` the token ids as an int32
  RaggedTensor [batch, (tokens)]; `bert_pack_inputs(segments, seq_length)`
  packs one or two tokenized segments as BERT does: [CLS] a [SEP] b [SEP],
  each segment trimmed to a fair share of `seq_length`, then padding.

  Args:
    tokenizer: a KerasHub tokenizer with `cls_token_id`, `sep_token_id` and
      `pad_token_id` (keras_hub.models.BertTokenizer and its kin).
    seq_length: the length `__call__` packs to.
  """

  def __init__(self, tokenizer: Any, seq_length: int = 128):
    ids = {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("cls", "sep", "pad")}
    if None in ids.values() or seq_length < 3:
      raise UsageError(
        f"{type(tokenizer).__name__} lacks a [CLS], [SEP] or [PAD] token, or `seq_length`="
        f"{seq_length} < 3; pass a BERT-style tokenizer and a seq_length of 3 or more."
      )
    super().__init__(input_signatures=[tf.TensorSpec([None], tf.string)])
    object.__setattr__(self, "_hubkit_tokenizer", tokenizer)
    object.__setattr__(self, "_hubkit_ids", ids)
    object.__setattr__(self, "_hubkit_seq_length", seq_length)
    self.tokenize = tf.function(self._tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    self.bert_pack_inputs = tf.function(self._pack)
    for segments in (1, 2):
      self.bert_pack_inputs.get_concrete_function(
        [tf.RaggedTensorSpec([None, None], tf.int32)] * segments, tf.TensorSpec([], tf.int32)
      )

  def _tokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
    return tf.cast(self._hubkit_tokenizer(strings), tf.int32)

  def _pack(self, segments: List[tf.RaggedTensor], seq_length: tf.Tensor) -> Dict[str, tf.Tensor]:
    import tensorflow_text as tf_text

    flat = [s.merge_dims(1, -1) if s.ragged_rank > 1 else s for s in segments]
    # Room for [CLS] and one [SEP] per segment; the rest is shared round-robin.
    budget = tf.cast(seq_length, tf.int32) - 1 - len(flat)
    trimmed = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(flat)
    ids, types = tf_text.combine_segments(
      trimmed,
      start_of_sequence_id=self._hubkit_ids["cls"],
      end_of_segment_id=self._hubkit_ids["sep"],
    )
    word_ids, mask = tf_text.pad_model_inputs(
      ids, max_seq_length=seq_length, pad_value=self._hubkit_ids["pad"]
    )
    type_ids, _ = tf_text.pad_model_inputs(types, max_seq_length=seq_length)
    return {
      "input_word_ids": tf.cast(word_ids, tf.int32),
      "input_mask": tf.cast(mask, tf.int32),
      "input_type_ids": tf.cast(type_ids, tf.int32),
    }

  def call(self, inputs, training):
    del training  # preprocessing does not depend on the mode (text.md)
    return self._pack([self._tokenize(inputs)], tf.constant(self._hubkit_seq_length))


def export_text_encoder(backbone: Any, export_dir: str, overwrite: bool = False) -> str:
  """Exports a KerasHub Transformer backbone as a TF Hub text encoder.

  Args:
    backbone: see `TextEncoderModule`.
    export_dir: the SavedModel directory to create.
    overwrite: replace an existing `export_dir`.

  Returns:
    The absolute path of the export.

  Raises:
    UsageError: the backbone is not a Transformer encoder, or `export_dir`
      exists without `overwrite`.
  """
  return TextEncoderModule(backbone).export(
    export_dir,
    overwrite=overwrite,
    source={"kind": "keras_hub_text_encoder", "class": type(backbone).__name__},
  )


def export_text_preprocessor(
  tokenizer: Any, export_dir: str, seq_length: int = 128, overwrite: bool = False
) -> str:
  """Exports a KerasHub BERT-style tokenizer as a TF Hub text preprocessor.

  The module needs tensorflow_text where it is loaded, as TF Hub's BERT
  preprocessors do.

  Args:
    tokenizer: see `TextPreprocessorModule`.
    export_dir: the SavedModel directory to create.
    seq_length: the length `__call__` packs to.
    overwrite: replace an existing `export_dir`.

  Returns:
    The absolute path of the export.

  Raises:
    UsageError: the tokenizer lacks BERT's special tokens, or `export_dir`
      exists without `overwrite`.
  """
  return TextPreprocessorModule(tokenizer, seq_length).export(
    export_dir,
    overwrite=overwrite,
    source={"kind": "keras_hub_text_preprocessor", "class": type(tokenizer).__name__},
  )
