"""Test helpers shared by several test files (imported as `helpers`)."""

import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras


def fine_tune_through_hub(
  handle: str, x: np.ndarray, steps: int = 3, learning_rate: float = 0.05
) -> dict:
  """Fine-tunes `hub.KerasLayer(handle, trainable=True)` under a new head.

  Returns:
    The layer, its trainable and non-trainable weights before and after,
    the model's regularization losses and the loss per step.
  """
  layer = hub.KerasLayer(handle, trainable=True)
  inputs = tf_keras.Input(
    shape=x.shape[1:], dtype=tf.as_dtype(x.dtype) if x.dtype != object else tf.string
  )
  outputs = tf_keras.layers.Dense(1)(layer(inputs))
  model = tf_keras.Model(inputs, outputs)
  model.compile(optimizer=tf_keras.optimizers.SGD(learning_rate), loss="mse")
  before = [w.numpy().copy() for w in layer.trainable_weights]
  frozen_before = [w.numpy().copy() for w in layer.non_trainable_weights]
  target = np.linspace(-1.0, 1.0, len(x)).astype(np.float32)[:, None]
  history = model.fit(x, target, epochs=steps, batch_size=len(x), verbose=0)
  return {
    "layer": layer,
    "model": model,
    "before": before,
    "frozen_before": frozen_before,
    "losses": history.history["loss"],
  }


def moved(before: Sequence[np.ndarray], variables: Sequence[tf.Variable]) -> List[bool]:
  """Whether each variable's value differs from its value in `before`."""
  return [not np.allclose(b, v.numpy()) for b, v in zip(before, variables)]


def write_tar(path: str, entries: Sequence[Tuple[str, str, bytes]]) -> str:
  """Writes a .tar.gz of (name, "file" or "symlink", data) entries, as is."""
  with tarfile.open(path, "w:gz") as tar:
    for name, kind, data in entries:
      info = tarfile.TarInfo(name)
      if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
      else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  return path


def cli_error(capsys, argv: Sequence[str], code: int = 2) -> str:
  """Runs `hubkit argv...` in process and asserts hubkit's error contract.

  The command must exit with `code` and print exactly one line to stderr,
  "hubkit <command>: error: ...", with no traceback.

  Returns:
    That line.
  """
  from hubkit import cli

  assert cli.main(["hubkit", *argv]) == code, argv
  captured = capsys.readouterr()
  err = captured.err.strip()
  assert "Traceback" not in captured.err + captured.out, captured.err
  assert err.count("\n") == 0, err
  command = argv[0] if argv and argv[0] in cli.COMMANDS else None
  assert err.startswith(f"hubkit {command}: error:" if command else "hubkit: error:"), err
  return err


def vocabulary_table(path: str) -> tf.lookup.StaticHashTable:
  """A word -> line-number table read from a vocabulary file (-1 if absent)."""
  initializer = tf.lookup.TextFileInitializer(
    path,
    tf.string,
    tf.lookup.TextFileIndex.WHOLE_LINE,
    tf.int64,
    tf.lookup.TextFileIndex.LINE_NUMBER,
  )
  return tf.lookup.StaticHashTable(initializer, -1)


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen) -> None:
  """Waits until a server process listens on `port` (fails if it exits)."""
  deadline = time.monotonic() + 20
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      raise AssertionError(f"the server exited with {proc.returncode}")
    try:
      socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
      return
    except OSError:
      time.sleep(0.05)
  raise AssertionError("the server did not start")


def start_nginx(root: str, scratch) -> Tuple[subprocess.Popen, str]:
  """Debian's nginx with a plain `root` over `root` (as docs/publishing.md
  configures it), on a free port; returns the process and its base URL."""
  port = free_port()
  temp = scratch / "nginx"
  temp.mkdir()
  user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the root
  paths = " ".join(
    f"{kind}_temp_path {temp / kind};"
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
  )
  config = temp / "nginx.conf"
  config.write_text(
    f"{user}daemon off;\nworker_processes 1;\npid {temp / 'nginx.pid'};\n"
    f"error_log {temp / 'error.log'};\nevents {{}}\n"
    f"http {{ access_log off; default_type application/octet-stream; {paths}\n"
    "  types { text/html html; text/css css; text/javascript js; application/json json; }\n"
    f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
  )
  proc = subprocess.Popen(
    [shutil.which("nginx"), "-c", str(config), "-e", str(temp / "error.log")],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  wait_for_port(port, proc)
  return proc, f"http://127.0.0.1:{port}"


def start_file_server(root: str) -> Tuple[subprocess.Popen, str]:
  """Python's own static file server over `root`; returns it and its base URL."""
  port = free_port()
  proc = subprocess.Popen(
    [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", root],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  wait_for_port(port, proc)
  return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
  proc.terminate()
  proc.wait(timeout=10)
