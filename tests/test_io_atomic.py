"""Atomic replacement: a failed write leaves the old file and no debris."""

from __future__ import annotations

import pytest

from annotator.io.atomic import atomic_path, atomic_write_text


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "index.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_temp_file_keeps_compound_suffix(tmp_path):
    with atomic_path(tmp_path / "label.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "label.nii.gz").read_bytes() == b"x"
