"""`check_module`: the static rules here, the dynamic ones in a confined
child (`hubkit.checker.child`), one `Report`, remembered per content digest.
"""

import dataclasses
import os
import time
from typing import Any, Callable, List, Optional, Sequence

from hubkit.cache import handles
from hubkit.cache import resolver
from hubkit.cache import store
from hubkit.checker import apis
from hubkit.checker import child
from hubkit.checker import runner
from hubkit.checker.report import FAIL, SKIP, WARN, CheckResult, Report
from hubkit.errors import NotFoundError, UsageError
from hubkit.module import check_records
from hubkit.module import layout
from hubkit.safety import signing
from hubkit.version import __version__

DEFAULT_TIMEOUT_SECONDS = 1800.0

# Rule families whose warnings a user may ask to count as failures.
REQUIRABLE = ("serving",)


def check_module(
  path: str,
  reference: Optional[str] = None,
  inputs: Optional[str] = None,
  tolerance: float = 1e-5,
  allow_ops: Sequence[str] = (),
  unconfined: bool = False,
  timeout: float = DEFAULT_TIMEOUT_SECONDS,
  on_result: Optional[Callable[[CheckResult, float], None]] = None,
  require: Sequence[str] = (),
  api: Optional[str] = None,
  card: Optional[str] = None,
) -> Report:
  """Checks a module against every rule.

  Static rules (files and ops, nothing loaded) run first; if one fails, no
  rule loads or calls the module. The dynamic rules then run in a confined
  child process (see docs/security.md) unless `unconfined` is set.

  Args:
    path: a SavedModel directory, a `.tar.gz` module archive, or an http(s)
      handle (fetched through the cache in $TFHUB_CACHE_DIR).
    reference: optional Keras model or SavedModel to compare outputs with
      (rule behavior.parity).
    inputs: optional `.npz` of test inputs, keyed "inputs" for a single
      tensor or by nest path (dict key / list index) otherwise.
    tolerance: the parity tolerance.
    allow_ops: op types the user reviewed and allows (security.ops).
    unconfined: run the dynamic rules in this process, without confinement
      (only for modules you trust, or where confinement is unavailable).
    timeout: seconds the confined dynamic rules may take in all.
    on_result: called with each rule's result and seconds as it finishes.
    require: rule families (of REQUIRABLE, e.g. "serving") whose warnings
      count as failures.
    api: also hold the module to a task contract of TF Hub's Common
      SavedModel APIs (`hubkit.checker.apis.APIS`: "image_feature_vector",
      "image_classification", "text_embedding", "text_preprocessor",
      "text_encoder"); its `api.<task>.*` rules join the report. None: the
      task the card names, if any.
    card: a tfhub.dev card whose `task` tag names the contract (by default
      the card a registry root keeps beside `path`).

  Returns:
    A Report; `report.conforms` is False when any rule failed or the
    dynamic rules could not run (`report.complete` is then False).

  Raises:
    hubkit.safety.signing.SignatureError: trusted keys are set ($HUBKIT_TRUSTED_KEYS)
      and none verifies the module's signature.
    UsageError: the check cannot run (not a SavedModel, an unsafe archive,
      unreadable `inputs`); NotFoundError (also an OSError) for a missing
      path; hubkit.errors.FetchError / ArchiveError for a URL or archive
      that cannot be fetched or read.
  """
  if reference and not os.path.exists(reference):
    raise NotFoundError(
      f"`reference` {reference} does not exist; pass the source Keras model or export."
    )
  if inputs and not os.path.isfile(inputs):
    raise NotFoundError(f"`inputs` file {inputs} does not exist; pass a .npz of test inputs.")
  unknown = sorted(set(require) - set(REQUIRABLE))
  if unknown:
    raise UsageError(
      f"`require`={','.join(unknown)} is not a rule family that can be required; "
      f"valid: {', '.join(REQUIRABLE)}."
    )
  api = apis.resolve_api(api, card, path)
  strict = _Strict(require, on_result)
  keys = signing.trusted_keys()
  with resolver.local_module(path) as module_dir:
    # A module that is not what its trusted publisher signed is not checked.
    resolver.verify_signature(path, module_dir, keys)
    return _check_local(
      module_dir, path, reference, inputs, tolerance, allow_ops, unconfined, timeout, strict, api
    )


class _Strict:
  """Turns the warnings of required rule families into failures, before
  anyone (the live display, the report) sees them."""

  def __init__(self, families: Sequence[str], on_result):
    self._prefixes = tuple(f"{f}." for f in families)
    self._on_result = on_result

  def judge(self, result: CheckResult) -> CheckResult:
    if result.status == WARN and result.id.startswith(self._prefixes):
      return dataclasses.replace(result, status=FAIL, message=f"required: {result.message}")
    return result

  def show(self, result: CheckResult, seconds: float) -> None:
    if self._on_result:
      self._on_result(self.judge(result), seconds)


def _check_local(
  module_dir: str,
  path: str,
  reference: Optional[str],
  inputs: Optional[str],
  tolerance: float,
  allow_ops: Sequence[str],
  unconfined: bool,
  timeout: float,
  strict: _Strict,
  api: Optional[str],
) -> Report:
  on_result = strict.show
  # Started before the rules import TensorFlow here, so that the child's
  # start-up runs beside this process's; it loads nothing until told to.
  confined = (
    None
    if unconfined
    else child.ConfinedCheck(
      module_dir,
      path,
      reference=reference,
      inputs=inputs,
      tolerance=tolerance,
      allow_ops=allow_ops,
      timeout=timeout,
      api=api,
    )
  )
  try:
    every_rule = runner.rules(api)
    from hubkit.checker.context import Context

    ctx = Context(
      module_dir,
      path,
      reference=reference,
      inputs_file=inputs,
      tolerance=tolerance,
      allow_ops=allow_ops,
      api=api,
    )
    if api:
      ctx.figures["api"] = api
    done = {}
    static = [r for r in every_rule if r.static]
    dynamic = [r for r in every_rule if not r.static]
    results = runner.run_rules(ctx, static, done, on_result)
    failed = [r.id for r in results if r.status == FAIL]
    incomplete = ""
    if failed:
      if handles.is_url(path):
        # A condemned module does not stay in the shared cache, where a
        # later load might find it.
        store.ModuleCache().remove(path)
      reason = (
        f"not run: {', '.join(failed)} failed, and hubkit never loads or calls a "
        "module that fails a static rule"
      )
      skipped = [CheckResult(r.id, r.title, SKIP, reason) for r in dynamic]
      for result in skipped:
        if on_result:
          on_result(result, 0.0)
      results += skipped
    elif confined is None:
      ctx.figures["confinement"] = "none (--unconfined)"
      runner.validate_inputs(ctx)
      results += runner.run_rules(ctx, dynamic, done, on_result)
    else:
      running, confined = confined, None
      dynamic_results, figures, incomplete = running.run(dynamic, on_result)
      seconds = {**ctx.figures.get("seconds", {}), **figures.pop("seconds", {})}
      ctx.figures.update(figures)
      ctx.figures["seconds"] = seconds
      results += dynamic_results
    report = Report(path, [strict.judge(r) for r in results], ctx.figures, incomplete=incomplete)
    if not incomplete:
      check_records.save(
        module_dir,
        {
          "conforms": report.conforms,
          "failed": report.failed(),
          "summary": report.summary(),
          "verdict": report.verdict(),
          "results": [
            {"id": r.id, "status": r.status, "message": r.message} for r in report.results
          ],
          "hubkit_version": __version__,
          "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
      )
    return report
  finally:
    if confined is not None:
      confined.cancel()


def module_paths(paths: Sequence[str]) -> List[str]:
  """The modules `paths` name: each SavedModel directory, archive or URL as
  it is; any other directory (a registry root, a repository of modules)
  stands for every SavedModel directory and `.tar.gz` archive under it.

  Hidden folders (a registry's staging folders) are left out, SavedModel
  directories are not searched further, and an archive reachable under two
  names (a registry keeps `<version>` and `<version>.tar.gz` as one file)
  is checked once.

  Raises:
    NotFoundError: a path does not exist.
    UsageError: a directory holds no module.
  """
  found: List[str] = []
  for path in paths:
    if handles.is_url(path) or not os.path.isdir(path) or layout.has_saved_model(path):
      if not handles.is_url(path) and not os.path.exists(path):
        raise NotFoundError(
          f"{path} does not exist; pass a module folder, archive or registry root."
        )
      found.append(path)
      continue
    seen, inside = set(), []
    for folder, dirs, files in os.walk(path):
      dirs[:] = sorted(d for d in dirs if not d.startswith("."))
      if layout.has_saved_model(folder):
        inside.append(folder)
        dirs[:] = []
        continue
      for name in sorted(files):
        full = os.path.join(folder, name)
        registry_archive = name.isdigit() and os.path.isdir(f"{full}.d")
        if not (name.endswith(".tar.gz") or registry_archive) or os.path.islink(full):
          continue
        key = (os.stat(full).st_dev, os.stat(full).st_ino)
        if key not in seen:
          seen.add(key)
          inside.append(full)
    if not inside:
      raise UsageError(
        f"{path} holds no module (no SavedModel folder or .tar.gz archive under it); pass a "
        "module folder, an archive or a registry root."
      )
    found.extend(sorted(inside))
  return found


def check_modules(
  paths: Sequence[str],
  on_module: Optional[Callable[[str], None]] = None,
  **options: Any,
) -> List[Report]:
  """Checks every module `paths` name (`module_paths`), one after another.

  Each module gets its own confined child: a module is someone else's
  program, and state it leaves in a process (patched functions, threads,
  files in scratch) must not take part in judging the next one.

  Args:
    paths: module folders, archives, URLs, or folders holding modules.
    on_module: called with each module's path before it is checked.
    **options: `check_module`'s other arguments, the same for every module
      (`reference` and `inputs` are per-module, so they are refused).

  Returns:
    One Report per module, in order.

  Raises:
    UsageError: `reference` or `inputs` with more than one module, or what
      `module_paths` raises.
  """
  modules = module_paths(paths)
  if len(modules) > 1 and (options.get("reference") or options.get("inputs")):
    raise UsageError(
      f"`reference` and `inputs` describe one module, but {len(modules)} are checked; "
      "check that module on its own."
    )
  reports = []
  for module in modules:
    if on_module:
      on_module(module)
    reports.append(check_module(module, **options))
  return reports


def modules_holding(files: Sequence[str]) -> List[str]:
  """The modules that changed `files` belong to (what a pre-commit hook gets):
  for each file, the nearest folder above it holding a SavedModel, or the
  file itself when it is a `.tar.gz` archive; files in no module are left out.

  Returns:
    Each module once, in the order first reached.
  """
  found: List[str] = []
  for name in files:
    path = os.path.abspath(name)
    module = path if path.endswith(".tar.gz") and os.path.isfile(path) else None
    folder = os.path.dirname(path)
    while module is None and folder != os.path.dirname(folder):
      if layout.has_saved_model(folder):
        module = folder
      folder = os.path.dirname(folder)
    if module is not None:
      module = os.path.relpath(module) if module.startswith(os.getcwd() + os.sep) else module
      if module not in found:
        found.append(module)
  return found
