"""Atomic file replacement: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from annotator.errors import DatastoreError

TEMP_PREFIX = ".tmp-"


def _file_mode() -> int:
    """What a plain ``open(..., "w")`` would give: 0o666 less the umask (a shared
    datastore stays readable by the team; ``mkstemp`` alone gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _suffix(path: Path) -> str:
    # keep compound suffixes (".nii.gz") so writers that choose the format by name still work
    return "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` durably.

    The temporary file is fsynced, renamed over the target with ``os.replace`` and the
    folder fsynced. If the block raises (or the process dies), ``path`` is untouched;
    a leftover temporary file starts with :data:`TEMP_PREFIX`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=_suffix(path), dir=path.parent)
    except OSError as exc:
        raise DatastoreError(f"{path}: cannot write here ({exc.strerror or exc})") from exc
    os.fchmod(fd, _file_mode())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise DatastoreError(f"{path}: could not be written ({exc.strerror or exc}); the previous "
                             "version is unchanged") from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def keep_aside(path: str | os.PathLike) -> Path:
    """Move a damaged file out of the way, beside itself as ``<name>.damaged-<UTC time>``
    (nothing is deleted: a person or a tool may still get something out of it)."""
    import time

    path = Path(path)
    kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    path.replace(kept)
    return kept
