"""The annotation session without any GUI: open, click, undo, accept, leave, next — on
a datastore written in the tests (the interface is all the session needs)."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.annotation import AnnotationSession
from annotator.datastore import Status
from annotator.engine.metrics import dice
from annotator.io.phantom import ct_phantom
from annotator.settings import Settings
from memory_store import MemoryDatastore


@pytest.fixture
def phantoms():
    shapes = {f"ct{i}": ct_phantom(shape=(40, 80, 80), spacing_zyx=(2.5, 1.5, 1.5), seed=i) for i in range(3)}
    return {k: v[0] for k, v in shapes.items()}, {k: v[1] for k, v in shapes.items()}


@pytest.fixture
def session(tmp_path, monkeypatch, phantoms):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    volumes, _ = phantoms
    s = AnnotationSession(settings=Settings())
    s.method = "graphcut"
    s.set_datastore(MemoryDatastore(volumes))
    s.open_image("ct0")
    return s


def _centre(mask):
    return tuple(int(v) for v in np.round(np.argwhere(mask).mean(axis=0)))


def test_click_undo_redo_accept(session, phantoms):
    _, labels = phantoms
    kidney = labels["ct0"] == 3
    changes = []
    session.label_changed.connect(lambda box, method: changes.append(method))
    session.set_marks([_centre(kidney)], [])
    assert changes == ["graphcut-clicks"] and session.dirty
    assert dice(session.label > 0, kidney) > 0.8
    first = session.label.copy()
    session.set_marks([_centre(kidney), _centre(labels["ct0"] == 2)], [])
    second = session.label.copy()
    assert not np.array_equal(first, second)
    session.undo()
    np.testing.assert_array_equal(session.label, first)
    assert session.marks["fg"] == [_centre(kidney)]  # the marks of that step come back
    session.redo()
    np.testing.assert_array_equal(session.label, second)
    assert session.accept() and not session.dirty
    store = session.store
    np.testing.assert_array_equal(store.label("ct0", None), second)
    np.testing.assert_array_equal(store.label("ct0", None, "original"), second)  # the engine's proposal
    assert store.record("ct0").status == Status.LABELED


def test_leaving_unsaved_work_asks_and_keeps_it(session, phantoms):
    _, labels = phantoms
    asked = []
    session.ask_leave = lambda image_id: asked.append(image_id) or "cancel"
    session.set_marks([_centre(labels["ct0"] == 1)], [])
    session.open_image("ct1")
    assert asked == ["ct0"] and session.image_id == "ct0" and session.dirty  # cancelled: nothing dropped
    session.ask_leave = lambda image_id: "draft"
    session.open_image("ct1")
    assert session.image_id == "ct1" and not session.dirty
    assert session.store.record("ct0").status == Status.IN_PROGRESS
    session.open_image("ct0")  # the draft comes back
    assert (session.label > 0).sum() == (session.store.label("ct0", None, "draft") > 0).sum() > 0


def test_next_follows_the_worklist_order(session):
    session.order = ["ct2", "ct0", "ct1"]  # e.g. ranked by uncertainty
    assert session.next_image_id() == "ct1"
    session.image_id = "ct1"
    assert session.next_image_id() == "ct2"
    session.order = None  # the store's order
    session.image_id = "ct0"
    assert session.next_image_id() == "ct1"


def test_a_failed_save_keeps_the_work_unsaved(session, phantoms):
    _, labels = phantoms
    errors = []
    session.error.connect(errors.append)
    session.set_marks([_centre(labels["ct0"] == 3)], [])

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    session.store.accept = broken
    assert session.accept()  # queued; the failure arrives afterwards
    assert errors and "No space left" in errors[-1]
    assert session.dirty  # still unsaved, still here


def test_autosave_keeps_a_draft_after_a_pause(session, phantoms):
    _, labels = phantoms
    session.autosave_s = 0.0
    session.set_marks([_centre(labels["ct0"] == 3)], [])
    session.tick()
    assert session.store.saves == [("ct0", "draft")] and not session.dirty


def test_a_request_while_the_engine_runs_is_queued(session, phantoms):
    _, labels = phantoms
    session._busy = True  # as while a worker runs
    session.set_marks([_centre(labels["ct0"] == 3)], [])
    assert session._pending == "clicks" and not session.dirty
    session._set_busy(False)
    session._pending, kind = None, session._pending
    session.request(kind)
    assert session.dirty and session.history.marks["fg"] == [_centre(labels["ct0"] == 3)]


def test_cancelled_opening_changes_nothing(session):
    statuses = []
    session.status.connect(statuses.append)
    real = session.store.open_image

    def slow_open(image_id, progress=None):
        session.files.cancel()  # the person presses Cancel while the image is read
        return real(image_id, progress)

    session.store.open_image = slow_open
    session.open_image("ct2")
    assert session.image_id == "ct0" and session.files.current is None
    assert any(s.startswith("cancelled") for s in statuses)
