"""The worklist ranked by uncertainty: Score fills the column, blanks sort last, "Next"
follows the ranking, Cancel stops it, the strategy is a setting."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.napari.worklist_dock import ID_ROLE


def _rows(worklist) -> list[tuple[str, str]]:
    t = worklist.table
    return [(t.item(r, 0).data(ID_ROLE), t.item(r, 3).text()) for r in range(t.rowCount())]


def test_score_sorts_the_worklist_and_next_follows(annotator_window, qtbot, tmp_path):
    viewer, ws, annotation, worklist = annotator_window
    labeled = ws.image_id
    ws.label[:] = 0
    ws.label[10:20, 20:30, 10:20] = 1
    ws.painted()
    ws.accept()  # a labeled image is not ranked: its score stays blank
    qtbot.waitUntil(lambda: not ws.files.busy, timeout=30000)
    worklist.strategy.setCurrentIndex(worklist.strategy.findData("tta"))
    worklist.score_button.click()
    assert worklist.score_button.text() == "Cancel" and not worklist.scoring.isHidden()
    qtbot.waitUntil(lambda: not ws.scoring_now, timeout=180000)
    assert worklist.score_button.text() == "Score" and worklist.scoring.isHidden()
    rows = _rows(worklist)
    assert rows[-1] == (labeled, "")  # the blank last, although the sort is descending
    scores = [float(s) for _, s in rows[:-1]]
    assert len(scores) == 2 and scores == sorted(scores, reverse=True)
    assert ws.order == [i for i, _ in rows]
    top = worklist.table.item(0, 3).toolTip()  # the score per label, as kept for the image
    assert top.startswith("Higher: the model is less sure") and f"tta: {rows[0][1]}" in top, top
    assert "anterior" in top and "posterior" in top, top
    worklist.grab().save(str(tmp_path / "ranked.png"))
    ws.next_image()
    qtbot.waitUntil(lambda: ws.image_id == rows[0][0] and ws.idle and not ws.files.busy, timeout=30000)
    assert ws.settings.load().strategy == "tta"


def test_cancel_stops_the_ranking(annotator_window, qtbot):
    viewer, ws, annotation, worklist = annotator_window
    statuses = []
    ws.status.connect(statuses.append)
    worklist.strategy.setCurrentIndex(worklist.strategy.findData("epistemic"))
    worklist.score_button.click()
    worklist.score_button.click()  # Cancel
    qtbot.waitUntil(lambda: not ws.scoring_now, timeout=60000)
    assert any("cancelled" in s for s in statuses)
    assert worklist.score_button.text() == "Score"
    assert sum(1 for _, s in _rows(worklist) if s) < 3


def test_a_refresh_updates_the_rows_in_place(annotator_window, qtbot):
    """Opening or saving refreshes the worklist: the rows stay (a worklist of thousands of
    images is not rebuilt each time), and what changed shows: the status of an accepted
    image, the bold row of the image open."""
    viewer, ws, annotation, worklist = annotator_window
    t = worklist.table
    items = {t.item(r, 0).data(ID_ROLE): (t.item(r, 0), t.item(r, 1)) for r in range(t.rowCount())}
    first = ws.image_id
    ws.label[:] = 0
    ws.label[10:20, 20:30, 10:20] = 1
    ws.painted()
    ws.accept()
    qtbot.waitUntil(lambda: not ws.files.busy and items[first][1].text() == "labeled", timeout=30000)
    other = next(i for i in items if i != first)
    worklist.open_image(other)
    qtbot.waitUntil(lambda: ws.image_id == other and ws.idle and not ws.files.busy, timeout=30000)
    now = {t.item(r, 0).data(ID_ROLE): (t.item(r, 0), t.item(r, 1)) for r in range(t.rowCount())}
    assert now.keys() == items.keys() and all(now[i][0] is items[i][0] for i in items)  # the same rows
    assert [i for i, (name, _) in now.items() if name.font().bold()] == [other]
    assert now[first][1].foreground().color().name() == "#0f9d58"  # labeled: green


def test_export_writes_the_labelled_images_for_training_elsewhere(annotator_window, qtbot, tmp_path):
    """Export... is there once an image is labelled; it writes the labelled image and its
    label in the background and says so."""
    import json

    viewer, ws, annotation, worklist = annotator_window
    assert not worklist.export.isEnabled()  # nothing labelled yet
    ws.label[:] = 0
    ws.label[10:20, 20:30, 10:20] = 1
    ws.painted()
    ws.accept()
    qtbot.waitUntil(lambda: not ws.files.busy and worklist.export.isEnabled(), timeout=30000)
    statuses = []
    ws.status.connect(statuses.append)
    worklist.export_to(str(tmp_path / "export"))
    qtbot.waitUntil(lambda: any("exported" in s for s in statuses) and not ws.files.busy, timeout=30000)
    described = json.loads((tmp_path / "export" / "dataset.json").read_text())
    assert described["annotator"]["cases"] == {ws.image_id: ws.image_id} and described["numTraining"] == 1
    assert f"1 labelled image exported to {tmp_path / 'export'}" in statuses[-1]
    errors = []
    ws.error.connect(errors.append)
    worklist.export_to(str(tmp_path / "export"))  # again: refused, nothing written over
    qtbot.waitUntil(lambda: bool(errors), timeout=30000)
    assert "a folder that holds files" in errors[-1]


@pytest.fixture
def with_a_head(store_folder):
    """The store with a whole-head-sized MR beside the hippocampus crops."""
    from annotator.io.volume import Volume
    from annotator.io.write import write_volume

    rng = np.random.default_rng(0)
    write_volume(store_folder / "head.nii.gz", Volume(rng.normal(100, 20, (40, 50, 50)).astype(np.int16),
                                                       spacing=(4.0, 4.0, 4.0), origin=(0.0, 0.0, 0.0),
                                                       direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)))
    return store_folder


def test_an_image_the_model_cannot_score_says_why_in_its_row(with_a_head, annotator_window, qtbot):
    """A whole head is not scored by a model of hippocampus crops: its score stays blank,
    sorts last, and its score cell says why (it said nothing: only the status line did,
    for the last ranking)."""
    viewer, ws, annotation, worklist = annotator_window
    worklist.strategy.setCurrentIndex(worklist.strategy.findData("tta"))
    worklist.score_button.click()
    qtbot.waitUntil(lambda: not ws.scoring_now, timeout=180000)
    rows = _rows(worklist)
    assert rows[-1] == ("head", "") and all(score for _, score in rows[:-1])
    tip = worklist.table.item(len(rows) - 1, 3).toolTip()
    assert tip.startswith("tta: not scored: no deepedit model for images of this size: this image "
                          "(200 x 200 x 160 mm) is far larger than"), tip
