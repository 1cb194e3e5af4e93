"""Direct tests of hubkit.module.metadata: the one writer and reader of hubkit.json."""

import json
import os

import pytest
import tensorflow as tf

from hubkit.module import metadata
from hubkit.errors import UsageError
from hubkit.utils.digest import sha256_file


def _save_module(path):
  module = tf.train.Checkpoint()
  module.v = tf.Variable([[1.0, 2.0]], trainable=True)
  module.frozen = tf.Variable(3.0, trainable=False)
  module.variables = [module.v, module.frozen]
  module.trainable_variables = [module.v]
  module.__call__ = tf.function(
    lambda x, training=False: tf.matmul(x, module.v, transpose_b=True) * module.frozen,
    input_signature=[tf.TensorSpec([None, 2], tf.float32), tf.TensorSpec([], tf.bool)],
  )
  tf.saved_model.save(module, path)
  return path


def test_write_metadata_records_interface_files_and_caller_info(tmp_path):
  path = _save_module(str(tmp_path / "m"))
  record = metadata.write_metadata(path, {"source": {"kind": "test"}, "outputs": "caller wins"})
  with open(os.path.join(path, "assets.extra", "hubkit.json"), encoding="utf-8") as f:
    assert json.load(f) == record
  assert record["source"] == {"kind": "test"} and record["outputs"] == "caller wins"
  assert record["inputs"] == [{"dtype": "float32", "shape": [None, 2]}]
  assert record["num_variables"] == 2 and record["num_trainable_variables"] == 1
  assert record["num_parameters"] == 3 and record["variable_bytes"] == 12
  assert record["num_regularization_losses"] == 0 and record["custom_ops"] == []
  assert record["tensorflow_version"] == tf.__version__
  assert set(record["files"]) == {
    f for f in os.listdir(path) if os.path.isfile(os.path.join(path, f))
  } | {"variables/variables.index", "variables/variables.data-00000-of-00001"}
  assert record["files"]["saved_model.pb"] == sha256_file(os.path.join(path, "saved_model.pb"))
  assert metadata.read_metadata(path) == record
  assert "3 parameters, 2 variables (1 trainable)" in metadata.export_summary(path)


def test_read_metadata_refuses_malformed_records(tmp_path):
  assert metadata.read_metadata(str(tmp_path)) is None
  extra = tmp_path / "assets.extra"
  extra.mkdir()
  (extra / "hubkit.json").write_text("{not json")
  with pytest.raises(UsageError, match="not valid JSON"):
    metadata.read_metadata(str(tmp_path))
  (extra / "hubkit.json").write_text('{"files": []}')
  with pytest.raises(UsageError, match="not a hubkit metadata object"):
    metadata.read_metadata(str(tmp_path))


def test_sha256_file_reads_in_chunks(tmp_path):
  (tmp_path / "f").write_bytes(b"abc" * 1000)
  import hashlib

  assert sha256_file(str(tmp_path / "f"), chunk_size=7) == hashlib.sha256(b"abc" * 1000).hexdigest()
