"""A local Orthanc server (Debian packages ``orthanc`` and ``orthanc-dicomweb``), to try the
DICOMweb datastore with, and for the tests: loopback only, its own storage folder,
authentication on, stopped by its process.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from annotator.errors import AnnotatorError

BINARY = "/usr/sbin/Orthanc"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
#: Lua filter that admits a request with the bearer token or the basic credentials (Orthanc's
#: own authentication is off then: it would ask every token request for a password)
_TOKEN_FILTER = """
function IncomingHttpRequestFilter(method, uri, ip, username, headers)
  local auth = headers["authorization"]
  return auth == "Bearer %s" or auth == "Basic %s"
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> str | None:
    """Why no local Orthanc can run here, or None when it can."""
    if not Path(BINARY).exists() and not shutil.which("Orthanc"):
        return "Orthanc is not installed (Debian: apt install orthanc orthanc-dicomweb)"
    if not Path(PLUGIN).exists():
        return "Orthanc's DICOMweb plugin is not installed (Debian: apt install orthanc-dicomweb)"
    return None


def series_with_uids(series: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Copies of a series' files whose study, series and SOP UIDs are empty (anonymised
    data), with UIDs a server accepts: a new study and series UID, and the SOP UIDs of
    the files' meta information."""
    import pydicom
    from pydicom.uid import generate_uid

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    study, series_uid, files = generate_uid(), generate_uid(), []
    for path in sorted(p for p in Path(series).iterdir() if p.is_file()):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = ds.get("StudyInstanceUID") or study
        ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or series_uid
        ds.SOPInstanceUID = ds.get("SOPInstanceUID") or ds.file_meta.MediaStorageSOPInstanceUID
        ds.SOPClassUID = ds.get("SOPClassUID") or ds.file_meta.MediaStorageSOPClassUID
        ds.save_as(target / path.name)
        files.append(target / path.name)
    return files


class LocalOrthanc:
    """An Orthanc on 127.0.0.1 with basic authentication (and a bearer token when given),
    running the site's own Lua scripts when given."""

    def __init__(self, folder: str | os.PathLike, port: int | None = None, user: str = "annotator",
                 password: str | None = None, token: str | None = None, lua_scripts=()):
        self.folder = Path(folder)
        self.lua_scripts = [str(p) for p in lua_scripts]
        self.port = port or free_port()
        self.user = user
        self.password = password or secrets.token_urlsafe(12)
        self.token = token
        self.process: subprocess.Popen | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The DICOMweb root."""
        return f"{self.root}/dicom-web"

    def start(self, timeout: float = 15.0) -> "LocalOrthanc":
        reason = available()
        if reason:
            raise AnnotatorError(reason)
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "annotator-local", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "HttpPort": self.port, "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
            "RegisteredUsers": {self.user: self.password}, "DicomServerEnabled": False,
            "Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpTimeout": 60, "StableAge": 1,
        }
        config["LuaScripts"] = list(self.lua_scripts)
        if self.token:
            basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            lua = self.folder / "token.lua"
            lua.write_text(_TOKEN_FILTER % (self.token, basic))
            lua.chmod(0o600)
            config["LuaScripts"].append(str(lua))
            config["AuthenticationEnabled"] = False
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config, indent=1))
        path.chmod(0o600)  # it holds the password
        log = open(self.folder / "orthanc.log", "ab")
        self.process = subprocess.Popen([BINARY, str(path)], stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AnnotatorError(f"Orthanc stopped at start (see {self.folder / 'orthanc.log'})")
            try:
                if requests.get(f"{self.root}/system", auth=(self.user, self.password), timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise AnnotatorError(f"Orthanc did not answer on port {self.port} within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def upload(self, files) -> int:
        """Store DICOM files through Orthanc's REST API; returns how many were stored."""
        session = requests.Session()
        session.auth = (self.user, self.password)
        stored = 0
        for path in files:
            answer = session.post(f"{self.root}/instances", data=Path(path).read_bytes(), timeout=60)
            if not answer.ok:
                raise AnnotatorError(f"{path}: Orthanc refused it ({answer.status_code}: {answer.text[:200]})")
            stored += 1
        return stored

    def __enter__(self) -> "LocalOrthanc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
