"""A per-epoch training state that survives a kill at any moment.

Keras 3's `BackupAndRestore` rewrites `latest.weights.h5` in place and then its
epoch file, so a run killed during the write leaves a weights file that no
rerun can open ("file signature not found") or weights one epoch ahead of the
recorded epoch. Here every epoch's weights (model and optimizer) go to a fresh
directory that is renamed into place once complete, and only then does
`state.json` (itself replaced atomically) name it: whatever moment a run dies
at, the state names a complete epoch.

Example:

  backup = epoch_backup.EpochBackup(lib, "/tmp/run.checkpoint")
  epoch = backup.restore(model)        # 0 on the first run
  model.fit(data, epochs=5, initial_epoch=epoch, callbacks=[backup.callback()])
"""

import json
import os
import shutil
from typing import Any

from hubkit.utils import atomic
from hubkit.errors import UsageError

_STATE = "state.json"


def _epoch_dir(backup_dir: str, epoch: int) -> str:
  return os.path.join(backup_dir, f"epoch-{epoch:05d}")


class EpochBackup:
  """Saves the training state after every epoch and restores the last one.

  Args:
    lib: the Keras flavour the model was built with (`keras` or `tf_keras`).
    backup_dir: the directory of this run's state; removed when training ends.
  """

  def __init__(self, lib: Any, backup_dir: str):
    self._lib = lib
    self._dir = os.path.abspath(backup_dir)
    # Keras 3 writes weights and optimizer state into one .weights.h5 file;
    # tf_keras does so only in its TensorFlow checkpoint format (a prefix).
    self._weights_name = "model" if lib.__name__ == "tf_keras" else "model.weights.h5"

  def saved_epoch(self) -> int:
    """The last complete epoch on disk, 0 if none.

    Raises:
      UsageError: the state file is not one hubkit wrote.
    """
    path = os.path.join(self._dir, _STATE)
    if not os.path.exists(path):
      return 0
    try:
      with open(path, encoding="utf-8") as f:
        epoch = json.load(f)["epoch"]
      if not isinstance(epoch, int) or epoch < 1:
        raise ValueError(epoch)
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise UsageError(
        f"cannot read the training state {path} ({e}); remove {self._dir} to start over."
      ) from e
    if not os.path.isdir(_epoch_dir(self._dir, epoch)):
      raise UsageError(
        f"the training state names epoch {epoch}, which is missing from "
        f"{self._dir}; remove that directory to start over."
      )
    return epoch

  def restore(self, model: Any) -> int:
    """Loads the last complete epoch's weights and optimizer state into `model`.

    Args:
      model: a built, compiled model of the same architecture.

    Returns:
      The number of epochs already done (0 when there is nothing to resume).
    """
    epoch = self.saved_epoch()
    if epoch:
      # Optimizer slots are created lazily; they must exist to receive state.
      model.optimizer.build(model.trainable_variables)
      model.load_weights(os.path.join(_epoch_dir(self._dir, epoch), self._weights_name))
    return epoch

  def save(self, model: Any, epoch: int) -> None:
    """Writes the state after `epoch` epochs; the previous one stays until then."""
    previous = self.saved_epoch()
    target = _epoch_dir(self._dir, epoch)
    with atomic.atomic_directory(target, overwrite=True) as tmp:
      model.save_weights(os.path.join(tmp, self._weights_name))
    with atomic.atomic_file(os.path.join(self._dir, _STATE), "w") as f:
      json.dump({"epoch": epoch}, f)
    if previous and previous != epoch:
      shutil.rmtree(_epoch_dir(self._dir, previous), ignore_errors=True)

  def remove(self) -> None:
    """Deletes the state (training finished)."""
    shutil.rmtree(self._dir, ignore_errors=True)

  def callback(self) -> Any:
    """A callback of the model's Keras flavour that saves after every epoch."""
    backup = self

    class _SaveEveryEpoch(self._lib.callbacks.Callback):
      def on_epoch_end(self, epoch, logs=None):
        backup.save(self.model, epoch + 1)

      def on_train_end(self, logs=None):
        backup.remove()

    return _SaveEveryEpoch()
