"""The confined child process that runs the checker's dynamic rules.

The parent (`ConfinedCheck`) starts `python -m hubkit.checker.child` once
per check, sends the request on stdin, and, once the static rules passed,
"go"; it reads one JSON line per finished rule from a private pipe, so results arrive (and can be shown) as
they come and a module that hangs or is killed still leaves the finished
rules' verdicts. The child confines itself (`confine.confine_self`) before
TensorFlow, Keras or the module is imported: while it is still one thread.
"""

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# Only light imports here: the child imports this module before it is
# confined, and TensorFlow must not start its threads before that.

from hubkit.errors import UsageError

_RESULT_FD_ENV = "HUBKIT_RESULT_FD"
# The address space may not exceed the machine's memory (a check of a small
# module peaks near 3 GB of address space, its weights come on top), so a
# runaway module fails an allocation instead of swapping the machine out;
# no single file it writes in its scratch directory may exceed 8 GiB.
DEFAULT_MEMORY_BYTES = max(8 << 30, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
DEFAULT_FILE_BYTES = 8 << 30


def _child_argv() -> List[str]:
  return [sys.executable, "-m", "hubkit.checker.child"]


def _child_env(scratch: str, result_fd: int) -> Dict[str, str]:
  env = dict(os.environ)
  env.update(
    {
      _RESULT_FD_ENV: str(result_fd),
      "TMPDIR": scratch,
      "KERAS_HOME": os.path.join(scratch, "keras"),
      "TFHUB_CACHE_DIR": os.path.join(scratch, "tfhub_modules"),
      "MPLCONFIGDIR": scratch,
      "PYTHONDONTWRITEBYTECODE": "1",
      "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
  )
  return env


class ConfinedCheck:
  """The dynamic rules of one check, in a confined child process.

  The child is started at once, so that its start-up (Python, TensorFlow,
  Keras) overlaps the static rules running in the parent; it loads nothing
  until `run()` says so, and `cancel()` stops it when a static rule failed.

  Args:
    module_dir: the SavedModel directory (read-only for the child).
    name: what the user asked to check, for messages.
    reference, inputs, tolerance, allow_ops, api: as for `check_module`.
    timeout: seconds `run()` waits before the child is killed.
  """

  def __init__(
    self,
    module_dir: str,
    name: str,
    reference: Optional[str] = None,
    inputs: Optional[str] = None,
    tolerance: float = 1e-5,
    allow_ops: Sequence[str] = (),
    timeout: float = 1800.0,
    api: Optional[str] = None,
  ):
    self._timeout = timeout
    self._scratch = tempfile.mkdtemp(prefix="hubkit_check_")
    self._stderr = tempfile.TemporaryFile()
    read_fd, write_fd = os.pipe()
    try:
      self._process = subprocess.Popen(
        _child_argv(),
        stdin=subprocess.PIPE,
        stdout=self._stderr,
        stderr=self._stderr,
        pass_fds=(write_fd,),
        cwd=self._scratch,
        env=_child_env(self._scratch, write_fd),
      )
    except BaseException:
      os.close(read_fd)
      self._cleanup()
      raise
    finally:
      os.close(write_fd)
    self._pipe = os.fdopen(read_fd, "rb", buffering=0)
    request = {
      "module_dir": os.path.abspath(module_dir),
      "name": name,
      "scratch": self._scratch,
      "reference": os.path.abspath(reference) if reference else None,
      "inputs": os.path.abspath(inputs) if inputs else None,
      "tolerance": tolerance,
      "allow_ops": list(allow_ops),
      "api": api,
    }
    self._send(json.dumps(request))

  def _send(self, line: str) -> None:
    try:
      self._process.stdin.write(line.encode() + b"\n")
      self._process.stdin.flush()
    except BrokenPipeError:
      pass  # the child ended early; run() reports why

  def _cleanup(self) -> None:
    self._stderr.close()
    shutil.rmtree(self._scratch, ignore_errors=True)

  def cancel(self) -> None:
    """Stops the child without letting it load anything."""
    self._process.kill()
    self._process.wait()
    self._pipe.close()
    self._cleanup()

  def run(
    self, rules: Sequence[Any], on_result: Optional[Callable[[Any, float], None]] = None
  ) -> Tuple[List[Any], Dict[str, Any], str]:
    """Lets the child run the dynamic rules and collects their results.

    Args:
      rules: the dynamic rules, in order (their results are expected back).
      on_result: called with each result (and its seconds) as it arrives.

    Returns:
      (results in rule order, figures, why the check is incomplete or "").

    Raises:
      UsageError: the child found the request unusable (e.g. a bad --inputs).
    """
    from hubkit.checker.report import FAIL, SKIP, CheckResult

    self._send("go")
    self._process.stdin.close()
    got: Dict[str, Any] = {}
    figures: Dict[str, Any] = {"seconds": {}}
    incomplete, usage_error, stopped = "", None, ""
    try:
      deadline, buffer = time.monotonic() + self._timeout, b""
      while True:
        left = deadline - time.monotonic()
        if left <= 0:
          self._process.kill()
          stopped = f"stopped after the {self._timeout:g} s time limit"
          break
        ready, _, _ = select.select([self._pipe], [], [], min(left, 1.0))
        if not ready:
          continue
        chunk = self._pipe.read(1 << 16)
        if not chunk:
          break
        buffer += chunk
        while b"\n" in buffer:
          line, buffer = buffer.split(b"\n", 1)
          message = json.loads(line)
          if "result" in message:
            result = CheckResult(**message["result"])
            got[result.id] = result
            figures["seconds"][result.id] = message["seconds"]
            if on_result:
              on_result(result, message["seconds"])
          elif "figures" in message:
            figures.update({k: v for k, v in message["figures"].items() if k != "seconds"})
          elif "confinement" in message:
            figures["confinement"] = message["confinement"]
          elif message.get("error") == "confinement":
            incomplete = (
              f"confinement is unavailable here ({message['message']}); the "
              "dynamic rules were not run: rerun with --unconfined "
              "(unconfined=True) only for a module you trust"
            )
          elif message.get("error") == "usage":
            usage_error = message["message"]
      code = self._process.wait()
      self._stderr.seek(0)
      tail = [l for l in self._stderr.read().decode("utf-8", "replace").splitlines() if l.strip()]
    finally:
      self._pipe.close()
      self._cleanup()
    if usage_error:
      raise UsageError(usage_error)
    if not stopped and code != 0 and not incomplete:
      stopped = f"the confined process ended with code {code}" + (
        f" ({tail[-1][:200]})" if tail else ""
      )
    results, failed_one = [], False
    for rule in rules:
      if rule.id in got:
        results.append(got[rule.id])
      elif incomplete:
        results.append(CheckResult(rule.id, rule.title, SKIP, incomplete))
      elif not failed_one:
        # The module hung, exhausted a limit or crashed the process: the
        # rule that was running when it happened fails, the rest are not run.
        results.append(
          CheckResult(rule.id, rule.title, FAIL, f"could not finish: {stopped}", rule.fix)
        )
        failed_one = True
      else:
        results.append(CheckResult(rule.id, rule.title, SKIP, f"not run: {stopped}"))
    return results, figures, incomplete


def _emit(fd: int, message: Dict[str, Any]) -> None:
  os.write(fd, (json.dumps(message, default=str) + "\n").encode())


def main() -> int:
  """The child: confine, then run the dynamic rules and report them."""
  result_fd = int(os.environ[_RESULT_FD_ENV])
  request = json.loads(sys.stdin.readline())
  # Confine before anything else runs: no TensorFlow thread exists yet.
  from hubkit.safety import confine

  try:
    description = confine.confine_self(
      request["scratch"], memory_bytes=DEFAULT_MEMORY_BYTES, file_bytes=DEFAULT_FILE_BYTES
    )
  except (confine.ConfinementError, OSError) as e:
    _emit(result_fd, {"error": "confinement", "message": str(e)})
    return 0
  _emit(result_fd, {"confinement": description})
  os.environ.pop(_RESULT_FD_ENV, None)
  from hubkit.utils import quiet

  quiet.start_tensorflow(2)
  from hubkit.checker import runner
  from hubkit.checker.context import Context

  # The consumers the rules build; imported while the parent runs the static
  # rules, so that their start-up is off the check's critical path.
  runner.rules()
  import keras  # noqa: F401
  import tensorflow_hub  # noqa: F401
  import tf_keras  # noqa: F401

  # Ready: wait for the parent's static rules to pass.
  if sys.stdin.readline().strip() != "go":
    return 0
  ctx = Context(
    request["module_dir"],
    request["name"],
    reference=request["reference"],
    inputs_file=request["inputs"],
    tolerance=request["tolerance"],
    allow_ops=request["allow_ops"],
    api=request["api"],
  )
  try:
    runner.run_dynamic_rules(
      ctx, lambda result, seconds: _emit(result_fd, {"result": result.__dict__, "seconds": seconds})
    )
  except UsageError as e:
    _emit(result_fd, {"error": "usage", "message": str(e)})
    return 0
  _emit(result_fd, {"figures": ctx.figures})
  # Everything is reported and the parent removes the scratch folder:
  # skip TensorFlow's interpreter teardown, which costs most of a second.
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)


if __name__ == "__main__":
  sys.exit(main())
