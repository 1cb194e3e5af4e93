"""Tests for the work the checker shares between rules and what it does about
memory on large modules: one loaded module lent to the rules that change it
and restored after, a pool reserved up front, rules' garbage collected, no
snapshot of the weights; none of it may change a verdict."""

import gc
import glob
import os
import shutil
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
from hubkit.checker.context import Context


@pytest.fixture(scope="module")
def valid_module(tmp_path_factory):
  return broken_modules.valid(str(tmp_path_factory.mktemp("memory") / "valid"))


def _state(obj):
  return [(v.name, v.trainable, np.array(v.numpy(), copy=True)) for v in obj.variables]


@pytest.mark.parametrize(
  "name, config",
  [
    ("image_feature_vector", {"filters": [4, 6], "num_features": 5}),  # batch norm
    ("text_embedding", {"vocabulary": ["hello", "world"], "dim": 4, "l2": 0.1}),  # a table
  ],
)
def test_rules_that_change_the_shared_module_leave_it_as_loaded(tmp_path, name, config):
  path = hubkit.export_module(name, str(tmp_path / name), config=config)
  ctx = Context(path, path)
  obj = ctx.obj
  before = _state(obj)
  rules = {r.id: r for r in checker.rules()}
  done = {r: "pass" for r in rules}
  borrowers = (
    "behavior.training_mode",
    "consumer.hub_keras_layer",
    "consumer.keras3_layer",
    "roundtrip.reexport",
  )
  results = checker.run_rules(ctx, [rules[r] for r in borrowers], done)
  assert [r.status for r in results] == ["pass"] * 4, [r.message for r in results]
  # Restored in place, not reloaded: the next rule sees the load every rule
  # started from (values, and trainable flags the Keras layers flip).
  assert ctx.obj is obj
  after = _state(obj)
  assert [(n, t) for n, t, _ in after] == [(n, t) for n, t, _ in before]
  for (n, _, a), (_, _, b) in zip(after, before):
    np.testing.assert_array_equal(a, b, err_msg=n)


def test_a_module_that_cannot_be_restored_is_loaded_again(valid_module, tmp_path):
  path = str(tmp_path / "m")
  shutil.copytree(valid_module, path)
  ctx = Context(path, path)
  obj = ctx.obj
  with ctx.borrowed() as lent:
    for v in lent.trainable_variables:
      v.assign(v + 1.0)
    # The checkpoint is gone: the changed copy must not be lent again.
    shutil.rmtree(os.path.join(path, "variables"))
  assert "obj" not in vars(ctx)
  shutil.rmtree(path)
  shutil.copytree(valid_module, path)
  assert ctx.obj is not obj
  fresh = tf.saved_model.load(valid_module)
  for a, b in zip(ctx.obj.variables, fresh.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fingerprints_see_any_write_and_keep_no_copy():
  variable = tf.Variable(tf.random.uniform([64, 32]))
  before = rules_consumer._fingerprint(variable)
  assert isinstance(before, int) and rules_consumer._fingerprint(variable) == before
  variable.assign(variable + tf.one_hot([[5]], 32)[0] * 1e-7)  # one element, barely
  assert rules_consumer._fingerprint(variable) != before
  words = tf.Variable(["a", "b"])
  assert rules_consumer._fingerprint(words) != rules_consumer._fingerprint(tf.Variable(["a", "c"]))
  scalar = tf.Variable(2.0, dtype=tf.bfloat16)
  assert rules_consumer._fingerprint(scalar) != rules_consumer._fingerprint(
    tf.Variable(3.0, dtype=tf.bfloat16)
  )


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
