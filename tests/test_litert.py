"""LiteRT variants: conversion with parity, refusal of string ops, publishing
and serving with `?lite-format=tflite`."""

import os
import urllib.error
import urllib.request

import numpy as np
import pytest

import helpers
import hostile_modules
import hubkit
from hubkit.registry import card
from hubkit.registry import http_server
from hubkit.formats import litert
from hubkit import modules
from hubkit.safety import ops


@pytest.fixture(scope="module")
def library(tmp_path_factory):
  root = tmp_path_factory.mktemp("litert")
  configs = {
    "mlp_feature_vector": {"input_dim": 32, "hidden_units": [64, 16], "dropout_rate": 0.2},
    # Convolutions and batch normalization (moving statistics in inference).
    "image_feature_vector": {"filters": [4, 8], "num_features": 6},
    "text_embedding": {"vocabulary": ["good", "bad", "film"], "dim": 4},
  }
  return {n: modules.export_module(n, str(root / n), config=c) for n, c in configs.items()}


def _run(path, **feed):
  interpreter = litert.interpreter_class()(model_path=path)
  return interpreter.get_signature_runner("serving_default")(**feed)


@pytest.mark.parametrize("name", ["mlp_feature_vector", "image_feature_vector"])
def test_dense_and_batch_norm_modules_convert_with_parity(library, tmp_path, name):
  output = str(tmp_path / f"{name}.tflite")
  result = hubkit.convert_module(library[name], output)
  assert result.path == output and os.path.getsize(output) == result.bytes
  assert result.max_rel_diff <= result.tolerance == litert.TOLERANCES["none"]
  assert "ai_edge_litert" in result.interpreter
  # Parity measured here again, on inputs of another batch size.
  import tensorflow as tf

  obj = tf.saved_model.load(library[name])
  shape = [3] + obj.__call__.concrete_functions[0].structured_input_signature[0][0].shape[1:]
  shape = [d if d is not None else 5 for d in shape]
  x = np.random.default_rng(1).random(shape, dtype=np.float32)
  lite = _run(output, inputs=x)
  (got,) = lite.values()
  np.testing.assert_allclose(got, obj(x, training=False).numpy(), rtol=1e-4, atol=1e-5)


def test_dynamic_range_quantization_shrinks_within_tolerance(library, tmp_path):
  plain = hubkit.convert_module(library["mlp_feature_vector"], str(tmp_path / "f.tflite"))
  small = hubkit.convert_module(
    library["mlp_feature_vector"], str(tmp_path / "q.tflite"), quantization="dynamic"
  )
  assert small.bytes < 0.6 * plain.bytes
  assert 0 < small.max_rel_diff <= litert.TOLERANCES["dynamic"]


def test_string_ops_are_refused_with_the_op_named(library, tmp_path, capsys):
  output = tmp_path / "text.tflite"
  with pytest.raises(hubkit.HubkitError, match=r"no LiteRT kernel for .*StringSplitV2"):
    hubkit.convert_module(library["text_embedding"], str(output))
  assert not output.exists() and os.listdir(tmp_path) == []
  err = helpers.cli_error(
    capsys, ["convert", library["text_embedding"], f"--output={output}"], code=1
  )
  assert "StringSplitV2" in err
  err = helpers.cli_error(
    capsys, ["convert", library["mlp_feature_vector"], f"--output={tmp_path / 'm.onnx'}"]
  )
  assert "must end in .tflite" in err


def test_a_hostile_module_is_never_loaded(tmp_path):
  marker = str(tmp_path / "marker")
  hostile_modules.call_writes(str(tmp_path / "hostile"), marker)
  with pytest.raises(ops.UnsafeModuleError):
    hubkit.convert_module(str(tmp_path / "hostile"), str(tmp_path / "h.tflite"))
  assert not os.path.exists(marker) and not os.path.exists(tmp_path / "h.tflite")


def test_cli_writes_a_valid_lite_card(library, tmp_path, capsys):
  from hubkit import cli

  output = tmp_path / "features.tflite"
  argv = ["hubkit", "convert", library["image_feature_vector"], f"--output={output}"]
  assert cli.main([*argv, "--handle=me/features/1"]) == 0
  assert "outputs within" in capsys.readouterr().out
  card_path = tmp_path / "features.md"
  text = card_path.read_text()
  assert text.splitlines()[0] == "# Lite me/features/1/float32/1"
  assert "<!-- parent-model: me/features/1 -->" in text
  assert card.validate_card(str(card_path)) == []


def _get(url):
  return urllib.request.urlopen(url, timeout=10)


def test_publish_with_litert_and_fetch_it_with_lite_format(library, tmp_path):
  root = str(tmp_path / "registry")
  hubkit.publish_module(library["image_feature_vector"], root, "me/features/1", formats=["litert"])
  hubkit.publish_module(library["mlp_feature_vector"], root, "me/mlp/1")
  version_dir = os.path.join(root, "me", "features", "1.d")
  assert card.validate_card(os.path.join(version_dir, "lite.md")) == []
  lite_card = open(os.path.join(version_dir, "lite.md")).read()
  assert "outputs equal the SavedModel's within" in lite_card
  with open(os.path.join(version_dir, "model.tflite"), "rb") as f:
    published = f.read()
  with http_server.serving(root) as server:
    with _get(f"{server.url}/me/features/1?lite-format=tflite") as response:
      assert response.headers["Content-Type"] == "application/octet-stream"
      etag = response.headers["ETag"].strip('"')
      body = response.read()
    assert body == published
    assert etag == open(os.path.join(version_dir, "model.tflite.sha256")).read().split()[0]
    with pytest.raises(urllib.error.HTTPError) as missing:
      _get(f"{server.url}/me/mlp/1?lite-format=tflite")
    assert missing.value.code == 404 and b"--formats=litert" in missing.value.read()
    with pytest.raises(urllib.error.HTTPError) as bad:
      _get(f"{server.url}/me/features/1?lite-format=onnx")
    assert bad.value.code == 400
  # A module that cannot convert is not published at all.
  with pytest.raises(hubkit.HubkitError, match="StringSplitV2"):
    hubkit.publish_module(library["text_embedding"], root, "me/text/1", formats=["litert"])
  assert not os.path.exists(os.path.join(root, "me", "text"))
  with pytest.raises(hubkit.UsageError, match="valid: litert"):
    hubkit.publish_module(library["mlp_feature_vector"], root, "me/mlp/2", formats=["tfjs"])
  assert not os.path.exists(os.path.join(root, "me", "mlp", "2"))
