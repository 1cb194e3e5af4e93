"""A published registry root is a static website: nginx with a plain `root`
and Python's stdlib file server on a copied root serve the same handle URLs
as `hubkit serve`, for tensorflow_hub and for hubkit."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

import helpers
import hubkit
from hubkit.cache import store
from hubkit.registry import http_server
from hubkit import modules


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
  base = tmp_path_factory.mktemp("static")
  module = modules.export_module(
    "mlp_feature_vector", str(base / "mlp"), config={"input_dim": 5, "hidden_units": [3]}
  )
  root = str(base / "root")
  hubkit.publish_module(module, root, "me/mlp/1", task="image-feature-vector")
  return {"base": base, "module": module, "root": root}


def _outputs(obj):
  x = np.arange(10, dtype=np.float32).reshape(2, 5) / 10
  return obj(tf.constant(x), training=False).numpy()


def _loads_with_both_libraries(url, registry, tmp_path, monkeypatch):
  expected = _outputs(tf.saved_model.load(registry["module"]))
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
  np.testing.assert_array_equal(_outputs(hub.load(url)), expected)
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hubkit_cache"))
  np.testing.assert_array_equal(_outputs(hubkit.load(url)), expected)
  layer = hubkit.KerasLayer(url)
  x = np.arange(10, dtype=np.float32).reshape(2, 5) / 10
  np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-6)


def test_a_copied_root_served_by_a_plain_file_server(registry, tmp_path, monkeypatch):
  copy = tmp_path / "copied"
  shutil.copytree(registry["root"], copy)
  proc, base = helpers.start_file_server(str(copy))
  try:
    url = f"{base}/me/mlp/1"
    _loads_with_both_libraries(url, registry, tmp_path, monkeypatch)
    # No sha256 ETag here: hubkit checks the published digest file instead.
    other = modules.export_module("mul", str(tmp_path / "mul"), config={"dim": 5})
    hubkit.pack_module(other, str(tmp_path / "other.tar.gz"))
    shutil.copyfile(tmp_path / "other.tar.gz", copy / "me" / "mlp" / "1")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "fresh_cache"))
    with pytest.raises(hubkit.FetchError, match=r"does not match its checksum .*1\.sha256"):
      hubkit.resolve(url)
    assert not os.path.exists(store.ModuleCache().path_for(url))
  finally:
    helpers.stop(proc)


@pytest.mark.skipif(
  shutil.which("nginx") is None, reason="nginx is not installed (.ci/run installs it)"
)
def test_nginx_with_a_plain_root_serves_the_registry(registry, tmp_path, monkeypatch):
  proc, base = helpers.start_nginx(registry["root"], tmp_path)
  try:
    _loads_with_both_libraries(f"{base}/me/mlp/1", registry, tmp_path, monkeypatch)
    import json
    import urllib.request

    with urllib.request.urlopen(f"{base}/index.json", timeout=10) as response:
      assert json.load(response) == {"modules": [{"handle": "me/mlp", "versions": [1]}]}
    with urllib.request.urlopen(f"{base}/me/mlp/1.d/README.md", timeout=10) as r:
      assert r.read().decode().startswith("# Module me/mlp/1")
  finally:
    helpers.stop(proc)
  # hubkit serve answers the same URLs from the same root.
  with http_server.serving(registry["root"]) as server:
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "served_cache"))
    np.testing.assert_array_equal(
      _outputs(hub.load(f"{server.url}/me/mlp/1")),
      _outputs(tf.saved_model.load(registry["module"])),
    )
