"""Direct tests of hubkit.cache.archive: safe, bounded, streaming extraction."""

import gzip
import hashlib
import io
import os
import tarfile

import pytest

import helpers
from hubkit.cache import archive
from hubkit.errors import ArchiveError, UsageError

_MODULE = [("saved_model.pb", "file", b"pb"), ("variables/variables.index", "file", b"ix")]


def _tar(path, entries, mode="w:gz"):
  with tarfile.open(path, mode) as tar:
    for name, data in entries:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return str(path)


def test_extracts_gzip_and_plain_tar_with_digests(tmp_path):
  for name, mode in (("m.tar.gz", "w:gz"), ("m.tar", "w")):
    path = _tar(tmp_path / name, [(n, d) for n, _, d in _MODULE], mode)
    target = tmp_path / f"out_{name}"
    target.mkdir()
    digests = {}
    written = archive.extract_module_archive(path, str(target), digests=digests)
    assert written == ["saved_model.pb", "variables/variables.index"]
    assert (target / "variables" / "variables.index").read_bytes() == b"ix"
    assert digests["saved_model.pb"] == hashlib.sha256(b"pb").hexdigest()


@pytest.mark.parametrize(
  "entries,message",
  [
    ([("../evil", b"x")], "climbs out"),
    ([("/etc/evil", b"x")], "absolute"),
    ([("notes.txt", b"x")], "allow-list"),
    ([("saved_model.pb", b"a"), ("saved_model.pb", b"b")], "appears twice"),
    ([("variables/variables.index", b"x")], "has no saved_model.pb"),
  ],
)
def test_refuses_unsafe_or_incomplete_archives(tmp_path, entries, message):
  path = _tar(tmp_path / "m.tar.gz", entries)
  target = tmp_path / "out"
  target.mkdir()
  with pytest.raises(UsageError, match=message):
    archive.extract_module_archive(path, str(target))


def test_symlink_entry_is_refused(tmp_path):
  path = helpers.write_tar(str(tmp_path / "m.tar.gz"), [("saved_model.pb", "symlink", b"")])
  (tmp_path / "out").mkdir()
  with pytest.raises(UsageError, match="symbolic link"):
    archive.extract_module_archive(path, str(tmp_path / "out"))


def test_corrupt_or_truncated_archive_is_an_archive_error(tmp_path):
  (tmp_path / "out").mkdir()
  bad = tmp_path / "bad.tar.gz"
  bad.write_bytes(b"bad_archive")
  with pytest.raises(ArchiveError, match="does not appear to be a valid module archive") as e:
    archive.extract_module_archive(str(bad), str(tmp_path / "out"))
  assert isinstance(e.value, OSError) and isinstance(e.value, ValueError)
  good = _tar(tmp_path / "m.tar.gz", [("saved_model.pb", b"x" * 5000)])
  truncated = tmp_path / "cut.tar.gz"
  truncated.write_bytes(open(good, "rb").read()[:40])
  (tmp_path / "out2").mkdir()
  with pytest.raises(ArchiveError):
    archive.extract_module_archive(str(truncated), str(tmp_path / "out2"))


def test_limits_stop_the_stream(tmp_path, monkeypatch):
  path = _tar(tmp_path / "m.tar.gz", [("saved_model.pb", b"pb"), ("assets/a", b"0" * 4096)])
  (tmp_path / "out").mkdir()
  limits = archive.ExtractLimits(max_bytes=1000)
  with pytest.raises(UsageError, match="HUBKIT_MAX_EXTRACT_BYTES"):
    archive.extract_module_archive(path, str(tmp_path / "out"), limits=limits)
  monkeypatch.setenv("HUBKIT_MAX_EXTRACT_ENTRIES", "1")
  assert archive.ExtractLimits.from_env().max_entries == 1
  monkeypatch.setenv("HUBKIT_MAX_EXTRACT_ENTRIES", "-3")
  with pytest.raises(UsageError, match="must be a positive number"):
    archive.ExtractLimits.from_env()


def test_extract_to_temp_leaves_nothing_on_failure(tmp_path):
  bad = tmp_path / "bad.tar.gz"
  bad.write_bytes(gzip.compress(b"not a tar"))
  with pytest.raises(ArchiveError):
    archive.extract_to_temp(str(bad), parent=str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ["bad.tar.gz"]
  good = _tar(tmp_path / "m.tar.gz", [("saved_model.pb", b"pb")])
  out = archive.extract_to_temp(good, parent=str(tmp_path))
  assert os.listdir(out) == ["saved_model.pb"]
