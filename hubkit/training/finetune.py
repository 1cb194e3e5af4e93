"""Fine-tune a published module on your data and re-export it.

`finetune()` builds a model around the module (`hubkit.KerasLayer` in Keras 3,
or `hub.KerasLayer` in tf_keras) with a new head, trains it with a validation
split, a resumable checkpoint every epoch, early stopping on the validation
loss (best weights restored), an optional cosine learning-rate schedule and
TensorBoard logs, then writes the fine-tuned module alone (interface, assets
and signatures intact, provenance in `assets.extra/hubkit.json`) and,
optionally, the whole classifier.

Examples are shuffled once with `seed` and then fed in that fixed order, so a
run that was killed resumes from its last epoch into exactly the batches an
uninterrupted run would have seen.
"""

import contextlib
import csv
import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from hubkit.cache import resolver
from hubkit.module import interface
from hubkit.module import reexport
from hubkit.training import epoch_backup
from hubkit.utils.atomic import check_parent_writable
from hubkit.errors import HubkitError, UsageError

HEADS = ("classification", "regression")
STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclasses.dataclass
class FinetuneResult:
  """What a fine-tuning run produced."""

  export_dir: Optional[str]
  classifier_dir: Optional[str]
  epochs_run: int
  resumed_from_epoch: int
  metrics: Dict[str, float]
  is_chief: bool
  weights_sha256: str

  def summary(self) -> str:
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(self.metrics.items()))
    lines = [
      f"trained {self.epochs_run} epoch(s)"
      + (f" (resumed after epoch {self.resumed_from_epoch})" if self.resumed_from_epoch else "")
      + f"; validation: {metrics}",
      f"weights sha256 {self.weights_sha256}",
    ]
    if self.export_dir:
      lines.append(f"fine-tuned module: {self.export_dir}")
    if self.classifier_dir:
      lines.append(f"whole classifier: {self.classifier_dir}")
    if not self.is_chief:
      lines.append("not the chief worker: nothing exported")
    return "\n".join(lines)


def parse_head(head: str) -> Tuple[str, int]:
  """Parses "classification:N" or "regression:N".

  Raises:
    UsageError: malformed head.
  """
  kind, _, size = (head or "").partition(":")
  if kind not in HEADS or not size.isdigit() or int(size) < (2 if kind == "classification" else 1):
    raise UsageError(
      f"`head`={head!r} must be classification:N (N >= 2 classes) or "
      "regression:N (N >= 1 outputs), e.g. classification:10."
    )
  return kind, int(size)


# Stateful random ops: with both seed attributes 0 they draw from a seed
# chosen at random per process, so no --seed can make them repeat.
_RANDOM_OPS = frozenset(
  {
    "RandomUniform",
    "RandomStandardNormal",
    "RandomUniformInt",
    "TruncatedNormal",
    "Multinomial",
    "RandomGamma",
    "RandomPoisson",
    "RandomPoissonV2",
    "RandomShuffle",
  }
)


def _unseeded_random_ops(obj: Any) -> List[str]:
  """Names of unseeded stateful random ops in the module's `__call__` traces."""
  found = []
  for concrete in obj.__call__.concrete_functions:
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    found.extend(
      n.name
      for n in nodes
      if n.op in _RANDOM_OPS and not n.attr["seed"].i and not n.attr["seed2"].i
    )
  return sorted(set(found))


def _input_spec(module_dir: str) -> tf.TensorSpec:
  obj = tf.saved_model.load(module_dir)
  if not hasattr(obj, "__call__") or not hasattr(obj.__call__, "concrete_functions"):
    raise UsageError(f"{module_dir} has no __call__ to fine-tune; run 'hubkit check' on it.")
  unseeded = _unseeded_random_ops(obj)
  if unseeded:
    logging.warning(
      "the module draws random numbers without a seed (%s): runs with the same "
      "`seed` will differ slightly; export its dropout with a fixed seed for "
      "bit-reproducible fine-tuning",
      ", ".join(unseeded[:3]),
    )
  inputs = interface.call_traces(obj.__call__)[0].inputs
  if tf.nest.is_nested(inputs):
    raise UsageError(
      "hubkit finetune supports modules with a single input tensor; this one "
      f"takes {tf.nest.map_structure(lambda s: s.dtype.name, inputs)}."
    )
  return inputs


def load_data(path: str, label_column: str = "label") -> Tuple[np.ndarray, np.ndarray]:
  """Reads x and y from an `.npz` (arrays `x`, `y`) or a CSV file (with a label column).

  Raises:
    UsageError: missing file, unknown format, a CSV that is not UTF-8 text,
      or missing arrays/columns.
  """
  if not os.path.isfile(path):
    raise UsageError(f"`data` file {path} does not exist.")
  if path.endswith(".npz"):
    try:
      with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("x", "y") if k not in data.files]
        if missing:
          raise UsageError(
            f"{path} lacks array(s) {', '.join(missing)}; it has "
            f"{', '.join(data.files) or 'none'}; write it with np.savez(path, "
            "x=features, y=labels)."
          )
        return data["x"], data["y"]
    except (OSError, ValueError, EOFError) as e:
      raise UsageError(f"cannot read {path} as .npz ({e or 'it is empty'}).") from e
  if path.endswith(".csv"):
    try:
      with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    except UnicodeDecodeError as e:
      raise UsageError(
        f"{path} is not UTF-8 text (byte {e.start}); pass a CSV file with a header "
        "row, or an .npz with arrays x and y."
      ) from e
    except csv.Error as e:
      raise UsageError(f"cannot read {path} as CSV ({e}).") from e
    if not rows or label_column not in rows[0]:
      columns = ", ".join(rows[0]) if rows else "none"
      raise UsageError(
        f"{path} has no column {label_column!r} (columns: {columns}); name the "
        "label column with `label_column`."
      )
    features = [c for c in rows[0] if c != label_column]
    y = np.array([r[label_column] for r in rows])
    cells = np.array([[r[c] for c in features] for r in rows], dtype=object)
    try:
      x = cells.astype(np.float32)
    except ValueError:
      if len(features) != 1:
        raise UsageError(
          f"{path} has non-numeric features in several columns; text modules "
          "take one text column besides the label."
        ) from None
      x = cells[:, 0].astype(str).astype(object)
    return x, y
  raise UsageError(f"`data` {path} must be an .npz (x, y) or a .csv file.")


def _check_fit(
  x: np.ndarray, y: np.ndarray, spec: tf.TensorSpec, kind: str, size: int
) -> Tuple[np.ndarray, np.ndarray]:
  """Validates data against the module and head before any training."""
  if len(x) != len(y):
    raise UsageError(f"x has {len(x)} examples but y has {len(y)}.")
  if len(x) < 4:
    raise UsageError(
      f"only {len(x)} examples: fine-tuning needs at least 4 (with a validation split)."
    )
  expected = spec.shape.as_list()[1:]
  if x.dtype.kind in "fc" and not np.isfinite(x).all():
    raise UsageError(
      f"x has {int(np.size(x) - np.isfinite(x).sum())} non-finite values "
      "(NaN or Inf); clean or impute them before fine-tuning."
    )
  if y.dtype.kind in "fc" and not np.isfinite(y).all():
    raise UsageError(
      f"y has {int(np.size(y) - np.isfinite(y).sum())} non-finite values "
      "(NaN or Inf); clean them before fine-tuning."
    )
  if spec.dtype == tf.string:
    if x.dtype.kind not in "OUS":
      raise UsageError(f"the module takes text (string {spec.shape}), but x is {x.dtype}.")
    x = x.astype(str).astype(object)
  else:
    if x.dtype.kind not in "fiub":
      raise UsageError(f"the module takes {spec.dtype.name} {spec.shape}, but x is {x.dtype}.")
    x = x.astype(spec.dtype.as_numpy_dtype)
  got = list(x.shape[1:])
  if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
    raise UsageError(
      f"x has examples of shape {got}, but the module takes "
      f"{[d if d is not None else 'any' for d in expected]} "
      f"(input spec {spec.shape}); reshape the data."
    )
  if kind == "classification":
    try:
      y = y.astype(np.int64)
    except ValueError:
      raise UsageError("classification labels must be integers 0..N-1.") from None
    if y.ndim != 1 or y.min() < 0 or y.max() >= size:
      raise UsageError(
        f"classification labels must be integers in [0, {size}); got range "
        f"[{y.min()}, {y.max()}] and shape {list(y.shape)}."
      )
  else:
    y = y.astype(np.float32).reshape(len(y), -1)
    if y.shape[1] != size:
      raise UsageError(
        f"regression:{size} needs {size} target value(s) per example; y has {y.shape[1]}."
      )
  return x, y


def _strategy(name: str) -> tf.distribute.Strategy:
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    if "TF_CONFIG" not in os.environ:
      raise UsageError(
        "`strategy`=multi_worker needs TF_CONFIG describing the cluster and "
        "this worker (see the README's multi-machine section)."
      )
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise UsageError(f"`strategy`={name} is not one of {', '.join(STRATEGIES)}.")


def _cluster_task() -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """(cluster, task) from TF_CONFIG; empty when it is not set."""
  try:
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
  except ValueError as e:
    raise UsageError(f"TF_CONFIG is not valid JSON ({e}).") from e
  return config.get("cluster") or {}, config.get("task") or {}


def _is_chief() -> bool:
  cluster, task = _cluster_task()
  if not task:
    return True
  if "chief" in cluster:
    return task.get("type") == "chief"
  return task.get("type") == "worker" and int(task.get("index", 0)) == 0


_STEPS_PER_EXECUTION = 16


def _run_key(settings: Dict[str, Any]) -> str:
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _build(keras_version: str, module_dir: str, spec: tf.TensorSpec, kind: str, size: int):
  """Returns (library, model, module layer)."""
  if keras_version == "3":
    import keras as lib
    from hubkit.keras_layer import KerasLayer as layer_class
  else:
    import tensorflow_hub as hub
    import tf_keras as lib

    layer_class = hub.KerasLayer
  inputs = lib.Input(shape=spec.shape[1:], dtype=spec.dtype.name, name="inputs")
  # The caller scanned the module (with the ops the user allowed).
  extra = {"safe_mode": False} if keras_version == "3" else {}
  layer = layer_class(module_dir, trainable=True, name="module", **extra)
  features = layer(inputs)
  if isinstance(features, dict):
    if "default" not in features:
      raise UsageError(
        f"the module returns a dict ({', '.join(features)}) without 'default'; "
        "fine-tuning needs a feature tensor."
      )
    features = features["default"]
  if len(features.shape) != 2:
    raise UsageError(
      f"the module's output has shape {features.shape}; a head needs [batch, features]."
    )
  outputs = lib.layers.Dense(size, name="head")(features)
  return lib, lib.Model(inputs, outputs), layer


def _module_object(layer: Any) -> Any:
  return layer.module if hasattr(layer, "module") else layer.resolved_object


def _dataset(arrays: Tuple[np.ndarray, np.ndarray], batch_size: int) -> tf.data.Dataset:
  # A dataset in a fixed order: every strategy distributes it (numpy arrays
  # fail under MultiWorkerMirroredStrategy), each worker reads its share of
  # every batch, and a resumed run sees the same batches.
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size).with_options(options)


def _weights_sha256(model: Any) -> str:
  digest = hashlib.sha256()
  for weight in model.weights:
    digest.update(np.ascontiguousarray(np.asarray(weight.numpy())).tobytes())
  return digest.hexdigest()[:16]


def finetune(
  module: str,
  data: str,
  head: str,
  export_dir: str,
  epochs: int = 10,
  batch_size: int = 32,
  learning_rate: float = 1e-3,
  learning_rate_schedule: str = "constant",
  keras_version: str = "3",
  strategy: str = "default",
  checkpoint_dir: Optional[str] = None,
  tensorboard_dir: Optional[str] = None,
  classifier_dir: Optional[str] = None,
  label_column: str = "label",
  validation_split: float = 0.2,
  patience: int = 3,
  seed: int = 0,
  overwrite: bool = False,
  verbose: int = 2,
  callbacks: Sequence[Any] = (),
  safe_mode: bool = True,
  allow_ops: Sequence[str] = (),
) -> FinetuneResult:
  """Fine-tunes a module with a new head and re-exports it.

  Args:
    module: a handle (directory, `.tar.gz` or URL) of a Reusable SavedModel.
    data: `.npz` with `x`, `y` or a `.csv` with a label column.
    head: "classification:N" or "regression:N".
    export_dir: where to write the fine-tuned module.
    epochs, batch_size, learning_rate: training settings (batch_size is
      global across replicas).
    learning_rate_schedule: "constant" or "cosine" (decays to 0).
    keras_version: "3" (hubkit.KerasLayer) or "2" (tf_keras + hub.KerasLayer).
    strategy: "default", "mirrored" or "multi_worker" (TF_CONFIG).
    checkpoint_dir: where the per-epoch checkpoint lives; a rerun with the
      same settings resumes from it. Defaults to `<export_dir>.checkpoint`.
    tensorboard_dir: write TensorBoard logs there.
    classifier_dir: also export the whole classifier there.
    label_column: the CSV label column.
    validation_split: share of examples held out for validation.
    patience: early-stopping patience in epochs (best weights restored).
    seed: shuffling and initialisation seed.
    overwrite: replace existing exports.
    verbose: Keras progress output.
    callbacks: extra callbacks of the chosen Keras flavour (e.g. timing).
    safe_mode: scan the module before loading it and refuse one whose ops
      reach outside the process; False only for a module you trust.
    allow_ops: op types you reviewed and allow beyond the allow-list.

  Returns:
    A FinetuneResult.

  Raises:
    UsageError: bad settings, data that does not fit the module, or an
      existing export without `overwrite`.
  """
  kind, size = parse_head(head)
  if keras_version not in ("2", "3"):
    raise UsageError(
      f"`keras_version`={keras_version} must be 3 (hubkit.KerasLayer) or 2 "
      "(tf_keras + hub.KerasLayer)."
    )
  if strategy == "multi_worker" and keras_version == "3":
    # Keras 3.15's trainer fails across processes ("Attempt to convert a
    # value (PerReplica...) to a Tensor"), even for a plain Dense model.
    raise UsageError(
      "Keras 3 cannot yet train under MultiWorkerMirroredStrategy across "
      "processes; pass `keras_version`=2 (tf_keras + hub.KerasLayer) for multi-worker "
      "runs."
    )
  if learning_rate_schedule not in ("constant", "cosine"):
    raise UsageError("`learning_rate_schedule` must be constant or cosine.")
  if not 0.0 < validation_split < 1.0:
    raise UsageError("`validation_split` must be between 0 and 1.")
  if tensorboard_dir:
    if importlib.util.find_spec("tensorboard") is None:
      raise UsageError(
        "`tensorboard_dir` needs TensorBoard, which TensorFlow 2.21 no longer "
        "installs: pip install 'hubkit[tensorboard]'."
      )
    if os.path.exists(tensorboard_dir) and not os.path.isdir(tensorboard_dir):
      raise UsageError(
        f"`tensorboard_dir` {tensorboard_dir} is a file; give a folder for the logs."
      )
    check_parent_writable(os.path.join(tensorboard_dir, "events"))
  is_chief = _is_chief()
  for target in (export_dir, classifier_dir):
    if target and is_chief and os.path.exists(target) and not overwrite:
      raise UsageError(f"{target} already exists; choose another path or pass `overwrite`.")
    if target and is_chief:
      check_parent_writable(target)  # before training, not after it
  distribution = _strategy(strategy)
  module_dir = resolver.resolve(module, safe_mode=safe_mode, allow_ops=allow_ops)
  spec = _input_spec(module_dir)
  x, y = _check_fit(*load_data(data, label_column), spec, kind, size)
  order = np.random.default_rng(seed).permutation(len(x))
  x, y = x[order], y[order]
  cut = max(1, int(round(len(x) * (1.0 - validation_split))))
  train, validation = (x[:cut], y[:cut]), (x[cut:], y[cut:])

  settings = {
    "module": module,
    "data": os.path.abspath(data),
    "head": head,
    "epochs": epochs,
    "batch_size": batch_size,
    "learning_rate": learning_rate,
    "learning_rate_schedule": learning_rate_schedule,
    "keras": keras_version,
    "strategy": strategy,
    "validation_split": validation_split,
    "patience": patience,
    "seed": seed,
  }
  checkpoint_dir = checkpoint_dir or f"{os.path.abspath(export_dir)}.checkpoint"
  # Every task keeps its own training state in a sibling folder: one that
  # finishes first and removes its state must not remove another's.
  task = {} if is_chief else _cluster_task()[1]
  role = "chief" if is_chief else f"{task.get('type')}-{task.get('index', 0)}"
  backup_dir = os.path.join(checkpoint_dir, _run_key(settings), role)
  with distribution.scope():
    if keras_version == "3":
      import keras

      keras.utils.set_random_seed(seed)
    else:
      import tf_keras

      tf_keras.utils.set_random_seed(seed)
    lib, model, layer = _build(keras_version, module_dir, spec, kind, size)
    steps = epochs * max(1, -(-len(train[0]) // batch_size))
    rate = (
      lib.optimizers.schedules.CosineDecay(learning_rate, steps)
      if learning_rate_schedule == "cosine"
      else learning_rate
    )
    if kind == "classification":
      loss = lib.losses.SparseCategoricalCrossentropy(from_logits=True)
      metrics = ["accuracy"]
    else:
      loss, metrics = lib.losses.MeanSquaredError(), ["mae"]
    # Several steps per call of the compiled train function: per-step Python
    # and dispatch overhead dominates small modules; callbacks that act per
    # epoch (checkpoints, early stopping) see the same epochs.
    model.compile(
      optimizer=lib.optimizers.Adam(rate),
      loss=loss,
      metrics=metrics,
      steps_per_execution=_STEPS_PER_EXECUTION,
    )
    backup = epoch_backup.EpochBackup(lib, backup_dir)
    resumed_from = backup.restore(model)
  if resumed_from:
    logging.info("resuming from the checkpoint after epoch %d in %s", resumed_from, backup_dir)

  callbacks = [
    backup.callback(),
    lib.callbacks.TerminateOnNaN(),
    lib.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
    *callbacks,
  ]
  if tensorboard_dir:
    callbacks.append(lib.callbacks.TensorBoard(tensorboard_dir))
  history = model.fit(
    _dataset(train, batch_size),
    validation_data=_dataset(validation, batch_size),
    epochs=epochs,
    initial_epoch=resumed_from,
    callbacks=callbacks,
    shuffle=False,
    verbose=verbose,
  )
  # The run's folders, once every task's state is gone (each removes its own).
  for folder in (os.path.dirname(backup_dir), checkpoint_dir):
    with contextlib.suppress(OSError):
      os.rmdir(folder)
  losses = history.history.get("loss", [])
  if not np.all(np.isfinite(losses)):
    raise HubkitError(
      f"the training loss became {losses[-1]} in epoch {len(losses)}; nothing "
      "was exported. Lower `learning_rate` or check the data for extreme "
      "values."
    )
  results = model.evaluate(_dataset(validation, batch_size), verbose=0, return_dict=True)
  final = {f"val_{k}": float(v) for k, v in results.items()}
  info = {
    "source": {"kind": "fine_tuned", "parent": module, "head": head},
    "hyperparameters": settings,
    "metrics": final,
  }

  exported = classifier = None
  if is_chief:
    new_export = not os.path.exists(export_dir)
    exported = reexport.export_loaded_module(
      _module_object(layer), export_dir, info, overwrite=overwrite
    )
    if classifier_dir:
      from hubkit.exporters.keras_submodel import export_keras_submodel

      try:
        classifier = export_keras_submodel(model, classifier_dir, overwrite=overwrite)
      except BaseException:
        # All or nothing: a rerun must not be refused for a half-done job.
        if new_export:
          shutil.rmtree(exported, ignore_errors=True)
        raise
  else:
    scratch = tempfile.mkdtemp(prefix="hubkit_worker_export_")
    reexport.export_loaded_module(_module_object(layer), os.path.join(scratch, "module"), info)
    shutil.rmtree(scratch, ignore_errors=True)
  return FinetuneResult(
    exported,
    classifier,
    len(history.history.get("loss", [])),
    resumed_from,
    final,
    is_chief,
    _weights_sha256(model),
  )
