"""The fast gzip codec: plain gzip either way, deterministic, with a fallback."""

import io
import os
import shutil
import subprocess
import tarfile

import pytest

import hubkit
from hubkit.cache import archive
from hubkit.cache import gzip_codec
from hubkit import modules


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
  return modules.export_module("text_embedding", str(tmp_path_factory.mktemp("codec") / "m"))


@pytest.fixture(params=["isal", "zlib"])
def codec(request):
  gzip_codec.use(request.param)
  if gzip_codec.implementation() != request.param:
    pytest.skip("python-isal is not installed")
  yield request.param
  gzip_codec.use(None)


def test_packs_are_deterministic_plain_gzip(codec, module_dir, tmp_path):
  first = hubkit.pack_module(module_dir, str(tmp_path / "a.tar.gz"))
  second = hubkit.pack_module(module_dir, str(tmp_path / "b.tar.gz"))
  data = open(first, "rb").read()
  assert data == open(second, "rb").read()
  assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip, time 0
  with tarfile.open(first, "r:gz") as tar:
    names = tar.getnames()
  assert "saved_model.pb" in names and "assets/vocab.txt" in names
  if shutil.which("tar"):
    listing = subprocess.run(["tar", "tzf", first], check=True, capture_output=True, text=True)
    assert "./" not in listing.stdout.split() and "saved_model.pb" in listing.stdout.split()


def test_each_codec_reads_the_others_archives(codec, module_dir, tmp_path):
  gzip_codec.use("isal" if codec == "zlib" else "zlib")
  made = hubkit.pack_module(module_dir, str(tmp_path / "other.tar.gz"))
  gzip_codec.use(codec)
  for background in (True, False):
    with open(made, "rb") as f:
      stream = gzip_codec.reader(f, background=background)
      with tarfile.open(fileobj=stream, mode="r|") as tar:
        assert "saved_model.pb" in [m.name for m in tar]
      stream.close()
  target = tmp_path / "out"
  target.mkdir()
  written = archive.extract_module_archive(made, str(target))
  assert (
    open(target / "assets" / "vocab.txt", "rb").read()
    == open(os.path.join(module_dir, "assets", "vocab.txt"), "rb").read()
  )
  assert "variables/variables.index" in written


def test_reader_passes_plain_tar_through_and_reports_errors(codec):
  plain = io.BytesIO(b"ustar bytes")
  assert gzip_codec.reader(plain).read() == b"ustar bytes"
  broken = gzip_codec.reader(io.BytesIO(b"\x1f\x8b\x08\x00garbage"))
  with pytest.raises(gzip_codec.errors()):
    broken.read()
  broken.close()
