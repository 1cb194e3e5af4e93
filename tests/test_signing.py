"""Signed modules: publish --signing_key, and every entry point refusing an
unsigned or tampered module when trusted keys are configured."""

import os
import tarfile

import numpy as np
import pytest

import helpers
import hubkit
from hubkit import cli
from hubkit.registry import http_server
from hubkit.registry import root_layout
from hubkit import modules
from hubkit.safety import signing

pytest.importorskip("model_signing", reason="model-signing is in the test extras")


def _key_pair(folder, name):
  from cryptography.hazmat.primitives import serialization
  from cryptography.hazmat.primitives.asymmetric import ec

  key = ec.generate_private_key(ec.SECP256R1())
  private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
  private.write_bytes(
    key.private_bytes(
      serialization.Encoding.PEM,
      serialization.PrivateFormat.PKCS8,
      serialization.NoEncryption(),
    )
  )
  public.write_bytes(
    key.public_key().public_bytes(
      serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
  )
  return str(private), str(public)


def _tampered_copy(archive, output):
  """The archive with one byte of the module's metadata changed, signature kept."""
  with tarfile.open(archive) as src, tarfile.open(output, "w:gz") as dst:
    for member in src.getmembers():
      data = src.extractfile(member).read() if member.isfile() else None
      if member.name.endswith("hubkit.json"):
        data = data.replace(b"{", b"{ ", 1)
        member.size = len(data)
      dst.addfile(member, __import__("io").BytesIO(data) if data is not None else None)
  return str(output)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
  base = tmp_path_factory.mktemp("signed")
  private, public = _key_pair(base, "team")
  _, stranger = _key_pair(base, "stranger")
  module = modules.export_module("mul", str(base / "mul"), config={"dim": 2})
  root = str(base / "root")
  assert (
    cli.main(
      [
        "hubkit",
        "publish",
        module,
        f"--root={root}",
        "--handle=me/mul/1",
        f"--signing_key={private}",
      ]
    )
    == 0
  )
  archive = root_layout.published_archive(os.path.join(root, "me", "mul", "1"))
  return {
    "base": base,
    "public": public,
    "stranger": stranger,
    "module": module,
    "root": root,
    "archive": archive,
    "tampered": _tampered_copy(archive, base / "tampered.tar.gz"),
  }


def test_a_signed_module_loads_through_every_entry_point(signed, tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv(signing.TRUSTED_KEYS_ENV, signed["public"])
  with tarfile.open(signed["archive"]) as tar:
    assert signing.SIGNATURE_RELPATH in tar.getnames()
  with http_server.serving(signed["root"]) as server:
    url = f"{server.url}/me/mul/1"
    x = np.array([[1.0, 2.0]], np.float32)
    np.testing.assert_allclose(hubkit.load(url)(x).numpy(), x)
    np.testing.assert_allclose(np.asarray(hubkit.KerasLayer(url)(x)), x)
    assert hubkit.check_module(url).conforms
    assert cli.main(["hubkit", "verify", url]) == 0
  out = capsys.readouterr().out
  assert f"signed by {signed['public']}" in out
  assert signing.key_fingerprint(signed["public"]) in out


@pytest.mark.parametrize("case", ["tampered", "unsigned", "stranger"])
def test_tampered_unsigned_or_foreign_modules_are_refused_everywhere(
  signed, tmp_path, monkeypatch, capsys, case
):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
  handle = {"tampered": signed["tampered"], "unsigned": signed["module"]}.get(
    case, signed["archive"]
  )
  key = signed["stranger"] if case == "stranger" else signed["public"]
  monkeypatch.setenv(signing.TRUSTED_KEYS_ENV, key)
  message = "is not signed" if case == "unsigned" else "does not verify with any trusted key"
  for entry in (hubkit.resolve, hubkit.load, hubkit.KerasLayer, hubkit.check_module):
    with pytest.raises(signing.SignatureError, match=message):
      entry(handle)
  if case != "unsigned":  # an archive: what was refused is not left in the cache
    from hubkit.cache import store

    assert not os.path.exists(store.ModuleCache().path_for(handle))
  assert message in helpers.cli_error(capsys, ["verify", handle], code=1)
  # Without trusted keys nothing is required (the unsigned module loads).
  monkeypatch.delenv(signing.TRUSTED_KEYS_ENV)
  if case == "unsigned":
    assert hubkit.load(handle) is not None
