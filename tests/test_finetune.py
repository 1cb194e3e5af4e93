"""Tests for hubkit finetune: training, re-export, data errors, resume, multi-worker."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import helpers
import hubkit
from hubkit.demo import datasets
from hubkit.utils import atomic
from hubkit.training import finetune
from hubkit import modules
from hubkit.training import epoch_backup


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("finetune")
  module = modules.export_module(
    "mlp_feature_vector",
    str(root / "mlp"),
    config={"input_dim": 64, "hidden_units": [32, 16], "dropout_rate": 0.0},
  )
  x, y, _ = datasets.load_digits()
  data = str(root / "digits.npz")
  np.savez(data, x=x[:600], y=y[:600])
  text = modules.export_module(
    "text_embedding", str(root / "text"), config={"vocabulary": ["good", "bad", "film"], "dim": 4}
  )
  csv_path = root / "reviews.csv"
  rows = ["text,sentiment"] + [f"{'good' if i % 2 else 'bad'} film {i},{i % 2}" for i in range(40)]
  csv_path.write_text("\n".join(rows) + "\n")
  return {"root": root, "module": module, "data": data, "text": text, "csv": str(csv_path)}


def _outputs(path, x):
  return tf.saved_model.load(path)(tf.constant(x), training=False).numpy()


def test_finetune_reexports_a_conforming_module_and_classifier(setup, tmp_path):
  result = finetune.finetune(
    setup["module"],
    setup["data"],
    "classification:10",
    str(tmp_path / "module"),
    epochs=3,
    batch_size=32,
    learning_rate=5e-3,
    classifier_dir=str(tmp_path / "classifier"),
    tensorboard_dir=str(tmp_path / "tb"),
    verbose=0,
  )
  assert result.epochs_run == 3 and result.metrics["val_accuracy"] > 0.5
  record = hubkit.read_metadata(result.export_dir)
  assert record["source"] == {
    "kind": "fine_tuned",
    "parent": setup["module"],
    "head": "classification:10",
  }
  assert record["hyperparameters"]["learning_rate"] == 5e-3
  assert record["metrics"]["val_accuracy"] == pytest.approx(result.metrics["val_accuracy"])
  x = np.load(setup["data"])["x"][:5]
  assert not np.allclose(_outputs(result.export_dir, x), _outputs(setup["module"], x))
  report = hubkit.check_module(result.export_dir)
  assert report.conforms, report.table()
  classifier = tf.saved_model.load(result.classifier_dir)
  assert classifier(tf.constant(x)).shape == (5, 10)
  assert os.listdir(tmp_path / "tb")
  # The per-epoch checkpoint is removed once training completed.
  assert not os.path.exists(tmp_path / "module.checkpoint") or not any(
    files for _, _, files in os.walk(tmp_path / "module.checkpoint")
  )


def test_keras2_mirrored_and_text_csv_with_assets(setup, tmp_path):
  result = finetune.finetune(
    setup["module"],
    setup["data"],
    "regression:1",
    str(tmp_path / "regression"),
    epochs=2,
    keras_version="2",
    strategy="mirrored",
    verbose=0,
  )
  assert "val_mae" in result.metrics
  text = finetune.finetune(
    setup["text"],
    setup["csv"],
    "classification:2",
    str(tmp_path / "text"),
    epochs=2,
    label_column="sentiment",
    learning_rate_schedule="cosine",
    verbose=0,
  )
  with open(os.path.join(text.export_dir, "assets", "vocab.txt")) as f:
    assert f.read().split() == ["good", "bad", "film"]
  assert hubkit.check_module(text.export_dir).conforms


@pytest.mark.parametrize(
  "head, data_change, message",
  [
    (
      "classification:10",
      {"x": np.zeros([20, 8], np.float32)},
      r"shape \[8\], but the module takes \[64\]",
    ),
    ("classification:3", {}, r"labels must be integers in \[0, 3\)"),
    ("classification:1", {}, "`head`='classification:1' must be classification:N"),
    ("regression:2", {}, "regression:2 needs 2 target value"),
    ("classification:10", {"x": np.array(["a"] * 20)}, "takes float32"),
  ],
)
def test_data_that_does_not_fit_fails_before_training(setup, tmp_path, head, data_change, message):
  data = dict(np.load(setup["data"]))
  data.update(data_change)
  data["y"] = data["y"][: len(data["x"])]
  path = str(tmp_path / "data.npz")
  np.savez(path, **data)
  with pytest.raises(hubkit.UsageError, match=message):
    finetune.finetune(setup["module"], path, head, str(tmp_path / "out"), verbose=0)
  assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.checkpoint")


def test_cli_errors_are_one_line(setup, tmp_path, capsys):
  base = ["hubkit", "finetune", f"--module={setup['module']}", f"--export_dir={tmp_path / 'o'}"]
  cases = [
    (base + [f"--data={tmp_path / 'none.npz'}", "--head=classification:2"], "does not exist"),
    (base + [f"--data={setup['csv']}", "--head=classification:2"], "no column 'label'"),
    (
      base
      + [
        f"--data={setup['data']}",
        "--head=classification:10",
        "--strategy=multi_worker",
        "--keras=2",
      ],
      "TF_CONFIG",
    ),
    (
      base + [f"--data={setup['data']}", "--head=classification:10", "--strategy=multi_worker"],
      "pass --keras=2",
    ),
    (base + [f"--data={setup['data']}", "--head=classes:10"], "must be classification:N"),
  ]
  for argv, message in cases:
    assert message in helpers.cli_error(capsys, argv[1:])


class _Killed(BaseException):
  """Stands for a kill: nothing after the point where it is raised runs."""


def _dies_in_epoch(original, epoch_to_die, state):
  def save_weights(model, path, *args, **kwargs):
    state["epoch"] = state.get("epoch", 0) + 1
    original(model, path, *args, **kwargs)
    if state["epoch"] == epoch_to_die:
      # Half of every file written so far, as a kill during the write leaves it.
      for name in os.listdir(os.path.dirname(path)):
        file = os.path.join(os.path.dirname(path), name)
        with open(file, "r+b") as f:
          f.truncate(os.path.getsize(file) // 2)
      raise _Killed()

  return save_weights


def _four_epochs(setup, export_dir, keras_version):
  return finetune.finetune(
    setup["module"],
    setup["data"],
    "classification:10",
    str(export_dir),
    epochs=4,
    keras_version=keras_version,
    patience=100,
    verbose=0,
  )


@pytest.fixture(scope="module")
def four_epochs(setup, tmp_path_factory):
  root = tmp_path_factory.mktemp("straight")
  return {v: _four_epochs(setup, root / v, v).export_dir for v in ("3", "2")}


@pytest.mark.parametrize(
  "keras_version, dies_in", [("3", "weights"), ("3", "state"), ("2", "weights")]
)
def test_a_run_killed_while_saving_resumes_from_the_last_complete_epoch(
  setup, tmp_path, monkeypatch, four_epochs, keras_version, dies_in
):
  lib = pytest.importorskip("keras" if keras_version == "3" else "tf_keras")
  with monkeypatch.context() as patch:
    if dies_in == "weights":
      patch.setattr(lib.Model, "save_weights", _dies_in_epoch(lib.Model.save_weights, 3, {}))
    else:
      written = []
      original = atomic.atomic_file

      def dies_naming_epoch_3(path, *args, **kwargs):
        written.append(path)
        if len(written) == 3:
          raise _Killed()
        return original(path, *args, **kwargs)

      patch.setattr(atomic, "atomic_file", dies_naming_epoch_3)
    with pytest.raises(_Killed):
      _four_epochs(setup, tmp_path / "run", keras_version)
  assert not os.path.exists(tmp_path / "run")
  resumed = _four_epochs(setup, tmp_path / "run", keras_version)
  assert resumed.resumed_from_epoch == 2 and resumed.epochs_run == 2
  assert not os.path.exists(tmp_path / "run.checkpoint") or not any(
    files for _, _, files in os.walk(tmp_path / "run.checkpoint")
  )
  x = np.load(setup["data"])["x"][:20]
  np.testing.assert_allclose(
    _outputs(resumed.export_dir, x), _outputs(four_epochs[keras_version], x), rtol=1e-4, atol=1e-5
  )


def test_an_unreadable_training_state_is_refused_with_the_fix(setup, tmp_path):
  backup = epoch_backup.EpochBackup(pytest.importorskip("keras"), str(tmp_path / "state"))
  os.makedirs(tmp_path / "state")
  (tmp_path / "state" / "state.json").write_text('{"epoch": ')
  with pytest.raises(hubkit.UsageError, match=r"cannot read the training state .* remove"):
    backup.saved_epoch()
  (tmp_path / "state" / "state.json").write_text('{"epoch": 2}')
  with pytest.raises(hubkit.UsageError, match="names epoch 2, which is missing"):
    backup.saved_epoch()


def _command(setup, export_dir, epochs, extra=()):
  return [
    sys.executable,
    "-c",
    "from hubkit.cli import run; run()",
    "finetune",
    f"--module={setup['module']}",
    f"--data={setup['data']}",
    "--head=classification:10",
    f"--export_dir={export_dir}",
    f"--epochs={epochs}",
    "--batch_size=8",
    "--verbose=0",
    "--patience=100",
    *extra,
  ]


@pytest.mark.slow
def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(setup, tmp_path):
  interrupted = tmp_path / "interrupted"
  proc = subprocess.Popen(
    _command(setup, interrupted, 6), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  state = None
  deadline = time.monotonic() + 120
  while proc.poll() is None and time.monotonic() < deadline:
    found = [
      os.path.join(d, f)
      for d, _, files in os.walk(f"{interrupted}.checkpoint")
      for f in files
      if f == "state.json"
    ]
    if found:
      with open(found[0]) as f:
        try:
          state = json.load(f)["epoch"]
        except ValueError:
          state = None
      if state and state >= 2:
        proc.send_signal(signal.SIGKILL)
        break
    time.sleep(0.05)
  proc.wait(timeout=30)
  assert state and state >= 2 and proc.returncode == -signal.SIGKILL, "not killed mid-run"
  assert not os.path.exists(interrupted)
  rerun = subprocess.run(
    _command(setup, interrupted, 6), capture_output=True, text=True, check=False
  )
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert f"resumed after epoch {state}" in rerun.stdout
  straight = finetune.finetune(
    setup["module"],
    setup["data"],
    "classification:10",
    str(tmp_path / "straight"),
    epochs=6,
    batch_size=8,
    patience=100,
    verbose=0,
  )
  x = np.load(setup["data"])["x"][:20]
  np.testing.assert_allclose(
    _outputs(str(interrupted), x), _outputs(straight.export_dir, x), rtol=1e-4, atol=1e-5
  )


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_train_identically_and_only_the_chief_exports(setup, tmp_path):
  ports = [_free_port(), _free_port()]
  export_dir = tmp_path / "multi"
  procs = []
  for index in range(2):
    env = dict(
      os.environ,
      TF_CONFIG=json.dumps(
        {
          "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
          "task": {"type": "worker", "index": index},
        }
      ),
    )
    procs.append(
      subprocess.Popen(
        _command(setup, export_dir, 2, ["--strategy=multi_worker", "--keras=2"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
      )
    )
  outputs = [p.communicate(timeout=300) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in outputs]
  fingerprints = [
    [l for l in out.splitlines() if l.startswith("weights sha256")] for out, _ in outputs
  ]
  assert fingerprints[0] == fingerprints[1] and fingerprints[0]
  assert "not the chief worker" in outputs[1][0]
  assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".checkpoint")) == [
    "multi"
  ]
  assert hubkit.read_metadata(str(export_dir))["hyperparameters"]["strategy"] == "multi_worker"


def test_same_seed_gives_the_same_weights(setup, tmp_path):
  module = modules.export_module(
    "mlp_feature_vector",
    str(tmp_path / "dropout"),
    config={"input_dim": 64, "hidden_units": [32, 16], "dropout_rate": 0.3},
  )
  runs = [
    finetune.finetune(
      module,
      setup["data"],
      "classification:10",
      str(tmp_path / f"r{i}"),
      epochs=2,
      seed=seed,
      verbose=0,
    )
    for i, seed in enumerate((7, 7, 8))
  ]
  assert runs[0].weights_sha256 == runs[1].weights_sha256
  assert runs[0].weights_sha256 != runs[2].weights_sha256
  first, second = (tf.saved_model.load(r.export_dir) for r in runs[:2])
  for a, b in zip(first.variables, second.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_non_finite_data_and_a_diverging_loss_export_nothing(setup, tmp_path):
  x = np.load(setup["data"])["x"][:64].copy()
  x[3, 5], x[10, 0] = np.nan, np.inf
  bad = str(tmp_path / "bad.npz")
  np.savez(bad, x=x, y=np.arange(64) % 10)
  with pytest.raises(hubkit.UsageError, match="x has 2 non-finite values"):
    finetune.finetune(setup["module"], bad, "classification:10", str(tmp_path / "a"))
  huge = str(tmp_path / "huge.npz")
  np.savez(huge, x=np.load(setup["data"])["x"][:64], y=np.full(64, 3e38, np.float32))
  with pytest.raises(hubkit.HubkitError, match="nothing was exported"):
    finetune.finetune(
      setup["module"], huge, "regression:1", str(tmp_path / "b"), epochs=2, verbose=0
    )
  assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")
