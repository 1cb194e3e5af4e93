"""TF Serving warm-up requests made from a module's sample inputs.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (a TFRecord file
of `PredictionLog`s) when it loads a model, so that the first real request
does not pay for graph initialisation. The requests call `serving_default`
with sample inputs made from its signature (words from the module's own
vocabulary for text); nothing of the module is loaded or run to write them.

Example:

  from hubkit.formats import warmup
  records = warmup.warmup_requests("/tmp/mlp", "mlp")
"""

import os
import tempfile

from hubkit.module import interface
from hubkit.errors import UsageError

FILE_NAME = "assets.extra/tf_serving_warmup_requests"
SIGNATURE = "serving_default"


def warmup_requests(module_dir: str, model_name: str, count: int = 1) -> bytes:
  """The content of a warm-up file: `count` Predict requests to serving_default.

  Args:
    module_dir: the SavedModel directory.
    model_name: the model name the requests carry (TF Serving's --model_name).
    count: how many requests (each a batch of sample inputs).

  Returns:
    The TFRecord file's bytes (deterministic for a given module).

  Raises:
    UsageError: no serving_default signature, or tensorflow-serving-api is
      not installed.
  """
  try:
    from tensorflow_serving.apis import model_pb2
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_log_pb2
  except ImportError as e:
    raise UsageError(
      "warm-up requests need tensorflow-serving-api: pip install 'hubkit[serving]'."
    ) from e
  import tensorflow as tf

  from hubkit.module import sample_inputs
  from hubkit.safety import ops

  signatures = interface.saved_signatures(ops.parse(module_dir, full=True))
  if SIGNATURE not in signatures:
    raise UsageError(
      f"{module_dir} has no {SIGNATURE} signature for warm-up requests to call; export it "
      "with one (hubkit's exporters do) or pack without `warmup`."
    )
  specs = {
    name: sample_inputs.with_rank(
      tf.TensorSpec(None if spec["shape"] is None else spec["shape"], spec["dtype"])
    )
    for name, spec in signatures[SIGNATURE]["inputs"].items()
  }
  records = []
  for seed in range(count):
    request = predict_pb2.PredictRequest(
      model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SIGNATURE)
    )
    for name, value in sample_inputs.make_inputs(specs, module_dir, seed=seed).items():
      request.inputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
    log = prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    records.append(log.SerializeToString(deterministic=True))
  with tempfile.TemporaryDirectory(prefix="hubkit_warmup_") as tmp:
    path = os.path.join(tmp, "requests")
    with tf.io.TFRecordWriter(path) as writer:
      for record in records:
        writer.write(record)
    with open(path, "rb") as f:
      return f.read()
