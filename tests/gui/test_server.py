"""Server mode in the app: the Connect dialog (Test, keyring), the server's series in the
worklist, a download with progress, an accepted label sent as SEG, and an upload that
waits while the server is down and is sent when it is back."""

from __future__ import annotations

import keyring
import numpy as np
import pytest

from annotator.datastore.orthanc import LocalOrthanc, available, free_port
from annotator.settings import LabelPreset
from memory_keyring import MemoryKeyring
from paths import DATA

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
STUDY = DATA / "udacity_study3_mr_dicom"


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def _dialog_for(qtbot, server, password):
    from annotator.napari.connect_dialog import ConnectDialog

    dialog = ConnectDialog()
    qtbot.addWidget(dialog)
    dialog.url.setText(server.url)
    dialog.auth.setCurrentIndex(dialog.auth.findData("basic"))
    dialog.user.setText(server.user)
    dialog.secret.setText(password)
    return dialog


def test_connect_test_and_keyring(qtbot, tmp_path, memory_keyring):
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()))
        dialog = _dialog_for(qtbot, server, "not-the-password")
        dialog.run_test()
        qtbot.waitUntil(lambda: dialog.test.isEnabled() and "refused" in dialog.message.text(), timeout=15000)
        assert "not-the-password" not in dialog.message.text()
        dialog.secret.setText(server.password)
        dialog.run_test()
        qtbot.waitUntil(lambda: "answers: 1 image series" in dialog.message.text(), timeout=15000)
        dialog.show()
        dialog.grab().save(str(tmp_path / "connect.png"))
        dialog._connect()
        assert dialog.place == server.url.replace("http://", f"http://{server.user}@")
        assert memory_keyring.secrets == {("annotator-dicomweb", f"{server.user}@{server.url}"): server.password}
        # the next time, the dialog knows the server, the user and (from the keyring) the password
        from annotator.napari.connect_dialog import ConnectDialog

        again = ConnectDialog(dialog.place)
        qtbot.addWidget(again)
        assert (again.url.text(), again.user.text(), again.secret.text()) == (server.url, server.user,
                                                                             server.password)
        assert again.auth.currentData() == "basic"
    for wrong, said in (("ftp://somewhere", "starts with https://"), ("http://127.0.0.1:port/dicom-web", "Port")):
        dialog.place = ""
        dialog.url.setText(wrong)
        dialog._connect()  # refused in the dialog, which stays open: no exception in a slot
        assert said in dialog.message.text() and dialog.place == ""
        dialog.run_test()
        assert said in dialog.message.text()


def test_a_closed_connect_dialog_is_deleted_after_its_test_answers(qtbot, tmp_path, memory_keyring):
    """Each Connect dialog closed stayed, hidden, among the Worklist's children for the rest
    of the session. It is deleted now, once a Test still asking the server has its answer
    (which needs the dialog to write in), also one whose answer came, not yet heard, before
    the closing (as on a busy machine: it was kept then)."""
    from qtpy.QtCore import QThreadPool
    from qtpy.QtWidgets import QWidget

    from annotator.napari.connect_dialog import ConnectDialog

    with LocalOrthanc(tmp_path / "server") as server:
        parent = QWidget()
        qtbot.addWidget(parent)
        for close, answered in (("reject", False), ("_connect", False), ("reject", True), ("_connect", True)):
            dialog = ConnectDialog(server.url.replace("http://", f"http://{server.user}@"), parent)
            dialog.secret.setText(server.password)
            dialog.run_test()
            if answered:
                assert QThreadPool.globalInstance().waitForDone(15000)  # its events wait, unheard
            getattr(dialog, close)()
            assert not dialog.test.isEnabled()  # closed while the Test asks
            qtbot.waitUntil(lambda: not parent.findChildren(QWidget, "connect-dialog"), timeout=15000)


def test_the_training_dock_trains_on_a_servers_labels(make_napari_viewer, qtbot, tmp_path, memory_keyring,
                                                      monkeypatch):
    """Connected to a server, the Training dock named its data "dicom-web" and handed the
    run ``http:/user@host/dicom-web`` (the URL taken for a path, its "//" folded): the run
    found no such folder. The dock names the server now and counts its labelled series, a
    label sent from another workstation too, and the run opens the server."""
    from annotator.datastore import secrets
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.napari.training_dock import TrainingDock
    from annotator.napari.workspace import workspace_for

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()) + sorted((STUDY / "11-T1post-18670").iterdir()))
        client = server_client(server, server.password)
        other = DicomwebDatastore(client, SeriesCache(client, tmp_path / "other"))  # another workstation
        [crop] = [r.id for r in other.records() if "HippoCrop" in r.name]
        volume = other.open_image(crop)
        label = np.zeros(volume.shape, np.uint8)
        label[5:15, 10:20, 10:20] = 1
        other.accept(crop, label, volume, names={1: "hippocampus"})
        viewer = make_napari_viewer()
        dock = TrainingDock(viewer)
        session = workspace_for(viewer).session
        secrets.remember(server.url, server.user, server.password)
        place = server.url.replace("http://", f"http://{server.user}@")
        session.open(place)
        qtbot.waitUntil(lambda: session.volume is not None and session.idle and not session.files.busy,
                        timeout=60000)
        shown = dock.data.text().replace("\u200b", "")  # (break points for wrapping)
        assert shown == f"127.0.0.1:{server.port} (1 labelled)" and dock.data.toolTip() == place
        config = dock.config()
        assert config.data == [place]
        config.out = str(tmp_path / "run")
        monkeypatch.setenv("ANNOTATOR_DICOMWEB_PASSWORD", server.password)  # the keyring here is this process's
        dock.start(config)
        qtbot.waitUntil(lambda: dock.start_button.isEnabled() and "Training failed" in dock.status.text(),
                        timeout=180_000)
    said = dock.status.text().replace("\u200b", "")  # one labelled series is too few: the run opened the server
    assert "needs at least 2 labelled images; found 1 in" in said and place.partition("://")[2] in said, said
    assert f"downloading 1 series labelled on {server.url} from another workstation, with its label" in \
        dock.log.toPlainText().replace("\u200b", "")


def test_server_worklist_download_accept_and_outage(make_napari_viewer, qtbot, tmp_path, memory_keyring):
    from annotator.datastore import secrets
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for

    port, password = free_port(), "pw-5551234"
    server = LocalOrthanc(tmp_path / "server", port=port, password=password).start()
    try:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()) + sorted((STUDY / "11-T1post-18670").iterdir()))
        viewer = make_napari_viewer()
        worklist = WorklistDock(viewer)
        viewer.window.add_dock_widget(worklist, name="Worklist", area="right")
        session = workspace_for(viewer).session
        progress = []
        session.progress.connect(lambda text, fraction: progress.append((text, fraction)))
        secrets.remember(server.url, server.user, password)
        place = server.url.replace("http://", f"http://{server.user}@")
        session.open(place)
        qtbot.waitUntil(lambda: session.volume is not None and session.idle and not session.files.busy,
                        timeout=60000)
        assert worklist.table.rowCount() == 2
        assert session.settings.last_datastore == place and password not in session.settings.path().read_text()
        downloads = [f for t, f in progress if t.startswith("downloading")]
        assert downloads and downloads[-1] == 1.0  # the download showed its progress to the end
        label = np.zeros(session.volume.shape, np.uint8)
        label[5:15, 10:20, 10:20] = 1
        session.label[:] = label
        session.painted()
        session.set_presets([LabelPreset(1, "hippocampus", "#00aaff")])
        session.accept()
        qtbot.waitUntil(lambda: not session.files.busy, timeout=30000)
        qtbot.waitUntil(lambda: "labeled" in _statuses(worklist), timeout=10000)
        segs = list(server_client(server, password).series(modality="SEG", images_only=False))
        assert len(segs) == 1
        row = session.store._row(session.image_id)
        sent = server_client(server, password).labels_of(row.study_uid, row.series_uid)[-1]
        segment = sent.SegmentSequence[0]  # named as the Label list names it, with its SNOMED code
        assert segment.SegmentLabel == "hippocampus"
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning.lower() == "hippocampus"
        # another workstation sends a newer label of it: Reload marks it, opening it takes it
        there = DicomwebDatastore(server_client(server, password),
                                  SeriesCache(server_client(server, password), tmp_path / "there"))
        image_id, theirs = session.image_id, label.copy()
        theirs[5:15, 20:30, 10:20] = 1
        there.accept(image_id, theirs, there.open_image(image_id), names={1: "hippocampus"})
        warned = []
        session.warning.connect(warned.append)
        worklist.reload.click()
        qtbot.waitUntil(lambda: not session.files.busy and worklist.table.rowCount() == 2, timeout=30000)
        row = [worklist.table.item(r, 0).toolTip() for r in range(2)].index(image_id)
        assert worklist.table.item(row, 2).text() == "newer on the server"
        assert worklist.table.item(row, 2).toolTip() == "Kept here: original, final"
        assert "from another workstation" in worklist.table.item(row, 1).toolTip()
        assert any("open it again" in w for w in warned), warned  # the image open is the one
        worklist.grab().save(str(tmp_path / "worklist_newer.png"))
        session.open_image(image_id)
        qtbot.waitUntil(lambda: session.idle and not session.files.busy and session.image_id == image_id, timeout=30000)
        np.testing.assert_array_equal(session.label, theirs)  # on the old code: the label accepted here
        assert any("newer label" in w for w in warned), warned
        qtbot.waitUntil(lambda: not worklist.table.item(row, 2).text().endswith("newer on the server"), timeout=10000)
    finally:
        server.stop()
    # the server goes down: the next accept waits, the worklist says so and offers to send
    session.label[20:25, 10:20, 10:20] = 1
    session.painted()
    session.accept()
    qtbot.waitUntil(lambda: not session.files.busy, timeout=30000)
    qtbot.waitUntil(lambda: "upload_failed" in _statuses(worklist), timeout=10000)
    assert not worklist.send.isHidden() and "waiting to be sent" in worklist.summary.text()
    row = _statuses(worklist).index("upload_failed")
    assert "Not sent yet" in worklist.table.item(row, 1).toolTip()
    workspace, asked = workspace_for(viewer), []  # closing the app now says that a label is not on the server
    workspace.ask_close = lambda message: asked.append(message) or False
    assert not workspace.may_close() and len(asked) == 1
    assert asked[0].startswith(f"1 accepted label has not reached {server.url} yet: cannot connect")
    assert "sent the next time Annotator connects" in asked[0]
    worklist.grab().save(str(tmp_path / "worklist_waiting.png"))
    back = LocalOrthanc(tmp_path / "server", port=port, password=password).start()
    try:
        worklist.send.click()
        qtbot.waitUntil(lambda: "labeled" in _statuses(worklist) and worklist.send.isHidden(), timeout=30000)
        assert len(list(server_client(back, password).series(modality="SEG", images_only=False))) == 3  # and theirs
        assert workspace.may_close() and len(asked) == 1  # all sent: nothing to ask
    finally:
        back.stop()


def _statuses(worklist) -> list[str]:
    return [worklist.table.item(r, 1).text() for r in range(worklist.table.rowCount())]


def server_client(server, password):
    from annotator.datastore.dicomweb import Credentials, DicomwebServer

    return DicomwebServer(server.url, Credentials(server.user, password))


def test_a_series_of_two_echoes_joins_the_worklist_as_two_images(make_napari_viewer, qtbot, tmp_path,
                                                                  memory_keyring, two_echoes_mr):
    """The server's row says one series; once it is opened, the worklist shows each echo,
    and the second opens from there."""
    from annotator.datastore import secrets
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for

    password = "pw-echoes"
    with LocalOrthanc(tmp_path / "server", password=password) as server:
        server.upload(sorted(two_echoes_mr.iterdir()))
        viewer = make_napari_viewer()
        worklist = WorklistDock(viewer)
        viewer.window.add_dock_widget(worklist, name="Worklist", area="right")
        session = workspace_for(viewer).session
        secrets.remember(server.url, server.user, password)
        session.open(server.url.replace("http://", f"http://{server.user}@"))
        qtbot.waitUntil(lambda: session.volume is not None and session.idle and not session.files.busy,
                        timeout=60000)
        assert session.volume.name == "HippoCrop (echo 1)"
        shown = [(layer.name, layer.visible) for layer in viewer.layers if layer._type_string == "image"]
        assert shown == [("HippoCrop (echo 2)", False), ("HippoCrop (echo 1)", True)]  # the other echo beneath
        names = [worklist.table.item(r, 0).text() for r in range(worklist.table.rowCount())]
        assert sorted(names) == ["MR HippoCrop (echo 1, 40 slices)", "MR HippoCrop (echo 2, 40 slices)"]
        first = session.volume
        worklist.open_image(session.image_id + "#2")
        qtbot.waitUntil(lambda: session.volume is not first and session.idle and not session.files.busy,
                        timeout=60000)
        assert session.volume.name == "HippoCrop (echo 2)"
        np.testing.assert_array_equal(session.volume.array, first.array * 2 + 5)
        bold = [worklist.table.item(r, 0).text() for r in range(worklist.table.rowCount())
                if worklist.table.item(r, 0).font().bold()]
        assert bold == ["MR HippoCrop (echo 2, 40 slices)"]


def test_a_label_refused_by_the_server_says_how_to_send_it():
    """A row whose label the server refused told the person it was "retried
    automatically": it is not (see UploadQueue); the tip says how to send it."""
    from annotator.datastore import ImageRecord, Status
    from annotator.datastore.uploads import SIGN_IN_AGAIN
    from annotator.napari.worklist_dock import _cells

    def tip(**info):
        record = ImageRecord("1.2.3", "MR T1", Status.UPLOAD_FAILED, ["final"], None, info)
        return _cells(record)[1][2]

    down = tip(upload_error="http://h/dicom-web: cannot connect", upload_next_try=0.0, upload_refused=False)
    refused = tip(upload_error="http://h/dicom-web: the server refused the credentials (401)", upload_next_try=0.0,
                  upload_refused=True)
    assert "Retried automatically" in down and SIGN_IN_AGAIN not in down
    assert "(401)" in refused and SIGN_IN_AGAIN in refused and "Retried" not in refused
    assert tip() == ""


def test_a_server_with_no_password_here_asks_to_sign_in(make_napari_viewer, qtbot, tmp_path, memory_keyring):
    """The last server reopened on a machine whose keyring has no password for it (a new
    workstation, a keyring reset) said only "no password for annotator": the Connect dialog
    now opens filled in for that server, saying why; signing in there opens the server."""
    from qtpy.QtWidgets import QDialogButtonBox, QWidget

    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for

    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()))
        viewer = make_napari_viewer(show=True)
        worklist = WorklistDock(viewer)
        viewer.window.add_dock_widget(worklist, name="Worklist", area="right")
        session = workspace_for(viewer).session
        session.open(server.url.replace("http://", f"http://{server.user}@"))
        qtbot.waitUntil(lambda: any(w.objectName() == "connect-dialog" and w.isVisible()
                                    for w in worklist.findChildren(QWidget)), timeout=30000)
        [dialog] = [w for w in worklist.findChildren(QWidget) if w.objectName() == "connect-dialog"]
        assert dialog.url.text() == server.url and dialog.user.text() == server.user
        assert f"no password for {server.user}" in dialog.message.text() and "Sign in again" in dialog.message.text()
        dialog.secret.setText(server.password)
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.Ok).click()
        qtbot.waitUntil(lambda: session.volume is not None and session.idle and not session.files.busy, timeout=60000)
        assert worklist.table.rowCount() == 1
        qtbot.waitUntil(lambda: not worklist.findChildren(QWidget, "connect-dialog"))  # closed, and gone
