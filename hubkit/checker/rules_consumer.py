"""consumer.* and roundtrip.*: the module as its users will use it."""

import os
import tempfile
from typing import Any, Callable, List, Tuple

import numpy as np
import tensorflow as tf

from hubkit.module import interface
from hubkit.checker.context import Context, fingerprint, first_line
from hubkit.checker.rule_table import RuleFailed, RuleSkipped, rule
from hubkit.module.interface import float_outputs

_STEPS = 3  # one training-mode step, then two descent steps (three losses)
# Fine-tuning needs the whole interface and finite, repeatable outputs.
CONSUMER_REQUIREMENTS = (
  "interface.training_traces",
  "interface.variables",
  "interface.regularization_losses",
  "behavior.deterministic_inference",
)
_LEARNING_RATE = 0.01
# Adam moves every weight by about its rate on the first step, whatever the
# gradient's size, so a wide layer's output moves by rate x fan-in: a
# fine-tuning rate (not a training-from-scratch one) keeps the descent steps
# from overshooting, which would hide whether the loss can fall.
_ADAM_RATE = 1e-3


def _shifted_target(outputs: Any) -> List[tf.Tensor]:
  # A target about one unit away from the current outputs, in a different
  # direction per element (a uniform shift can be invisible to outputs such
  # as softmax): reachable only by moving the module's own weights.
  rng = np.random.default_rng(0)
  return [
    tf.constant(a + rng.normal(0.0, 1.0, a.shape).astype(a.dtype)) for a in float_outputs(outputs)
  ]


def _loss(outputs: Any, targets: List[tf.Tensor], extra_losses) -> tf.Tensor:
  floats = [t for t in tf.nest.flatten(outputs) if t.dtype.is_floating]
  loss = tf.add_n(
    [
      tf.reduce_mean(tf.square(tf.cast(o, tf.float32) - tf.cast(t, tf.float32)))
      for o, t in zip(floats, targets)
    ]
  )
  return loss + tf.add_n([tf.cast(l, tf.float32) for l in extra_losses] or [tf.constant(0.0)])


def fine_tune_probe(
  model: Any,
  layer: Any,
  inputs: Any,
  make_optimizer: Callable[[bool], Any],
  module_trainable: List[Any],
) -> Tuple[List[str], List[str], List[float]]:
  """Fine-tunes a Keras model around a module layer and reports what moved.

  Shared by the consumer rules for tf_keras (hub.KerasLayer) and Keras 3.

  Args:
    model: a Keras model whose output is the module layer's output.
    layer: the module layer inside it.
    inputs: a batch of inputs.
    make_optimizer: builds the optimizer: `make_optimizer(sgd=True)` plain
      SGD for the training step, `make_optimizer(sgd=False)` Adam.
    module_trainable: the layer's trainable weights to watch.

  Returns:
    (trainable weights that no step moved, non-trainable weights the
    optimizer changed in the first (training=True) step, the inference-mode
    loss of each later step).
  """
  targets = _shifted_target(model(inputs, training=False))
  frozen = list(layer.non_trainable_weights)
  before = [fingerprint(w) for w in module_trainable]
  losses, touched = [], []
  # Step 0 runs the training trace with plain SGD; one Adam (whose slot
  # variables are where consumers' optimizers break, and whose set-up is
  # the costly part of a step on a large module) then runs the descent in
  # inference mode, so neither dropout noise nor momentum from the first
  # step can hide whether the loss falls.
  for step in range(_STEPS):
    if step < 2:
      optimizer = make_optimizer(sgd=step == 0)
    with tf.GradientTape() as tape:
      outputs = model(inputs, training=step == 0)
      loss = _loss(outputs, targets, model.losses)
    grads = tape.gradient(loss, model.trainable_weights)
    if step == 0:
      missing = [w.name for w, g in zip(model.trainable_weights, grads) if g is None]
      if missing:
        raise RuleFailed(
          f"no gradient reaches {', '.join(missing[:3])}: the variable is "
          "listed as trainable but __call__ does not use it differentiably"
        )
      frozen_before = [fingerprint(w) for w in frozen]
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    if step == 0:
      touched = [w.name for w, b in zip(frozen, frozen_before) if fingerprint(w) != b]
    else:
      losses.append(float(loss))
    # A step's gradients and tape hold weight-sized tensors: freed before the
    # next step, which otherwise runs slower beside them on a large module.
    del tape, grads, outputs, loss
  # The last update is measured by a forward pass alone: no step's work is
  # wasted on an update nobody looks at.
  losses.append(float(_loss(model(inputs, training=False), targets, model.losses)))
  # Judged after all steps: dropout in the first step may legitimately zero
  # a variable's gradient once.
  stuck = [w.name for w, b in zip(module_trainable, before) if fingerprint(w) == b]
  return stuck, touched, losses


def _symbolic_inputs(keras_lib: Any, signature: Any) -> Any:
  return tf.nest.map_structure(
    lambda s: keras_lib.Input(shape=s.shape[1:], dtype=s.dtype.name), signature
  )


def judge_fine_tuning(
  kind: str,
  layer: Any,
  model: Any,
  obj: Any,
  inputs: Any,
  make_optimizer: Callable[[bool], Any],
  frozen_loss: float,
) -> str:
  """Runs the assertions the consumer rules share; returns the pass message."""
  n_var, n_train = len(obj.variables), len(obj.trainable_variables)
  n_reg = len(getattr(obj, "regularization_losses", []))
  if len(layer.trainable_weights) != n_train or len(layer.weights) != n_var:
    raise RuleFailed(
      f"{kind} has {len(layer.trainable_weights)} trainable / "
      f"{len(layer.weights)} weights, the module lists {n_train} / {n_var}"
    )
  if len(layer.losses) != n_reg:
    raise RuleFailed(
      f"a trainable {kind} has {len(layer.losses)} losses, the module has "
      f"{n_reg} regularization losses"
    )
  if frozen_loss:
    raise RuleFailed(f"a frozen {kind} still adds regularization loss {frozen_loss:.4g}")
  if not n_train:
    return f"loads in {kind}; no trainable variables, so nothing to fine-tune"
  stuck, touched, losses = fine_tune_probe(
    model, layer, inputs, make_optimizer, list(layer.trainable_weights)
  )
  if stuck:
    raise RuleFailed(f"optimizer steps left trainable variables unchanged: {', '.join(stuck[:3])}")
  if touched:
    raise RuleFailed(f"the optimizer changed non-trainable variables: {', '.join(touched[:3])}")
  if not all(np.isfinite(losses)) or not losses[-1] < losses[0]:
    raise RuleFailed(
      f"loss did not decrease over {len(losses) - 1} Adam steps ({losses[0]:.4g} -> {losses[-1]:.4g})"
    )
  return (
    f"{n_train} trainable weights move, {n_reg} losses while trainable and none when "
    f"frozen; loss {losses[0]:.4g} -> {losses[-1]:.4g} in {len(losses) - 1} Adam steps"
  )


@rule(
  "consumer.hub_keras_layer",
  "Loads and fine-tunes in hub.KerasLayer (tf_keras)",
  fix="make sure every trainable variable is used by __call__, regularization losses are "
  "zero-argument, and the training=True trace is differentiable.",
  requires=CONSUMER_REQUIREMENTS,
)
def check_hub_keras_layer(ctx: Context):
  import tensorflow_hub as hub
  import tf_keras

  # tf_keras XLA-compiles its optimizers' updates by default; that compiles
  # only the optimizer's own ops on the variables, nothing of the module, so
  # the probe skips it (seconds on a large module, no verdict changes). The
  # training-mode step uses tf_keras's legacy SGD: one fused update per
  # variable, where the current SGD also keeps and rewrites a momentum slot
  # even at momentum 0 (four more weight-sized ops); the descent steps use
  # tf_keras's default Adam, as consumers do.
  return _probe_layer(
    ctx,
    "hub.KerasLayer",
    hub.KerasLayer,
    tf_keras,
    make_optimizer=lambda sgd: (
      tf_keras.optimizers.legacy.SGD(_LEARNING_RATE)
      if sgd
      else tf_keras.optimizers.Adam(_ADAM_RATE, jit_compile=False)
    ),
  )


def _probe_layer(
  ctx: Context,
  kind: str,
  layer_class: Any,
  keras_lib: Any,
  make_optimizer: Callable[[bool], Any],
) -> str:
  """Wraps the module in one layer, judges it frozen, then fine-tuning.

  The layer wraps the checker's loaded copy, borrowed and restored after
  (`Context.borrowed`): both layers accept a loaded object as their handle,
  and loading a path is `tf.saved_model.load`, which interface.call already
  did. One layer serves both judgements: `trainable` is mutable on
  hub.KerasLayer and hubkit.KerasLayer (losses and the training flag follow
  it at call time), so a frozen call first and a trainable model after see
  what two separate layers would.
  """
  with ctx.borrowed() as module:
    layer = layer_class(module, trainable=True, arguments=ctx.arguments)
    layer.trainable = False
    layer(ctx.inputs)
    frozen_loss = sum(float(loss) for loss in layer.losses)
    layer.trainable = True
    symbolic = _symbolic_inputs(keras_lib, ctx.signatures[0])
    model = keras_lib.Model(symbolic, layer(symbolic))
    return judge_fine_tuning(
      kind,
      layer,
      model,
      module,
      ctx.inputs,
      make_optimizer,
      frozen_loss,
    )


@rule(
  "consumer.keras3_layer",
  "Loads and fine-tunes in hubkit.KerasLayer (Keras 3)",
  fix="make sure every trainable variable is used by __call__, regularization losses are "
  "zero-argument, and the training=True trace is differentiable.",
  requires=CONSUMER_REQUIREMENTS,
)
def check_keras3_layer(ctx: Context):
  import keras
  from hubkit.keras_layer import KerasLayer

  return _probe_layer(
    ctx,
    "hubkit.KerasLayer",
    KerasLayer,
    keras,
    make_optimizer=lambda sgd: (
      keras.optimizers.SGD(_LEARNING_RATE) if sgd else keras.optimizers.Adam(_ADAM_RATE)
    ),
  )


@rule(
  "consumer.distributed",
  "Fine-tunes under tf.distribute.MirroredStrategy",
  fix="create no variables inside __call__ and avoid ops without a CPU/GPU kernel; "
  "load the module inside strategy.scope().",
  requires=CONSUMER_REQUIREMENTS,
)
def check_distributed(ctx: Context):
  devices = tf.config.list_logical_devices("CPU") + tf.config.list_logical_devices("GPU")
  if len(devices) < 2:
    raise RuleSkipped(
      "only one device: run 'hubkit check' from the command line, which "
      "sets up two logical CPUs, or configure them before TensorFlow starts"
    )
  import tensorflow_hub as hub
  import tf_keras

  # Reducing through one device avoids collective ops, whose instance keys
  # collide when a process creates several strategies (one per check).
  strategy = tf.distribute.MirroredStrategy(
    [d.name for d in devices[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice()
  )
  with strategy.scope():
    layer = hub.KerasLayer(ctx.path, trainable=True, arguments=ctx.arguments)
    symbolic = _symbolic_inputs(tf_keras, ctx.signatures[0])
    outputs = [o for o in tf.nest.flatten(layer(symbolic)) if o.dtype.is_floating]
    if not outputs:
      raise RuleSkipped("no floating-point output to fine-tune against")
    model = tf_keras.Model(symbolic, outputs[0])
    # The legacy SGD applies one fused update per replica's variable, where
    # the current one XLA-compiles the update and keeps a momentum slot even
    # at momentum 0 (weight-sized work per replica, no evidence added).
    model.compile(optimizer=tf_keras.optimizers.legacy.SGD(_LEARNING_RATE), loss="mse")
  target = float_outputs(ctx.call(ctx.obj))[0] + 1.0
  history = model.fit(ctx.inputs, target, batch_size=int(target.shape[0]), epochs=1, verbose=0)
  loss = history.history["loss"][-1]
  if not np.isfinite(loss):
    raise RuleFailed(f"the distributed step produced loss {loss}")
  return f"one step on {len(devices[:2])} replicas, loss {loss:.4g}"


@rule(
  "roundtrip.reexport",
  "Re-exports after fine-tuning with the interface intact",
  fix="keep all state in variables listed by the module; avoid Python-side state that "
  "tf.saved_model.save cannot capture.",
  requires=CONSUMER_REQUIREMENTS,
)
def check_reexport(ctx: Context):
  with ctx.borrowed() as obj:
    return _reexport(ctx, obj)


def _reexport(ctx: Context, obj: Any) -> str:
  trainable = list(obj.trainable_variables)
  if trainable:
    targets = _shifted_target(ctx.call(obj))
    with tf.GradientTape() as tape:
      loss = _loss(
        ctx.call(obj, training=True),
        targets,
        [l() for l in getattr(obj, "regularization_losses", [])],
      )
    for variable, grad in zip(trainable, tape.gradient(loss, trainable)):
      if grad is not None:
        variable.assign_sub(_LEARNING_RATE * tf.convert_to_tensor(grad))
  expected = float_outputs(ctx.call(obj))
  with tempfile.TemporaryDirectory(prefix="hubkit_reexport_") as tmp:
    target = os.path.join(tmp, "module")
    try:
      tf.saved_model.save(obj, target, signatures=getattr(obj, "signatures", None) or None)
      again = tf.saved_model.load(target)
    except Exception as e:
      raise RuleFailed(f"re-export failed: {first_line(e)}") from e
    for name in interface.LISTS:
      if len(getattr(again, name, [])) != len(getattr(obj, name, [])):
        raise RuleFailed(
          f"the re-export has {len(getattr(again, name, []))} {name}, the "
          f"module had {len(getattr(obj, name, []))}"
        )
    if len(again.__call__.concrete_functions) != len(obj.__call__.concrete_functions):
      raise RuleFailed("the re-export lost __call__ traces")
    got = float_outputs(ctx.call(again))
  diff = max((float(np.max(np.abs(a - b))) for a, b in zip(expected, got) if a.size), default=0.0)
  if not diff <= 1e-6:
    raise RuleFailed(f"re-exported outputs differ from the fine-tuned ones by {diff:.3g}")
  return (
    f"fine-tuned {len(trainable)} variables, re-exported and reloaded; outputs equal "
    f"(max diff {diff:.2g})"
  )
