"""The main job, end to end on the bundled digits example.

1. Train a full tf_keras classifier on digits 0-4 and save it without its
   optimizer (the publisher's model).
2. Cut out its feature extractor (input up to the "features" layer) with the
   Keras exporter (which verifies parity with the classifier's layers): a
   Reusable SavedModel with hubkit metadata. Then prove it conforms with the
   checker (`hubkit check`).
3. Publish it into a local registry (deterministic archive, tfhub.dev card,
   Kaggle metadata) and serve it over the TF Hub hosting protocol on
   127.0.0.1.
4. Reuse it as a consumer would, by URL handle through a fresh cache:
   `hub.KerasLayer(url, trainable=True)` in a new tf_keras model with a new
   head, fine-tuned on digits 5-9, next to a frozen baseline.
5. Fine-tune the published module with `hubkit finetune` (Keras 3,
   hubkit.KerasLayer), re-export it alone and check the re-export.
"""

import contextlib
import dataclasses
import os
import shutil
from typing import Dict, Iterator, List, Tuple

from absl import logging
import numpy as np
import tensorflow_hub as hub
import tf_keras

from hubkit.cache import resolver
from hubkit.checker.check import check_module
from hubkit.demo import datasets
from hubkit.training import finetune as finetune_lib
from hubkit.registry import http_server
from hubkit.registry import publishing
from hubkit.errors import HubkitError, UsageError
from hubkit.exporters.keras_submodel import export_keras_submodel
from hubkit.utils.atomic import atomic_directory

FEATURE_LAYER = "features"
HANDLE = "hubkit/digits-features/1"
_NUM_CLASSES = 5


@dataclasses.dataclass
class DemoResult:
  """What the demo wrote and measured."""

  workdir: str
  data_source: str
  classifier_dir: str
  module_dir: str
  check_summary: str
  handle_url: str
  downloads: int
  finetune_accuracy: float
  finetune_check: str
  source_accuracy: float
  frozen_accuracy: float
  finetuned_accuracy: float
  artifacts: List[Tuple[str, str]] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    lines = [f"data: {self.data_source}", "written:"]
    lines += [f"  {what:<28} {path}" for what, path in self.artifacts]
    lines += [
      f"check: {self.check_summary}",
      f"served as {self.handle_url}: downloaded {self.downloads} time(s) for four "
      "loads (hubkit and tensorflow_hub share the cache)",
      "accuracy (held-out test split):",
      f"  source classifier, digits 0-4            {self.source_accuracy:.3f}",
      f"  frozen module + new head, digits 5-9     {self.frozen_accuracy:.3f}",
      f"  fine-tuned module + new head, digits 5-9 {self.finetuned_accuracy:.3f}",
      f"hubkit finetune (Keras 3), validation accuracy {self.finetune_accuracy:.3f}",
      f"check of the re-export: {self.finetune_check}",
    ]
    return "\n".join(lines)


def _split(x: np.ndarray, y: np.ndarray, classes: range) -> Dict[str, np.ndarray]:
  keep = np.isin(y, list(classes))
  x, y = x[keep], y[keep] - classes.start
  cut = int(0.8 * len(y))
  return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:]}


def _compile(model: tf_keras.Model, learning_rate: float) -> None:
  model.compile(
    optimizer=tf_keras.optimizers.Adam(learning_rate),
    loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
  )


def _build_classifier() -> tf_keras.Model:
  l2 = tf_keras.regularizers.L2(1e-4)
  inputs = tf_keras.Input(shape=(64,), name="pixels")
  x = tf_keras.layers.Dense(64, activation="relu", kernel_regularizer=l2, name="hidden")(inputs)
  x = tf_keras.layers.Dropout(0.1, name="dropout")(x)
  x = tf_keras.layers.Dense(32, activation="relu", kernel_regularizer=l2, name=FEATURE_LAYER)(x)
  outputs = tf_keras.layers.Dense(_NUM_CLASSES, name="logits")(x)
  return tf_keras.Model(inputs, outputs, name="digits_classifier")


def _fit(
  model: tf_keras.Model,
  data: Dict[str, np.ndarray],
  epochs: int,
  learning_rate: float,
  verbose: int,
) -> float:
  _compile(model, learning_rate)
  model.fit(
    data["x_train"],
    data["y_train"],
    epochs=epochs,
    batch_size=32,
    validation_split=0.1,
    verbose=verbose,
  )
  return float(model.evaluate(data["x_test"], data["y_test"], verbose=0)[1])


@contextlib.contextmanager
def _cache_env(cache_dir: str) -> Iterator[None]:
  """Points TFHUB_CACHE_DIR (read by hubkit and tensorflow_hub) at a folder."""
  previous = os.environ.get("TFHUB_CACHE_DIR")
  os.environ["TFHUB_CACHE_DIR"] = cache_dir
  try:
    yield
  finally:
    if previous is None:
      del os.environ["TFHUB_CACHE_DIR"]
    else:
      os.environ["TFHUB_CACHE_DIR"] = previous


def _new_model(handle: str, trainable: bool) -> tf_keras.Model:
  return tf_keras.Sequential(
    [
      tf_keras.Input(shape=(64,), name="pixels"),
      hub.KerasLayer(handle, trainable=trainable, name="feature_extractor"),
      tf_keras.layers.Dense(_NUM_CLASSES, name="new_head"),
    ]
  )


_MARKER = ".hubkit-demo"


def _claim_workdir(workdir: str) -> None:
  """Makes `workdir` the demo's, refusing a folder that holds anything else.

  The demo replaces its own sub-folders on a re-run; a marker file tells its
  folder from one that holds the user's files, which it must never touch.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UsageError(f"`workdir` {workdir} is a file; pass a new or empty folder.")
  if (
    os.path.isdir(workdir)
    and os.listdir(workdir)
    and not os.path.isfile(os.path.join(workdir, _MARKER))
  ):
    raise UsageError(
      f"`workdir` {workdir} already holds files that hubkit demo did not "
      "write; pass a new or empty folder."
    )
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, _MARKER), "w", encoding="utf-8") as f:
    f.write("written by hubkit demo; its sub-folders are replaced on every run\n")


def run_demo(workdir: str, epochs: int = 20, seed: int = 0, verbose: int = 2) -> DemoResult:
  """Runs the main job and returns what it wrote and measured.

  Args:
    workdir: directory for everything the demo writes: new, empty, or one an
      earlier run wrote (whose sub-directories are then replaced).
    epochs: training epochs for each stage.
    seed: seeds data shuffling and TensorFlow.
    verbose: Keras progress output (0 silent, 1 bar, 2 one line per epoch).

  Returns:
    A DemoResult with the paths written and the accuracies.
  """
  tf_keras.utils.set_random_seed(seed)
  x, y, source = datasets.load_digits(seed)
  source_task, target_task = _split(x, y, range(0, 5)), _split(x, y, range(5, 10))
  workdir = os.path.abspath(workdir)
  _claim_workdir(workdir)
  classifier_dir = os.path.join(workdir, "classifier")
  module_dir = os.path.join(workdir, "feature_extractor")

  logging.info("1/5 training the source classifier on digits 0-4 (%s)", source)
  classifier = _build_classifier()
  source_accuracy = _fit(classifier, source_task, epochs, 1e-2, verbose)
  with atomic_directory(classifier_dir, overwrite=True) as tmp:
    classifier.save(tmp, save_format="tf", include_optimizer=False)

  logging.info(
    "2/5 exporting layers up to %r as a Reusable SavedModel and checking it", FEATURE_LAYER
  )
  export_keras_submodel(classifier_dir, module_dir, output_layer=FEATURE_LAYER, overwrite=True)
  report = check_module(module_dir)
  if not report.conforms:
    raise HubkitError(f"the exported module does not conform:\n{report.table()}")

  logging.info("3/5 publishing it as %s into a local registry and serving it", HANDLE)
  # The registry and cache are the demo's own: start both afresh so that a
  # re-run republishes (handles are immutable) and really downloads.
  registry_root = os.path.join(workdir, "registry")
  cache_dir = os.path.join(workdir, "tfhub_cache")
  for folder in (registry_root, cache_dir):
    shutil.rmtree(folder, ignore_errors=True)
  archive = publishing.publish_module(
    module_dir,
    registry_root,
    HANDLE,
    description="Digit features learnt on digits 0-4.",
    # Digits are 8x8 images; sklearn's digits are not in tfhub.dev's datasets.
    task="image-feature-vector",
    extra={"dataset": ["other"]},
  )
  with http_server.serving(registry_root) as server, _cache_env(cache_dir):
    url = f"{server.url}/{HANDLE}"
    logging.info("4/5 loading %s into a fresh cache and reusing it on digits 5-9", url)
    cached = resolver.resolve(url)
    frozen_accuracy = _fit(_new_model(url, trainable=False), target_task, epochs, 1e-2, verbose)
    finetuned_accuracy = _fit(_new_model(url, trainable=True), target_task, epochs, 3e-3, verbose)
    logging.info("5/5 hubkit finetune on %s (Keras 3), re-export and check", url)
    data_file = os.path.join(workdir, "digits_5_9.npz")
    np.savez(data_file, x=target_task["x_train"], y=target_task["y_train"])
    tuned = finetune_lib.finetune(
      url,
      data_file,
      f"classification:{_NUM_CLASSES}",
      os.path.join(workdir, "feature_extractor_finetuned"),
      epochs=epochs,
      learning_rate=3e-3,
      overwrite=True,
      verbose=verbose,
    )
    tuned_report = check_module(tuned.export_dir)
    if not tuned_report.conforms:
      raise HubkitError(f"the fine-tuned module does not conform:\n{tuned_report.table()}")
    downloads = server.downloads[HANDLE]
  return DemoResult(
    workdir=workdir,
    data_source=source,
    classifier_dir=classifier_dir,
    module_dir=module_dir,
    check_summary=report.summary(),
    source_accuracy=source_accuracy,
    frozen_accuracy=frozen_accuracy,
    finetuned_accuracy=finetuned_accuracy,
    handle_url=url,
    downloads=downloads,
    finetune_accuracy=tuned.metrics["val_accuracy"],
    finetune_check=tuned_report.summary(),
    artifacts=[
      ("full classifier (tf_keras)", classifier_dir),
      ("feature-extractor module", module_dir),
      ("published archive", archive),
      ("registry pages", os.path.join(registry_root, "index.html")),
      ("cached download", cached),
      ("hubkit finetune re-export", tuned.export_dir),
    ],
  )
