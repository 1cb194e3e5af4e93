"""Kaggle Models interop: the real kagglehub returns a hubkit module offline."""

import os

import numpy as np
import pytest
import tensorflow as tf

import helpers
import hostile_modules
import hubkit
from hubkit import cli
from hubkit.registry import http_server
from hubkit.registry import kaggle
from hubkit import modules
from hubkit.safety import ops

kagglehub = pytest.importorskip("kagglehub", reason="kagglehub is in the test extras")


@pytest.fixture
def offline(tmp_path, monkeypatch):
  """kagglehub's cache in tmp_path, and any request of it sent nowhere."""
  cache = tmp_path / "kagglehub"
  monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
  monkeypatch.setenv("KAGGLE_API_ENDPOINT", "http://127.0.0.1:9")
  return cache


def test_kagglehub_model_download_returns_a_published_module_offline(tmp_path, offline, capsys):
  module = modules.export_module(
    "mlp_feature_vector", str(tmp_path / "mlp"), config={"input_dim": 6, "hidden_units": [4]}
  )
  root = str(tmp_path / "registry")
  hubkit.publish_module(module, root, "me/digits/1", task="image-feature-vector")
  with http_server.serving(root) as server:
    argv = ["hubkit", "cache", "kaggle", f"{server.url}/me/digits/1"]
    assert cli.main([*argv, "me/digits/tensorFlow2/default/1"]) == 0
  assert "now returns" in capsys.readouterr().out
  path = kagglehub.model_download("me/digits/tensorFlow2/default/1")
  assert path == str(offline / "models/me/digits/tensorFlow2/default/1")
  x = np.random.default_rng(0).random([3, 6], dtype=np.float32)
  np.testing.assert_array_equal(
    tf.saved_model.load(path)(x, training=False).numpy(),
    tf.saved_model.load(module)(x, training=False).numpy(),
  )
  # Same content again: nothing to do; other content under the version: refused.
  assert hubkit.add_to_kagglehub_cache(module, "me/digits/tensorFlow2/default/1") == path
  other = modules.export_module("mul", str(tmp_path / "mul"), config={"dim": 2})
  with pytest.raises(hubkit.UsageError, match="already in kagglehub's cache"):
    hubkit.add_to_kagglehub_cache(other, "me/digits/tensorFlow2/default/1")
  assert kagglehub.model_download("me/digits/tensorFlow2/default/1") == path


def test_bad_handles_and_hostile_modules_are_refused(tmp_path, offline, capsys):
  module = modules.export_module("mul", str(tmp_path / "mul"), config={"dim": 2})
  for bad in ("me/digits/1", "me/../x/tensorFlow2/default/1", "me/d/tensorFlow2/default/v1"):
    assert "owner/model/framework/variation/version" in helpers.cli_error(
      capsys, ["cache", "kaggle", module, bad]
    )
  marker = str(tmp_path / "marker")
  hostile_modules.call_writes(str(tmp_path / "hostile"), marker)
  with pytest.raises(ops.UnsafeModuleError):
    kaggle.add_to_kagglehub_cache(str(tmp_path / "hostile"), "me/h/tensorFlow2/default/1")
  assert not os.path.exists(marker) and not offline.exists()


def test_publish_writes_an_upload_folder_with_metadata_from_the_module(tmp_path, capsys):
  import json

  base = modules.export_module(
    "mlp_feature_vector", str(tmp_path / "mlp"), config={"input_dim": 6, "hidden_units": [4]}
  )
  root = str(tmp_path / "registry")
  upload = tmp_path / "upload"
  argv = ["hubkit", "publish", base, f"--root={root}", "--handle=me/digits/1"]
  assert cli.main([*argv, f"--kaggle_dir={upload}", "--license=mit", "--dataset=other"]) == 0
  assert "kagglehub.model_upload('me/digits/tensorFlow2/default'" in capsys.readouterr().out
  meta = json.loads((upload / "model-instance-metadata.json").read_text())
  assert meta["modelInstanceType"] == "BaseModel" and meta["framework"] == "tensorFlow2"
  assert meta["licenseName"] == "MIT" and meta["trainingData"] == ["other"]
  assert meta["fineTunable"] is True and "kagglehub.model_download" in meta["usage"]
  assert (upload / "saved_model.pb").read_bytes() == (tmp_path / "mlp/saved_model.pb").read_bytes()
  assert "already exists" in helpers.cli_error(capsys, [*argv[1:], f"--kaggle_dir={upload}"])
  # A fine-tuned module published from a URL parent is a variant of it.
  record = hubkit.read_metadata(base)
  record["source"] = {"kind": "fine_tuned", "parent": "http://host/me/digits/1", "head": "x"}
  from hubkit.registry import card

  meta = card.kaggle_metadata("me/tuned/1", "Tuned.", True, None, [], record)
  assert meta["modelInstanceType"] == "ExternalVariant"
  assert meta["externalBaseModelUrl"] == "http://host/me/digits/1"
  assert meta["licenseName"] == "Apache 2.0"
