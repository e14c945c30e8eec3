"""File I/O shared by the package: atomic writes and the weights-only (never unpickles code) load.

Every output reaches its name through :func:`atomic_path` (a temporary file beside it, then
``os.replace``), so a run killed mid-write never leaves a half-written file under a real name;
the next run sees either the old file or the new one. A file another program may have written
(a resumed checkpoint, a cached backbone) is read through :func:`load_weights_only`, which
refuses anything that is not tensors and plain containers, with a message that says why.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["UnsafeFileError", "atomic_path", "atomic_write_bytes", "atomic_write_text", "load_weights_only"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    For writers that take a file name (``safetensors.torch.save_file``, ``torch.save``,
    ``Figure.savefig``: pass ``format=``, the temporary name ends in ``.tmp``). The file is
    flushed to disk and made world-readable (run folders and the hub cache are shared) before
    the rename; on any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


class UnsafeFileError(ValueError):
    """A file that :func:`load_weights_only` refused: it holds more than tensors, or it is corrupt.

    The message names the file and why (the refused global, say); callers add what to do about it.
    """


def load_weights_only(path: str | os.PathLike, *, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain containers, never code.

    Args:
        mmap: map the file instead of reading it (no second copy in memory); a legacy (pre-zip)
            file cannot be mapped and is then read normally.

    Raises:
        UnsafeFileError: the file holds a global outside torch's weights-only allow-list (named in
            the message), or cannot be read as a checkpoint at all.
    """
    import torch  # here, not at the top: the report writes files without loading torch

    path = Path(path)
    detail = ""
    for use_mmap in (True, False) if mmap else (False,):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
        except Exception as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            detail = next((line for line in lines if "GLOBAL" in line), lines[0] if lines else type(error).__name__)
    raise UnsafeFileError(
        f"{path} is not a plain tensor checkpoint ({detail}); unpickling it could run code, or it is corrupt"
    )
