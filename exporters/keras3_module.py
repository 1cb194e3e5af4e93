"""Wrap a Keras 3 model as a Reusable SavedModel.

Keras 3's own `model.export()` writes serving endpoints only: no `__call__`
with a training trace, no `regularization_losses`. `Keras3Module` adds them,
so a Keras 3 model can be fine-tuned by any Reusable SavedModel consumer
(`hub.KerasLayer` in tf_keras included).
"""

from typing import Any, List, Sequence

from absl import logging
import tensorflow as tf

from hubkit.module.reusable import ReusableModule


def _tf_variable(variable: Any) -> tf.Variable:
  # In the TensorFlow backend a Keras variable keeps its tf.Variable in
  # `.value`; the traced call reads that, so that is what must be saved.
  return variable.value if not isinstance(variable, tf.Variable) else variable


class Keras3Module(ReusableModule):
  """A Keras 3 model (TensorFlow backend) behind the Reusable interface.

  `variables` holds every tf.Variable the traced call reads, including
  non-trainable state such as batch-norm statistics and dropout seeds;
  `trainable_variables` holds those of the model's trainable weights;
  `regularization_losses` holds one function per weight regularizer.

  Example:

  ```python
  import keras
  import tensorflow as tf
  from hubkit.exporters.keras3_module import Keras3Module

  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
      2, kernel_regularizer=keras.regularizers.L2(0.1))])
  module = Keras3Module(model, [tf.TensorSpec([None, 4], tf.float32)])
  module.export("/tmp/keras3_module", overwrite=True)
  ```

  Args:
    model: a built Keras 3 model.
    input_signatures: the input structures to trace, batch dimension None.
  """

  def __init__(self, model: Any, input_signatures: Sequence[Any]):
    super().__init__(input_signatures=input_signatures)
    # Not tracked: saving walks the interface lists, not the Keras object graph.
    object.__setattr__(self, "_hubkit_model", model)
    # Lookup tables (StringLookup, IntegerLookup, TextVectorization) are
    # resources the traced call captures; saving needs them tracked here.
    self.lookup_tables = [
      value
      for layer in model._flatten_layers()
      for value in vars(layer).values()
      if isinstance(value, tf.saved_model.experimental.TrackableResource)
    ]
    trainable = {id(_tf_variable(w)) for w in model.trainable_weights}
    self.freeze(*[_tf_variable(w) for w in model.weights if id(_tf_variable(w)) not in trainable])
    for layer in model._flatten_layers():
      if getattr(layer, "activity_regularizer", None) is not None:
        logging.warning(
          "layer %r has an activity regularizer; it depends on the inputs and "
          "cannot be exported as a regularization loss, so consumers won't "
          "apply it.",
          layer.name,
        )

  def _variable_order(self) -> List[tf.Variable]:
    return [_tf_variable(v) for v in self._hubkit_model.variables]

  def call(self, inputs, training):
    return self._hubkit_model(inputs, training=training)

  def regularizers(self) -> List[Any]:
    losses = []
    for weight in self._hubkit_model.trainable_weights:
      regularizer = getattr(weight, "regularizer", None)
      if regularizer is not None:
        value = _tf_variable(weight)
        losses.append(lambda r=regularizer, v=value: tf.cast(r(v), tf.float32))
    return losses
