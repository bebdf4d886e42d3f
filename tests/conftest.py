"""Shared fixtures: the real data folder beside the checkout, and small copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from paths import DATA, HIPPO


def pytest_configure(config):
    if not DATA.is_dir():
        raise pytest.UsageError(f"test data folder {DATA} is missing (../shared/data beside the checkout)")


USER_DIRS = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")


@pytest.fixture(scope="session", autouse=True)
def _session_user_dirs(tmp_path_factory):
    """What the session's shared fixtures write (settings, caches, models, training runs)
    stays out of the person's own folders."""
    root = tmp_path_factory.mktemp("user")
    with pytest.MonkeyPatch.context() as patch:
        for var in USER_DIRS:
            patch.setenv(var, str(root / var.lower()))
        yield


@pytest.fixture(autouse=True)
def private_user_dirs(tmp_path, monkeypatch):
    """Settings, caches, models, training runs and fallback labels of each test stay in
    its folder (for its child processes too): no test sees another's, and none reaches
    the person's own."""
    for var in USER_DIRS:
        monkeypatch.setenv(var, str(tmp_path / var.lower()))


@pytest.fixture(scope="session")
def hippo_split() -> dict:
    return json.loads((HIPPO / "split.json").read_text())


@pytest.fixture
def dicom_copy(tmp_path) -> Path:
    """A writable copy of the 40-slice hippocampus-crop MR series."""
    target = tmp_path / "series"
    shutil.copytree(DATA / "udacity_study3_mr_dicom" / "11_HCropVolume", target)
    return target


@pytest.fixture
def hippo_store(tmp_path) -> Path:
    """A datastore folder with four hippocampus images."""
    folder = tmp_path / "store"
    folder.mkdir()
    for case in ["hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006"]:
        shutil.copy(HIPPO / "images" / f"{case}.nii.gz", folder)
    return folder


@pytest.fixture(scope="session")
def multiframe_mr(tmp_path_factory) -> Path:
    """The 40-slice hippocampus-crop MR series as one multi-frame file (in a folder of its
    own) whose frames are stored in no particular order."""
    import random

    from multiframe import MR_SERIES, multiframe_of

    order = list(range(40))
    random.Random(3).shuffle(order)
    return multiframe_of(MR_SERIES, tmp_path_factory.mktemp("multiframe") / "series" / "enhanced.dcm", order)


@pytest.fixture(scope="session")
def two_echoes_mr(tmp_path_factory) -> Path:
    """A folder holding one series of two echoes: the 40-slice hippocampus-crop MR (echo
    1) and its voxels × 2 + 5 (echo 2)."""
    from multiframe import MR_SERIES, two_echoes_of

    return two_echoes_of(MR_SERIES, tmp_path_factory.mktemp("echoes") / "echoes")
