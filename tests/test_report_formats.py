"""Many modules in one check, and reports CI systems read: SARIF 2.1.0 and JUnit XML.

SARIF is validated against the SARIF 2.1.0 object model on the package index
(sarif-pydantic's, made strict: no key it does not define), JUnit against
the schema in tests/schemas/junit.xsd.
"""

import json
import os
import pathlib

import pytest

import broken_modules
from hubkit import cli
from hubkit.checker import check
from hubkit.checker import report_formats
from hubkit.errors import NotFoundError, UsageError
from hubkit.registry import publishing

SCHEMAS = pathlib.Path(__file__).parent / "schemas"


# Property bags are open by design; sarif-pydantic 0.6's Invocation lacks
# toolExecutionNotifications (SARIF 2.1.0 section 3.20.21), which hubkit uses.
_OPEN = ("PropertyBag", "Invocation")


def _strict(schema):
  """The schema with every object closed to keys it does not define (but _OPEN)."""
  if isinstance(schema, dict):
    if (
      schema.get("type") == "object" and "properties" in schema and schema.get("title") not in _OPEN
    ):
      schema = dict(schema, additionalProperties=False)
    return {k: _strict(v) for k, v in schema.items()}
  if isinstance(schema, list):
    return [_strict(v) for v in schema]
  return schema


@pytest.fixture(scope="module")
def sarif_validator():
  jsonschema = pytest.importorskip("jsonschema")
  sarif_pydantic = pytest.importorskip("sarif_pydantic")
  schema = _strict(sarif_pydantic.Sarif.model_json_schema(by_alias=True))
  schema["properties"]["$schema"] = {"type": "string", "format": "uri"}
  # The SARIF schema allows this one version; the model only defaults to it.
  schema["properties"]["version"] = {"const": "2.1.0"}
  return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
  """A folder of three modules, checked in one command: one conforms, one
  warns (softmax outputs), one fails a static rule (a stray file)."""
  repo = tmp_path_factory.mktemp("repo")
  broken_modules.valid(str(repo / "good"))
  broken_modules.softmax_outputs(str(repo / "probabilities"))
  broken_modules.stray_file(str(repo / "stray"))
  cwd = os.getcwd()
  os.chdir(repo)
  try:
    # One run writes all three; the library call gives the reports to compare with.
    argv = ["hubkit", "check", ".", "--output=report.table"]
    code = cli.main([*argv, "--sarif=report.sarif", "--junit=report.junit"])
    out = {fmt: (code, (repo / f"report.{fmt}").read_text()) for fmt in ("sarif", "junit", "table")}
    reports = check.check_modules(["."])
  finally:
    os.chdir(cwd)
  return repo, out, reports


@pytest.mark.slow
def test_a_folder_of_modules_is_checked_in_one_run_with_a_summary(checked):
  repo, out, reports = checked
  assert [os.path.basename(r.module) for r in reports] == ["good", "probabilities", "stray"]
  assert [r.conforms for r in reports] == [True, True, False]
  code, table = out["table"]
  assert code == 1
  summary = table.split("\n\n")[-1].splitlines()
  assert summary[1].startswith("./good") and "conforms" in summary[1]
  assert (
    summary[3].startswith("./stray")
    and "FAILS" in summary[3]
    and "layout.saved_model" in summary[3]
  )
  assert summary[-1] == "3 modules checked, 1 do not conform"


@pytest.mark.slow
def test_sarif_has_a_result_per_failed_or_warned_rule_and_validates(checked, sarif_validator):
  repo, out, reports = checked
  code, text = out["sarif"]
  assert code == 1
  document = json.loads(text)
  errors = sorted(sarif_validator.iter_errors(document), key=str)
  assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
  run = document["runs"][0]
  expected = [
    (r.id, r.status) for report in reports for r in report.results if r.status in ("fail", "warn")
  ]
  assert [
    (x["ruleId"], {"error": "fail", "warning": "warn"}[x["level"]]) for x in run["results"]
  ] == expected
  rules = run["tool"]["driver"]["rules"]
  for result in run["results"]:
    rule = rules[result["ruleIndex"]]
    assert rule["id"] == result["ruleId"] and rule["help"]["text"]
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert (repo / uri).exists(), uri  # relative to where the check ran
  stray = next(x for x in run["results"] if x["ruleId"] == "layout.saved_model")
  assert "notes.txt" in stray["message"]["text"] and stray["level"] == "error"
  fixes = {r.id: r.fix for report in reports for r in report.results if r.fix}
  assert rules[stray["ruleIndex"]]["help"]["text"] == fixes["layout.saved_model"]
  assert run["invocations"][0]["executionSuccessful"] is True


@pytest.mark.slow
def test_junit_has_a_case_per_rule_and_validates(checked):
  xmlschema = pytest.importorskip("xmlschema")
  repo, out, reports = checked
  code, text = out["junit"]
  assert code == 1
  schema = xmlschema.XMLSchema(str(SCHEMAS / "junit.xsd"))
  schema.validate(str(repo / "report.junit"))
  document = schema.to_dict(str(repo / "report.junit"))
  suites = document["testsuite"]
  assert [len(s["testcase"]) for s in suites] == [len(r.results) for r in reports]
  assert document["@failures"] == sum(len(r.failed()) for r in reports) >= 1
  stray = suites[2]
  case = next(c for c in stray["testcase"] if c["@name"] == "layout.saved_model")
  assert "notes.txt" in case["failure"]["@message"] and "fix:" in case["failure"]["$"]
  assert sum("skipped" in c for c in stray["testcase"]) == stray["@skipped"] > 0


def test_the_schemas_reject_what_is_not_sarif_or_junit(sarif_validator, tmp_path):
  xmlschema = pytest.importorskip("xmlschema")
  good = report_formats.to_sarif([])
  assert not list(sarif_validator.iter_errors(good))
  for broken in (
    {**good, "version": "2.0"},
    {**good, "runs": [{"tool": {"driver": {}}}]},
    {
      **good,
      "runs": [
        dict(good["runs"][0], results=[{"ruleId": "x", "levl": "error", "message": {"text": "m"}}])
      ],
    },
  ):
    assert list(sarif_validator.iter_errors(broken)), broken
  schema = xmlschema.XMLSchema(str(SCHEMAS / "junit.xsd"))
  path = tmp_path / "bad.xml"
  path.write_text(
    '<testsuites tests="1" failures="0" errors="0"><testsuite name="m" tests="x" failures="0" errors="0"/></testsuites>'
  )
  assert not schema.is_valid(str(path))


def test_a_registry_root_stands_for_each_published_version_once(tmp_path):
  module = broken_modules.valid(str(tmp_path / "module"))
  root = tmp_path / "root"
  publishing.publish_module(module, str(root), "me/m/1")
  publishing.publish_module(module, str(root), "me/m/2")
  (root / "me" / "m" / ".2.abc.tmp").mkdir()  # a staging folder
  found = check.module_paths([str(root), module])
  # ROOT/me/m/<v> and <v>.tar.gz are one file: each version once.
  assert [os.path.relpath(p, tmp_path) for p in found] == ["root/me/m/1", "root/me/m/2", "module"]
  with pytest.raises(NotFoundError, match="does not exist"):
    check.module_paths([str(tmp_path / "missing")])
  (tmp_path / "empty").mkdir()
  with pytest.raises(UsageError, match="holds no module"):
    check.module_paths([str(tmp_path / "empty")])
  with pytest.raises(UsageError, match="describe one module"):
    check.check_modules([str(root)], reference=module)
  assert cli.main(["hubkit", "check", str(tmp_path / "empty")]) == 2
  assert cli.main(["hubkit", "check", module, "--format=xml"]) == 2


def test_format_prints_the_report_on_stdout(tmp_path, capsys):
  stray = broken_modules.stray_file(str(tmp_path / "stray"))  # fails statically: fast
  assert cli.main(["hubkit", "check", stray, "--format=sarif"]) == 1
  results = json.loads(capsys.readouterr().out)["runs"][0]["results"]
  assert [r["ruleId"] for r in results if r["level"] == "error"] == ["layout.saved_model"]
  assert cli.main(["hubkit", "check", stray, "--format=junit"]) == 1
  assert capsys.readouterr().out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
