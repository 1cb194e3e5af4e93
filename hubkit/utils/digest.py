"""Content digests of files, streamed so that memory stays flat on large weights."""

import hashlib


def sha256_file(path: str, chunk_size: int = 1 << 20) -> str:
  """Returns the hex sha256 of a file, read in chunks to keep memory flat."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(chunk_size), b""):
      digest.update(chunk)
  return digest.hexdigest()
