"""The anchor for `hubkit finetune`: the same job written by hand.

tf_keras + hub.KerasLayer, a new 10-class head, Adam, a validation split, a
resumable checkpoint every epoch, early stopping with the best weights
restored, and the fine-tuned module exported: what a user writes without
hubkit (run by speed_benchmark.py in its own process).

  python benchmarks/_hand_finetune.py MODULE DATA.npz EXPORT_DIR EPOCHS
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras


def main(module: str, data: str, export_dir: str, epochs: int) -> None:
  arrays = np.load(data)
  x, y = arrays["x"], arrays["y"]
  cut = int(0.8 * len(x))
  tf_keras.utils.set_random_seed(0)
  layer = hub.KerasLayer(module, trainable=True)
  inputs = tf_keras.Input(x.shape[1:])
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(10)(layer(inputs)))
  model.compile(
    optimizer=tf_keras.optimizers.Adam(1e-3),
    loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
  )
  model.fit(
    x[:cut],
    y[:cut],
    validation_data=(x[cut:], y[cut:]),
    epochs=epochs,
    batch_size=32,
    verbose=0,
    callbacks=[
      tf_keras.callbacks.BackupAndRestore(export_dir + ".checkpoint"),
      tf_keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True),
    ],
  )
  tf.saved_model.save(layer.resolved_object, export_dir)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
