"""The sha256 of a file, read in blocks of 1 MiB: the one function every cache key, data fingerprint and
per-sample file hash is computed with."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The lower-case hex sha256 of the file's bytes, as `sha256sum` prints it."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
