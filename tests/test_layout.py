"""Direct tests of hubkit.module.layout: the tfhub.dev allow-list."""

import os

import pytest

from hubkit.module import layout


@pytest.mark.parametrize(
  "relpath,allowed",
  [
    ("saved_model.pb", True),
    ("saved_model.pbtxt", True),
    ("keras_metadata.pb", True),
    ("fingerprint.pb", True),
    ("tfhub_module.pb", True),
    ("variables", True),
    ("variables/variables.index", True),
    ("variables/variables.data-00000-of-00001", True),
    ("variables/other", False),
    ("variables/sub/variables.index", False),
    ("assets/vocab.txt", True),
    ("assets/deep/er/file", True),
    ("assets.extra/hubkit.json", True),
    ("assets/.hidden", False),
    (".DS_Store", False),
    ("checkpoint", False),
    ("notes.txt", False),
    ("./saved_model.pb", True),
    ("", False),
  ],
)
def test_is_allowed(relpath, allowed):
  assert layout.is_allowed(relpath) is allowed


def test_directory_helpers(tmp_path):
  assert not layout.has_saved_model(str(tmp_path))
  (tmp_path / "saved_model.pbtxt").write_text("")
  assert layout.has_saved_model(str(tmp_path))
  (tmp_path / "variables").mkdir()
  (tmp_path / "variables" / "variables.index").write_bytes(b"")
  (tmp_path / "stray.ckpt").write_bytes(b"")
  os.symlink("/etc/passwd", tmp_path / "variables" / "variables.data-00000-of-00001")
  assert list(layout.iter_files(str(tmp_path))) == [
    "saved_model.pbtxt",
    "stray.ckpt",
    "variables/variables.data-00000-of-00001",
    "variables/variables.index",
  ]
  assert layout.disallowed_paths(str(tmp_path)) == ["stray.ckpt"]
  assert layout.symlinks(str(tmp_path)) == ["variables/variables.data-00000-of-00001"]
