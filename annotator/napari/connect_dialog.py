"""Connect to a DICOMweb server: URL, authentication, a Test button; the secret goes to
the OS keyring (never to the settings), the server becomes the session's datastore."""

from __future__ import annotations

from itertools import islice

from qtpy.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
    QPushButton, QVBoxLayout, QWidget,
)
from superqt.utils import create_worker

from annotator.datastore import secrets
from annotator.datastore.dicomweb import Credentials, DicomwebServer, parsed_url
from annotator.datastore.factory import server_url, url_user
from annotator.errors import DatastoreError
from annotator.napari.markup import ERROR, GOOD, coloured

AUTH = {"none": "No authentication", "basic": "User and password", "token": "Bearer token"}


def _split(place: str) -> tuple[str, str]:
    """(plain URL, user) of a place as the settings keep it (``https://user@host/...``)."""
    if not place.startswith(("http://", "https://")):
        return "", ""
    return server_url(place), url_user(place)


class ConnectDialog(QDialog):
    """Asks where the server is and how to sign in; ``place`` is the result to open."""

    def __init__(self, last_place: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Connect to a DICOMweb server")
        self.setObjectName("connect-dialog")
        self.setMinimumWidth(520)
        url, user = _split(last_place)
        self.url = QLineEdit(url)
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.auth = QComboBox()
        for key, text in AUTH.items():
            self.auth.addItem(text, key)
        self.user = QLineEdit(user)
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.Password)
        self.ca_bundle = QLineEdit()
        self.ca_bundle.setPlaceholderText("the system's certificates")
        browse = QPushButton("...")
        browse.setMaximumWidth(32)
        browse.clicked.connect(self._browse)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_bundle, 1)
        ca_row.addWidget(browse)
        self.test = QPushButton("Test")
        self.test.setToolTip("Ask the server for its first series with these settings")
        self.test.clicked.connect(self.run_test)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("connect-message")

        form = QFormLayout()
        form.addRow("Server URL", self.url)
        form.addRow("Sign in with", self.auth)
        self.user_label, self.secret_label = QLabel("User"), QLabel("Password")
        form.addRow(self.user_label, self.user)
        form.addRow(self.secret_label, self.secret)
        form.addRow("CA bundle (https)", ca_row)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Connect")
        buttons.accepted.connect(self._connect)
        buttons.rejected.connect(self.reject)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test)
        test_row.addWidget(self.message, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(test_row)
        layout.addWidget(buttons)

        self.auth.currentIndexChanged.connect(self._auth_changed)
        kind = "basic" if user else ("token" if url and secrets.recall(url, "", "token") else "none")
        self.auth.setCurrentIndex(list(AUTH).index(kind))
        self._auth_changed()
        if url:
            known = secrets.recall(url, user, "password" if user else "token")
            self.secret.setText(known or "")
        self.place = ""
        self._worker = None
        self._closed = False

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CA certificates", "", "Certificates (*.pem *.crt);;All files (*)")
        if path:
            self.ca_bundle.setText(path)

    def _auth_changed(self) -> None:
        kind = self.auth.currentData()
        for widget in (self.user_label, self.user):
            widget.setVisible(kind == "basic")
        for widget in (self.secret_label, self.secret):
            widget.setVisible(kind != "none")
        self.secret_label.setText("Token" if kind == "token" else "Password")

    def say(self, text: str, ok: bool | None = None) -> None:
        self.message.setText(coloured(text, {True: GOOD, False: ERROR}.get(ok)))

    def credentials(self) -> Credentials:
        kind = self.auth.currentData()
        secret, ca = self.secret.text(), self.ca_bundle.text().strip()
        if kind == "basic":
            return Credentials(self.user.text().strip(), secret, "", ca)
        return Credentials("", "", secret if kind == "token" else "", ca)

    def _problem(self) -> str | None:
        url = self.url.text().strip()
        if not url.startswith(("http://", "https://")):
            return "The URL starts with https:// (or http:// for a server on this machine)."
        try:
            parsed_url(url)
        except DatastoreError as exc:  # a port that is not a number, no host ...
            return str(exc)
        kind = self.auth.currentData()
        if kind == "basic" and not self.user.text().strip():
            return "Give the user name."
        if kind != "none" and not self.secret.text():
            return f"Give the {'token' if kind == 'token' else 'password'}."
        return None

    def run_test(self) -> None:
        """Ask the server for its first page of series, in a worker (the dialog stays live)."""
        problem = self._problem()
        if problem:
            self.say(problem, False)
            return
        server = DicomwebServer(server_url(self.url.text().strip()), self.credentials())
        self.say("asking the server ...")
        self.test.setEnabled(False)

        def work():
            return len(list(islice(server.series(page=50), 50)))

        def done(count: int) -> None:
            more = "50 or more" if count >= 50 else str(count)
            self.say(f"The server answers: {more} image series on the first page.", True)

        def failed(exc: BaseException) -> None:
            self.say(str(exc), False)  # the errors name the server, never the secret

        self._worker = create_worker(work, _start_thread=False,
                                     _connect={"returned": done, "errored": failed,
                                               "finished": self._test_answered})
        self._worker.start()

    def _connect(self) -> None:
        problem = self._problem()
        if problem:
            self.say(problem, False)
            return
        url = server_url(self.url.text().strip())
        kind = self.auth.currentData()
        user = self.user.text().strip() if kind == "basic" else ""
        kept = True
        if kind != "none":
            kept = secrets.remember(url, user, self.secret.text(), "password" if kind == "basic" else "token")
        else:
            secrets.forget(url, "", "token")
        self.kept_in_keyring = kept
        self.place = server_url(url, user)
        self.accept()

    def done(self, result: int) -> None:
        """Closed (Connect, Cancel, Escape): deleted once a Test still asking the server has
        its answer, rather than kept hidden in the Worklist for the rest of the session."""
        super().done(result)
        self._closed = True
        if self.test.isEnabled():
            self.deleteLater()

    def _test_answered(self) -> None:
        # Told here, on the dialog's thread, rather than by a connection made at closing: a
        # Test that ends before the dialog closes has already sent its "finished", still
        # queued, to the connections it had then.
        self.test.setEnabled(True)
        if self._closed:
            self.deleteLater()
