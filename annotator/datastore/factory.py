"""One way to open a datastore from what a person names: a folder, a dataset folder, an
image file or a DICOM series folder (its parent folder's store, and its id; a DICOM file
names the series it belongs to in the folder it lies in), a sample (``sample:ID``), a server URL."""

from __future__ import annotations

import os
from pathlib import Path

from annotator.datastore.base import Datastore
from annotator.datastore.folder import LocalDatastore, fallback_labels_dir
from annotator.datastore.places import Kind, classify
from annotator.errors import DatastoreError
from annotator.io.sniff import looks_like_dicom


def open_datastore(place: str | os.PathLike, labels_dir: str | os.PathLike | None = None,
                   progress=None) -> tuple[Datastore, str | None]:
    """The datastore ``place`` belongs to, and the id of the image it names (None for a
    whole folder). Sample data keeps its labels in the user data folder, never beside
    the shipped files. ``progress(text, fraction)`` hears the search of a folder, the
    first listing of a server."""
    from annotator.samples import is_sample_path, sample_file

    if "://" in str(place):  # a URL: a server's, or one that says what a server's URL is
        return _server_store(str(place), progress), None
    if str(place).startswith("sample:"):
        place = sample_file(str(place)[len("sample:"):])
    named = path = Path(place)
    if path.is_file() and looks_like_dicom(path):  # a DICOM file: the series folder that holds it
        path = path.parent
    kind = classify(path)
    if kind == Kind.MISSING:
        raise DatastoreError(f"{place}: not an image, a DICOM series or a folder of them" if path.exists()
                             else f"{place}: no such image, series or folder")
    folder = path.resolve() if kind in (Kind.FOLDER, Kind.DATASET) else path.resolve().parent
    if labels_dir is None and is_sample_path(folder):
        labels_dir = fallback_labels_dir(folder)
    whole = kind in (Kind.FOLDER, Kind.DATASET)
    store = LocalDatastore(folder, labels_dir=labels_dir, progress=progress, annotate=None if whole else named)
    if whole:
        return store, None
    return store, store.id_of(named)


def open_store(place: str | os.PathLike) -> Datastore:
    """The datastore at ``place``, a folder or a server, for work over its images (status,
    export, training, benchmarks); an image file or a series names one image, and is
    refused saying so."""
    store, image_id = open_datastore(place)
    if image_id is not None:
        raise DatastoreError(f"{place}: an image, not a datastore; give its folder")
    return store


def server_url(url: str, user: str = "") -> str:
    """How a server is named as a place: ``https://user@host/dicom-web`` for basic
    authentication, the plain URL otherwise (no secret is ever part of it). A user name
    with characters a URL cannot hold there (``:``, ``/``) has them %-escaped; an e-mail
    address stays as it is."""
    from urllib.parse import quote, urlunsplit

    from annotator.datastore.dicomweb import parsed_url

    parts = parsed_url(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    named = f"{quote(user, safe='@')}@{host}" if user else host
    return urlunsplit((parts.scheme, named, parts.path.rstrip("/"), "", ""))


def url_user(url: str) -> str:
    """The user a place's URL names (``https://user@host/...``), or empty."""
    from urllib.parse import unquote

    from annotator.datastore.dicomweb import parsed_url

    return unquote(parsed_url(url).username or "")


def _server_store(url: str, progress=None) -> Datastore:
    """A DICOMweb server as a datastore: ``https://user@host/dicom-web`` for basic
    authentication (the password from ``ANNOTATOR_DICOMWEB_PASSWORD`` or the keyring), else
    the bearer token from ``ANNOTATOR_DICOMWEB_TOKEN`` or the keyring, else none;
    ``ANNOTATOR_DICOMWEB_CA_BUNDLE`` (or the settings' CA bundle for the server) for a
    private CA."""
    from annotator.datastore.remote import DicomwebDatastore

    user = url_user(url)
    store = DicomwebDatastore(server_at(url), progress=progress)
    store.place = server_url(url, user)
    return store


def server_terms(url: str, user: str = "", token: str = "", ca_bundle: str = "") -> tuple[str, str, str]:
    """(plain URL, user, CA bundle) of the server at ``url``: the user given or named in
    the URL; the CA bundle given, else ``ANNOTATOR_DICOMWEB_CA_BUNDLE``, else the one the
    settings keep for the server."""
    from annotator.errors import InputError
    from annotator.settings import Settings

    named = url_user(url)
    if named and user and named != user:
        raise InputError(f"{url} names user '{named}' and --user '{user}': give one")
    user = user or named
    if token and user:
        raise InputError("give a user (--user or in the URL) or --token, not both")
    plain = server_url(url)
    ca_bundle = ca_bundle or os.environ.get("ANNOTATOR_DICOMWEB_CA_BUNDLE") or Settings.load().ca_bundles.get(plain, "")
    return plain, user, ca_bundle


def server_at(url: str, user: str = "", token: str = "", ca_bundle: str = ""):
    """The DICOMweb server at ``url`` (:func:`server_terms`) with its secret: HTTP basic
    with the user's password from ``ANNOTATOR_DICOMWEB_PASSWORD`` or the keyring, else the
    bearer token given or remembered, else none."""
    from annotator.datastore.dicomweb import Credentials, DicomwebServer
    from annotator.datastore.secrets import password_for, recall

    plain, user, ca_bundle = server_terms(url, user, token, ca_bundle)
    if user:
        return DicomwebServer(plain, Credentials(user, password_for(plain, user), "", ca_bundle))
    return DicomwebServer(plain, Credentials("", "", token or recall(plain, "", "token") or "", ca_bundle))
