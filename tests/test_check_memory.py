"""Tests for what the checker does about memory on large modules: a pool
reserved up front, rules' garbage collected, no snapshot of the weights; none
of it may change a verdict."""

import gc
import glob
import os
import weakref

import numpy as np
import pytest
import tensorflow as tf

import broken_modules
import hubkit
from hubkit import checker
from hubkit.checker import memory
from hubkit.checker import rule_table
from hubkit.checker import rules_consumer


@pytest.fixture(scope="module")
def valid_module(tmp_path_factory):
  return broken_modules.valid(str(tmp_path_factory.mktemp("memory") / "valid"))


def test_fine_tuning_probes_compare_against_the_checkers_copy_not_a_snapshot(valid_module):
  import tensorflow_hub as hub

  obj = tf.saved_model.load(valid_module)
  originals = list(obj.trainable_variables)
  for layer in (
    hub.KerasLayer(valid_module, trainable=True),
    hubkit.KerasLayer(valid_module, trainable=True),
  ):
    weights = list(layer.trainable_weights)
    initial = rules_consumer._initial_values(weights, obj)
    # The module's own variables, not copies: a large module's probe would
    # otherwise hold one more copy of its weights.
    assert len(initial) == len(originals) > 0
    assert all(i is o for i, o in zip(initial, originals)), type(layer).__name__
    # Lists that do not pair up are copied, value for value.
    copied = rules_consumer._initial_values(weights[1:], obj)
    assert all(isinstance(c, tf.Tensor) and not isinstance(c, tf.Variable) for c in copied)
    for c, w in zip(copied, weights[1:]):
      np.testing.assert_array_equal(c.numpy(), np.asarray(w))


def test_garbage_a_rule_leaves_is_collected_after_it_on_a_large_module(monkeypatch):
  class Weights:
    pass

  left = {}

  def leave_a_cycle(ctx):
    weights = Weights()
    weights.self = weights  # freed only by a collection
    left[len(left)] = weakref.ref(weights)
    return "ok"

  def make_rule(rule_id, leaves_garbage):
    return rule_table.Rule(rule_id, rule_id, "", leave_a_cycle, False, (), False, leaves_garbage)

  class Ctx:
    figures = {}
    variable_bytes = memory.LARGE_MODULE_BYTES

  rules = [make_rule("a.garbage", True), make_rule("b.plain", False)]
  gc.disable()
  try:
    checker.run_rules(Ctx(), rules, {})
    assert left[0]() is None, "a large module's flagged rule left its garbage behind"
    assert left[1]() is not None, "rules not flagged are not collected after"
    Ctx.variable_bytes = memory.LARGE_MODULE_BYTES - 1
    checker.run_rules(Ctx(), rules[:1], {})
    assert left[2]() is not None, "a small module's garbage is left to Python's own collections"
  finally:
    gc.enable()
  assert set(Ctx.figures["seconds"]) == {"a.garbage", "b.plain"}


def test_variable_file_bytes_counts_the_variable_data_files(valid_module, tmp_path):
  files = glob.glob(os.path.join(valid_module, "variables", "variables.data-*"))
  assert files
  assert memory.variable_file_bytes(valid_module) == sum(os.path.getsize(f) for f in files)
  assert memory.variable_file_bytes(str(tmp_path)) == 0


def test_a_reservation_grows_the_pool_once_and_gives_it_back(tmp_path, monkeypatch):
  path = hubkit.export_module(
    "mlp_feature_vector", str(tmp_path / "m"), config={"input_dim": 512, "hidden_units": [512]}
  )
  assert memory.reserve(path) is None, "a small module reserves nothing"
  monkeypatch.setattr(memory, "LARGE_MODULE_BYTES", 1 << 20)
  tf.config.experimental.reset_memory_stats("CPU:0")
  reservation = memory.reserve(path)
  reservation.wait()
  assert reservation.size == 6 * memory.variable_file_bytes(path) > 6 << 20
  info = tf.config.experimental.get_memory_info("CPU:0")
  # Filled once (the pool's peak), then free for the rules to reuse.
  assert info["peak"] >= reservation.size
  assert info["current"] < reservation.size


@pytest.mark.slow
def test_a_large_module_is_checked_with_a_reserved_pool_and_the_same_verdicts(tmp_path):
  # 2 x 2900 x 2900 float32 weights: just over LARGE_MODULE_BYTES.
  path = hubkit.export_module(
    "mlp_feature_vector",
    str(tmp_path / "large"),
    config={"input_dim": 2900, "hidden_units": [2900, 2900], "dropout_rate": 0.1},
  )
  variable_bytes = memory.variable_file_bytes(path)
  assert variable_bytes >= memory.LARGE_MODULE_BYTES
  report = hubkit.check_module(path)
  assert report.conforms, report.table()
  for rule_id in ("consumer.hub_keras_layer", "consumer.keras3_layer", "roundtrip.reexport"):
    assert report.result(rule_id).status == "pass", report.table()
  reserved = report.figures["memory_reserved_bytes"]
  assert 0 < reserved <= 6 * variable_bytes
