"""The frozen app (`make bundle-test`; marked `bundle`, not in the default run: the build takes
minutes and over a gigabyte). From the built folder, with no network (a new network
namespace) and no Python on PATH: the self-test passes, a screenshot of the window is
written, and the archive installs under a home folder and uninstalls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.bundle
ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dist" / "annotator-app" / "annotator-app"


@pytest.fixture(scope="module")
def screen():
    from annotator.bench.app import _screen

    with _screen() as env:
        yield env["DISPLAY"]


def _isolated(tmp_path, display: str) -> tuple[list[str], dict]:
    """A command prefix with no network (a new network namespace; the X server is reached
    through its socket file) and an environment with an empty PATH and its own home."""
    unshare = shutil.which("unshare")
    prefix = [unshare or "unshare", "--net", "--map-root-user"]
    if unshare is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.fail("cannot make a network namespace here (unshare --net --map-root-user)")
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {"PATH": str(empty), "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8", "DISPLAY": display}
    return prefix, env


@pytest.fixture(scope="module")
def built():
    if not APP.exists():
        pytest.fail(f"{APP} is missing: run `make bundle` first (make bundle-test does)")
    return APP


def test_the_frozen_app_passes_its_self_test_offline(built, screen, tmp_path):
    prefix, env = _isolated(tmp_path, screen)
    assert not shutil.which("python3", path=env["PATH"]) and not shutil.which("python", path=env["PATH"])
    proc = subprocess.run([*prefix, str(built), "--self-test"], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary == {"self_test": "passed", "passed": 7, "checks": 7, "frozen": True}
    assert "training child (annotator-app)" in proc.stdout  # the frozen app started itself to train


def test_the_frozen_window_shows_the_sample(built, screen, tmp_path):
    from qtpy.QtGui import QImage

    prefix, env = _isolated(tmp_path, screen)
    out = tmp_path / "frozen.png"
    proc = subprocess.run([*prefix, str(built), "--sample", "hippocampus", "--screenshot", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copy(out, ROOT / "dist" / "frozen-screenshot.png")  # kept for a person to look at
    image = QImage(str(out)).convertToFormat(QImage.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8)[: image.sizeInBytes()].reshape(image.height(), -1)
    assert image.width() >= 1000 and pixels.std() > 20


def test_the_frozen_app_ships_no_test_suites(built):
    """Packages' own test suites are not the app's: none of their folders is shipped
    (pint's hook collected its baseline plots, 1.6 MB)."""
    suites = [p for p in built.parent.rglob("*") if p.is_dir() and p.name in ("tests", "_tests", "testsuite")]
    assert not suites, [str(p.relative_to(built.parent)) for p in suites[:10]]


def test_the_archive_installs_and_uninstalls(tmp_path):
    archive = next((ROOT / "dist").glob("annotator-linux-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    home = tmp_path / "home"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    subprocess.run([str(tmp_path / "annotator" / "install.sh")], check=True, env=env, capture_output=True)
    desktop = home / ".local/share/applications/annotator.desktop"
    app = home / ".local/share/annotator-app/annotator-app"
    assert app.is_file() and os.access(app, os.X_OK)
    assert f"Exec={app} %F" in desktop.read_text()
    assert (home / ".local/share/icons/hicolor/scalable/apps/annotator.svg").is_file()
    subprocess.run([str(home / ".local/share/annotator-app/uninstall.sh")], check=True, env=env, capture_output=True)
    assert not app.exists() and not desktop.exists()
