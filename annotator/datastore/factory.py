"""One way to open a datastore from what a person names: a folder, a dataset folder, an
image file or a DICOM series folder (its parent folder's store, and its id), a sample
(``sample:ID``), later a server URL."""

from __future__ import annotations

import os
from pathlib import Path

from annotator.datastore.base import Datastore
from annotator.datastore.folder import LocalDatastore, fallback_labels_dir
from annotator.datastore.places import Kind, classify
from annotator.errors import DatastoreError


def open_datastore(place: str | os.PathLike, labels_dir: str | os.PathLike | None = None,
                   ) -> tuple[Datastore, str | None]:
    """The datastore ``place`` belongs to, and the id of the image it names (None for a
    whole folder). Sample data keeps its labels in the user data folder, never beside
    the shipped files."""
    from annotator.samples import is_sample_path, sample_file

    if str(place).startswith(("http://", "https://")):
        return _server_store(str(place)), None
    if str(place).startswith("sample:"):
        place = sample_file(str(place)[len("sample:"):])
    path = Path(place)
    kind = classify(path)
    if kind == Kind.MISSING:
        raise DatastoreError(f"{place}: no such image, series or folder")
    folder = path.resolve() if kind in (Kind.FOLDER, Kind.DATASET) else path.resolve().parent
    if labels_dir is None and is_sample_path(folder):
        labels_dir = fallback_labels_dir(folder)
    store = LocalDatastore(folder, labels_dir=labels_dir)
    if kind in (Kind.FOLDER, Kind.DATASET):
        return store, None
    return store, store.id_of(path)


def _server_store(url: str) -> Datastore:
    """A DICOMweb server as a datastore: ``https://user@host/dicom-web`` for basic
    authentication (password from the keyring or ``ANNOTATOR_DICOMWEB_PASSWORD``),
    ``ANNOTATOR_DICOMWEB_TOKEN`` for a bearer token."""
    import os
    from urllib.parse import urlsplit, urlunsplit

    from annotator.datastore.dicomweb import Credentials, DicomwebServer, password_for
    from annotator.datastore.remote import DicomwebDatastore

    parts = urlsplit(url)
    user = parts.username or ""
    plain = urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))
    token = os.environ.get("ANNOTATOR_DICOMWEB_TOKEN", "")
    credentials = Credentials(user, password_for(plain, user) if user and not token else "", token,
                              os.environ.get("ANNOTATOR_DICOMWEB_CA_BUNDLE", ""))
    return DicomwebDatastore(DicomwebServer(plain, credentials))
