"""Direct tests of hubkit.utils.atomic: nothing half-written, modes as if created."""

import os

import pytest

from hubkit.utils import atomic
from hubkit.errors import UsageError


def test_atomic_directory_commits_only_on_success(tmp_path):
  target = tmp_path / "export"
  with pytest.raises(RuntimeError):
    with atomic.atomic_directory(str(target)) as tmp:
      (open(os.path.join(tmp, "half"), "w")).close()
      raise RuntimeError("killed")
  assert os.listdir(tmp_path) == []  # no target, no temporary sibling
  with atomic.atomic_directory(str(target)) as tmp:
    with open(os.path.join(tmp, "file"), "w") as f:
      f.write("new")
  assert (target / "file").read_text() == "new"
  assert oct(os.stat(target).st_mode & 0o777) == oct(0o777 & ~atomic._umask())


def test_atomic_directory_overwrite_keeps_old_until_new_is_complete(tmp_path):
  target = tmp_path / "export"
  target.mkdir()
  (target / "old").write_text("old")
  with pytest.raises(UsageError, match="already exists"):
    with atomic.atomic_directory(str(target)):
      pass
  with pytest.raises(RuntimeError):
    with atomic.atomic_directory(str(target), overwrite=True):
      raise RuntimeError("killed")
  assert (target / "old").read_text() == "old"
  with atomic.atomic_directory(str(target), overwrite=True) as tmp:
    with open(os.path.join(tmp, "new"), "w") as f:
      f.write("new")
  assert sorted(os.listdir(target)) == ["new"] and sorted(os.listdir(tmp_path)) == ["export"]


def test_atomic_file_replaces_only_when_complete(tmp_path):
  target = tmp_path / "out.json"
  target.write_text("old")
  with pytest.raises(RuntimeError):
    with atomic.atomic_file(str(target), "w") as f:
      f.write("half")
      raise RuntimeError("killed")
  assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["out.json"]
  with atomic.atomic_file(str(target), "w") as f:
    f.write("new")
  assert target.read_text() == "new"
  assert oct(os.stat(target).st_mode & 0o777) == oct(0o666 & ~atomic._umask())
  with pytest.raises(UsageError, match="already exists"):
    with atomic.atomic_file(str(target), "w", overwrite=False):
      pass


def test_output_checks_name_the_problem(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(UsageError, match="is a directory"):
    atomic.check_output_file(str(tmp_path))
  with pytest.raises(UsageError, match="is not a directory"):
    atomic.check_output_file(str(tmp_path / "file" / "out.json"))
  atomic.check_parent_writable(str(tmp_path / "new" / "deeper" / "out"))
  with pytest.raises(UsageError, match="is not a directory"):
    with atomic.atomic_file(str(tmp_path / "file" / "x")):
      pass


@pytest.mark.parametrize("write", ["directory", "file"])
def test_a_folder_that_refuses_new_entries_is_named_as_the_users_path(write):
  # /proc refuses new entries whatever the permission bits (and root passes
  # every os.access check), so only trying tells.
  target = "/proc/hubkit_target"
  with pytest.raises(UsageError) as caught:
    if write == "directory":
      with atomic.atomic_directory(target):
        pass
    else:
      with atomic.atomic_file(target):
        pass
  assert str(caught.value).startswith(f"cannot write {target}: ") and ".tmp" not in str(
    caught.value
  )
  with pytest.raises(UsageError, match=f"cannot write {target}/report.json: "):
    atomic.check_output_file(f"{target}/report.json")


def test_atomic_file_refuses_a_directory_even_with_overwrite(tmp_path):
  with pytest.raises(UsageError, match="is a directory; give a file path"):
    with atomic.atomic_file(str(tmp_path), overwrite=True):
      pass
