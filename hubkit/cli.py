"""The `hubkit` command line: one sub-command per job.

Each sub-command lives in `hubkit/commands/<name>.py`, defines its absl flags
on its own `FLAGS = flags.FlagValues()`, a `main(args) -> int` that calls
one public library function, and optionally `logical_cpus()` (the CPU
devices TensorFlow needs for it). This file only dispatches, parses flags and turns
expected errors into one-line messages with a non-zero exit code.
"""

import importlib
import os
import re
import sys
from typing import List, Optional

# TensorFlow's C++ start-up chatter would bury the one-line messages this
# tool promises; users can still opt back in by setting the variable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags
from absl import logging

from hubkit.errors import HubkitError, UsageError
from hubkit.utils import quiet

# name -> (module under hubkit.commands, one-line summary). Order is help order.
COMMANDS = {
  "demo": ("demo", "Run the main job end to end on the bundled digits example."),
  "export-module": ("export_module", "Export a module from the hubkit module library by name."),
  "export-keras": (
    "export_keras",
    "Cut a piece out of a Keras model and export it as a Reusable SavedModel.",
  ),
  "check": (
    "check",
    "Check that a module loads, behaves and fine-tunes as the interface promises.",
  ),
  "info": (
    "info",
    "Show a module's inputs, outputs, variables, signatures, provenance and last check.",
  ),
  "diff": (
    "diff",
    "Compare two versions of a module; exit 1 when NEW would break consumers of OLD.",
  ),
  "convert": (
    "convert",
    "Convert a module to LiteRT (TFLite), verified against the SavedModel's outputs.",
  ),
  "verify": ("verify", "Say which trusted key signed a module (OpenSSF model-signing)."),
  "pack": ("pack", "Pack a module into a deterministic hosting-protocol .tar.gz with its card."),
  "validate-card": ("validate_card", "Validate a tfhub.dev markdown card."),
  "publish": ("publish", "Pack and publish a module into a local registry root."),
  "serve": ("serve", "Serve a registry root over the TF Hub hosting protocol."),
  "cache": ("cache", "List, verify, remove or prune cached modules (TFHUB_CACHE_DIR)."),
  "finetune": (
    "finetune",
    "Fine-tune a module with a new head (resumable, distributed) and re-export it.",
  ),
}

# Commands that never touch TensorFlow: the CLI does not start it for them,
# so they cost a Python start, not a TensorFlow one.
_WITHOUT_TENSORFLOW = frozenset({"pack", "validate-card", "publish", "serve", "cache", "verify"})

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _hide_library_info(record) -> bool:
  """Keeps hubkit's progress messages but drops TensorFlow's and Keras' INFO lines."""
  if record.levelno >= logging.converter.STANDARD_WARNING:
    return True
  return not any(
    f"{os.sep}{lib}{os.sep}" in record.pathname
    for lib in ("tensorflow", "tf_keras", "keras", "tensorflow_hub")
  )


def _usage() -> str:
  width = max(len(name) for name in COMMANDS)
  lines = ["usage: hubkit <command> [--flags] [args]", "", "commands:"]
  lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
  lines += ["", "Run 'hubkit <command> --help' for the flags of one command."]
  return "\n".join(lines)


def _command_help(name: str, command) -> str:
  doc = (command.__doc__ or "").strip()
  return f"usage: hubkit {name} [--flags]\n\n{doc}\n\nflags:\n{command.FLAGS.get_help()}"


def _error(prefix: str, message: str, code: int) -> int:
  first_line = " ".join(str(message).split())
  print(f"{prefix}: error: {first_line}", file=sys.stderr)
  return code


def _as_flags(message: str, command) -> str:
  """Names a command's flags where the library named Python arguments.

  Library errors speak to Python callers, writing an argument as `name` (or
  `name`=VALUE); on the command line the same words become --name, through
  the command's FLAG_FOR_ARGUMENT where a flag is named differently.
  """
  names = set(command.FLAGS)
  renamed = getattr(command, "FLAG_FOR_ARGUMENT", {})

  def flag(match: "re.Match") -> str:
    name = renamed.get(match.group(1), match.group(1))
    return f"--{name}" if name in names else match.group(0)

  return re.sub(r"`(\w+)`", flag, message)


def _with_path_flags(message: str, command) -> str:
  """Says which flag gave a path that a library error names.

  The library names the path it could not use ("cannot write /proc/x ...");
  on the command line the user also needs the flag that carried it.
  """
  for name in command.FLAGS:
    flag = command.FLAGS[name]
    if not flag.present or not isinstance(flag.value, str) or f"--{name}" in message:
      continue
    for form in dict.fromkeys((os.path.abspath(flag.value), flag.value)):
      found = re.search(re.escape(form) + r"(?![\w./-])", message) if os.sep in form else None
      if found:
        message = f"{message[: found.end()]} (--{name}){message[found.end() :]}"
        break
  return message


def main(argv: Optional[List[str]] = None) -> int:
  """Runs one hubkit command and returns its exit code.

  Args:
    argv: the full command line, program name first; defaults to sys.argv.

  Returns:
    0 on success, 1 when the job failed, 2 when it could not run (bad
    command, flag or path).
  """
  argv = list(sys.argv if argv is None else argv)
  # --traceback (any command) shows where an unexpected failure happened.
  show_traceback = "--traceback" in argv
  argv = [a for a in argv if a != "--traceback"]
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(_usage())
    return EXIT_OK if len(argv) >= 2 else EXIT_USAGE
  name = argv[1]
  if name not in COMMANDS:
    return _error(
      "hubkit", f"unknown command {name!r}; valid commands: {', '.join(COMMANDS)}.", EXIT_USAGE
    )
  command = importlib.import_module(f"hubkit.commands.{COMMANDS[name][0]}")
  prefix = f"hubkit {name}"
  if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[2:]):
    print(_command_help(name, command))
    return EXIT_OK
  # Flags keep their values between parses; start each run from defaults so
  # that in-process callers (tests, notebooks) get what they pass, no more.
  for flag_name in command.FLAGS:
    command.FLAGS[flag_name].unparse()
  try:
    args = command.FLAGS([prefix] + argv[2:])[1:]
  except flags.Error as e:
    return _error(prefix, f"{e}. Run '{prefix} --help' for the valid flags.", EXIT_USAGE)
  # hubkit parses its own per-command flags; tell absl its global flags are
  # settled so it does not warn about logging before flag parsing.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_hide_library_info)
  # A command may define logical_cpus() -> Optional[int] (None: do not
  # start TensorFlow here); the default is one device, untouched, or none
  # for the commands that never use TensorFlow.
  default = None if name in _WITHOUT_TENSORFLOW else 1
  logical_cpus = getattr(command, "logical_cpus", lambda: default)()
  if logical_cpus is not None:
    quiet.start_tensorflow(logical_cpus)
  try:
    return command.main(args)
  except UsageError as e:
    return _error(prefix, _with_path_flags(_as_flags(str(e), command), command), EXIT_USAGE)
  except HubkitError as e:
    return _error(prefix, _as_flags(str(e), command), EXIT_FAILURE)
  except KeyboardInterrupt:
    return _error(prefix, "interrupted; nothing partial was left behind.", 130)
  except OSError as e:
    if show_traceback:
      raise
    # A path the user gave cannot be read or written (permissions, a file
    # where a folder is needed, a full disk): bad input, named.
    reason = e.strerror or str(e)
    text = f"cannot use {e.filename}: {reason}" if getattr(e, "filename", None) else reason
    return _error(
      prefix, _with_path_flags(f"{text}; check the path and its permissions.", command), EXIT_USAGE
    )
  except UnicodeDecodeError as e:
    if show_traceback:
      raise
    # A file the user gave is binary where text was expected: bad input.
    return _error(
      prefix,
      f"a file given is not UTF-8 text (byte {e.start}: {e.reason}); check the paths "
      "passed as text files.",
      EXIT_USAGE,
    )
  except Exception as e:
    if show_traceback:
      raise
    text = " ".join(str(e).split())[:300]
    return _error(
      prefix,
      f"unexpected failure ({type(e).__name__}: {text}); rerun with "
      "--traceback to see where it happened.",
      EXIT_FAILURE,
    )


def run() -> None:
  """Console-script entry point.

  Everything the command writes is complete (atomic writes) when `main`
  returns, so the process ends at once instead of tearing TensorFlow down,
  which costs most of a second.
  """
  code = main()
  sys.stdout.flush()
  sys.stderr.flush()
  logging.flush()
  os._exit(code)


if __name__ == "__main__":
  run()
