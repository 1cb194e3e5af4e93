"""`text_embedding`: sentences to vectors, following the TF Hub common text API."""

import os
import tempfile
from typing import Sequence, Union

import tensorflow as tf

from hubkit.errors import UsageError
from hubkit.module.reusable import ReusableModule

DEFAULT_VOCABULARY = os.path.join(os.path.dirname(__file__), "data", "vocab.txt")


def _vocabulary_file(vocabulary: Union[str, Sequence[str], None]) -> str:
  if vocabulary is None:
    return DEFAULT_VOCABULARY
  if isinstance(vocabulary, str):
    if not os.path.isfile(vocabulary):
      raise UsageError(
        f"vocabulary file {vocabulary} does not exist; pass a text file "
        "with one token per line, or a list of tokens."
      )
    return vocabulary
  tokens = list(vocabulary)
  if not tokens or any(not t or any(c.isspace() for c in t) for t in tokens):
    raise UsageError(
      "vocabulary tokens must be non-empty and contain no white space; "
      "the module splits text on white space."
    )
  # The SavedModel copies the file into assets/ at export; until then it
  # lives in a private temporary directory.
  path = os.path.join(tempfile.mkdtemp(prefix="hubkit_vocab_"), "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(tokens) + "\n")
  return path


def _count_lines(path: str) -> int:
  with open(path, encoding="utf-8") as f:
    return sum(1 for line in f if line.strip())


class TextEmbedding(ReusableModule):
  """Embeds sentences as the sqrt(n)-scaled sum of their token embeddings.

  Input string `[batch]`, output float32 `[batch, dim]`. Text is lower-cased
  and split on white space; each token is looked up in the vocabulary, which
  ships inside the SavedModel as an asset file (`assets/vocab.txt`), and
  unknown tokens hash into `num_oov_buckets` extra rows instead of sharing
  one "unknown" vector. An empty string gives the zero vector.

  Example:

  ```python
  import tensorflow as tf
  from hubkit.modules.text_embedding import TextEmbedding

  module = TextEmbedding(vocabulary=["hello", "world"], dim=8)
  module(tf.constant(["hello world", "unknown words", ""])).shape  # [3, 8]
  ```

  Args:
    vocabulary: a list of tokens, a vocabulary file (one token per line), or
      None for the bundled English word list.
    dim: embedding size.
    num_oov_buckets: hash buckets for out-of-vocabulary tokens (>= 1).
    l2: weight of the L2 penalty on the embedding matrix (0 for none).
    seed: initialisation seed.
  """

  OUTPUT_NAME = "embedding"

  def __init__(
    self,
    vocabulary: Union[str, Sequence[str], None] = None,
    dim: int = 16,
    num_oov_buckets: int = 4,
    l2: float = 0.0,
    seed: int = 0,
  ):
    super().__init__(input_signatures=[tf.TensorSpec([None], tf.string)])
    if num_oov_buckets < 1:
      raise UsageError("num_oov_buckets must be at least 1 so unknown words get a vector.")
    path = _vocabulary_file(vocabulary)
    self.vocabulary_file = tf.saved_model.Asset(path)
    self.table = tf.lookup.StaticVocabularyTable(
      tf.lookup.TextFileInitializer(
        self.vocabulary_file,
        tf.string,
        tf.lookup.TextFileIndex.WHOLE_LINE,
        tf.int64,
        tf.lookup.TextFileIndex.LINE_NUMBER,
      ),
      num_oov_buckets=num_oov_buckets,
    )
    rows = _count_lines(path) + num_oov_buckets
    self.embeddings = tf.Variable(
      tf.random.stateless_normal([rows, dim], seed=[seed, 1], stddev=dim**-0.5), name="embeddings"
    )
    self.l2 = l2

  def call(self, inputs, training):
    del training  # No dropout or statistics: both modes compute the same.
    tokens = tf.strings.split(tf.strings.lower(inputs))
    ids = tf.ragged.map_flat_values(self.table.lookup, tokens)
    vectors = tf.gather(self.embeddings, ids)
    counts = tf.cast(ids.row_lengths(), tf.float32)
    return tf.reduce_sum(vectors, axis=1) / tf.sqrt(tf.maximum(counts, 1.0))[:, None]

  def regularizers(self):
    if not self.l2:
      return []
    return [lambda: self.l2 * tf.reduce_sum(tf.square(self.embeddings))]
