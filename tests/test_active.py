"""Ranking the unlabeled images: strategies, the score cache and its invalidation when the
model changes, cancel, bad images skipped, and a server datastore ranked like a folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from annotator.active import rank
from annotator.active.ranking import SCORING
from annotator.annotation.jobs import Cancelled
from annotator.datastore import LocalDatastore, Status
from annotator.errors import ModelError
from paths import DATA

CASES = ["hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006"]


@pytest.fixture
def folder(hippo_store):
    return hippo_store


def test_tta_ranks_every_unlabeled_image_and_caches_per_model(folder):
    from annotator.models import ModelRegistry, load_checkpoint, save_checkpoint
    from annotator.models.registry import user_dir

    store = LocalDatastore(folder)
    volume = store.open_image(CASES[0])
    store.accept(CASES[0], np.zeros(volume.shape, np.uint8), volume)  # labeled: not ranked
    first = rank(store, "tta")
    assert [r.id for r in first.ranked] == sorted((r.id for r in first.ranked), key=lambda i: -next(
        x.score for x in first.ranked if x.id == i))
    assert {r.id for r in first.ranked} == set(CASES[1:]) and not any(r.cached for r in first.ranked)
    assert all(0 <= r.score <= 1 and set(r.per_label) == {"anterior", "posterior"} for r in first.ranked)
    assert first.seconds_per_image > 0
    # the worklist's score column is the store's score
    records = {r.id: r for r in store.records()}
    assert records[CASES[1]].score == pytest.approx(next(r.score for r in first.ranked if r.id == CASES[1]))
    assert records[CASES[0]].score is None
    # current scores are taken from the cache without opening their images
    opened, open_image = [], store.open_image
    store.open_image = lambda image_id, progress=None: opened.append(image_id) or open_image(image_id, progress)
    again = rank(store, "tta")
    assert all(r.cached for r in again.ranked) and [r.score for r in again.ranked] == [r.score for r in first.ranked]
    assert opened == []
    # a score kept by an earlier way of scoring is computed again
    kept = dict(records[CASES[1]].info["active"])
    assert kept["tta"]["modality"] == open_image(CASES[1]).modality
    store.set_info(CASES[1], active={"tta": {**kept["tta"], "scoring": SCORING - 1}})
    assert {r.id: r.cached for r in rank(store, "tta").ranked}[CASES[1]] is False
    assert opened == [CASES[1]]
    # a current entry that does not say the modality (kept before it was) opens the image
    # once, and says it from then on
    older = records[CASES[2]].info["active"]["tta"]
    store.set_info(CASES[2], active={"tta": {k: v for k, v in older.items() if k != "modality"}})
    for _ in range(2):
        assert {r.id: r.cached for r in rank(store, "tta").ranked}[CASES[2]] is True
        assert opened == [CASES[1], CASES[2]]
    # another model in use: every cached score is stale
    registry = ModelRegistry()
    model, card = load_checkpoint(registry.entry("deepedit-hippocampus-mr").sidecar)
    with __import__("torch").no_grad():
        for p in model.parameters():
            p.mul_(0.9)
    card.name = "deepedit-hippocampus-mr-tuned"
    save_checkpoint(model, card, user_dir() / f"{card.name}.json")
    ModelRegistry().choose(card.name)
    changed = rank(store, "tta")
    assert not any(r.cached for r in changed.ranked)
    assert [r.score for r in changed.ranked] != [r.score for r in first.ranked]


def test_random_is_seeded_and_first_keeps_the_order(folder):
    store = LocalDatastore(folder)
    one, two, other = (rank(store, "random", seed=s) for s in (1, 1, 2))
    assert [r.id for r in one.ranked] == [r.id for r in two.ranked]
    assert [r.score for r in one.ranked] != [r.score for r in other.ranked]
    assert [r.id for r in rank(store, "first").ranked] == CASES


def test_a_bad_image_is_skipped_and_the_rest_ranked(folder):
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    ranking = rank(LocalDatastore(folder), "epistemic")
    assert set(ranking.skipped) == {"broken"} and "broken.nii.gz" in ranking.skipped["broken"]
    assert {r.id for r in ranking.ranked} == set(CASES)


def test_cancel_keeps_the_scores_so_far(folder):
    store = LocalDatastore(folder)
    seen = []

    def progress(text, fraction):
        seen.append(fraction)
        if len(seen) > 1:  # after the first image
            raise Cancelled("ranking")

    with pytest.raises(Cancelled):
        rank(store, "tta", progress=progress)
    scored = [r for r in store.records() if r.score is not None]
    assert len(scored) == 1  # the first image's score was kept; nothing after the cancel


def test_no_model_for_the_images_is_said_once_and_remembered(tmp_path):
    from annotator.models import ModelRegistry, load_checkpoint, save_checkpoint
    from annotator.models.registry import user_dir

    folder = tmp_path / "ct"
    shutil.copytree(DATA / "totalsegmentator_example" / "example_ct_dicom", folder / "series")
    store = LocalDatastore(folder)
    with pytest.raises(ModelError, match="no deepedit model for CT images"):
        rank(store, "tta")
    assert store.records()[0].info["active"]["tta"]["modality"] == "CT"
    # the next ranking skips it for its modality without reading the series again
    opened, open_image = [], store.open_image
    store.open_image = lambda image_id, progress=None: opened.append(image_id) or open_image(image_id, progress)
    with pytest.raises(ModelError, match="no deepedit model for CT images"):
        rank(store, "tta")
    assert opened == []
    # once a CT model is installed, the series is read again (here: it cannot be, and is skipped for that)
    model, card = load_checkpoint(ModelRegistry().entry("deepedit-hippocampus-mr").sidecar)
    card.name, card.modality = "deepedit-ct", "CT"
    card.training.pop("extent_mm")  # (the hippocampus crops' sizes would refuse a whole CT)
    save_checkpoint(model, card, user_dir() / f"{card.name}.json")

    def unreadable(image_id, progress=None):
        opened.append(image_id)
        raise OSError("the disk is gone")

    store.open_image = unreadable
    assert rank(store, "tta").skipped == {"series": "the disk is gone"} and opened == ["series"]
    assert [r.id for r in rank(LocalDatastore(folder), "random").ranked] == ["series"]


def test_an_image_far_from_the_models_training_sizes_is_skipped_and_remembered(folder):
    """The bundled model was trained on hippocampus crops (26 to 58 mm): its uncertainty on
    a whole head says nothing (on the brain MR study the two whole-head series ranked above
    the crop). Such an image is skipped with the reason, loses an earlier score, and is
    skipped again without being read; the crops are ranked."""
    from annotator.io.volume import Volume
    from annotator.io.write import write_volume

    rng = np.random.default_rng(0)
    write_volume(folder / "head.nii.gz", Volume(rng.normal(100, 20, (40, 50, 50)).astype(np.int16),
                                                 spacing=(4.0, 4.0, 4.0), origin=(0.0, 0.0, 0.0),
                                                 direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)))
    store = LocalDatastore(folder)
    store.set_scores({"head": 0.99})  # an earlier ranking (another strategy) put it first
    ranking = rank(store, "tta")
    assert {r.id for r in ranking.ranked} == set(CASES)
    assert set(ranking.skipped) == {"head"}
    assert ranking.skipped["head"].startswith("no deepedit model for images of this size: this image "
                                              "(200 x 200 x 160 mm) is far larger than the images model "
                                              "'deepedit-hippocampus-mr' was trained on")
    records = {r.id: r for r in store.records()}
    assert records["head"].score is None and records["hippocampus_001"].score is not None
    assert records["head"].info["active"]["tta"]["extent_mm"] == [200.0, 200.0, 160.0]
    assert records["head"].info["active"]["tta"]["skipped"] == ranking.skipped["head"]  # the worklist says why
    opened, open_image = [], store.open_image
    store.open_image = lambda image_id, progress=None: opened.append(image_id) or open_image(image_id, progress)
    assert set(rank(store, "tta").skipped) == {"head"} and opened == []
    # with nothing else to rank, the ranking fails with that reason
    for case in CASES:
        (folder / f"{case}.nii.gz").unlink()
    with pytest.raises(ModelError, match="no deepedit model for images of this size"):
        rank(LocalDatastore(folder), "epistemic")


def test_cli_rank_json(folder):
    proc = subprocess.run([sys.executable, "-m", "annotator", "rank", str(folder), "--strategy", "random", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [set(r) for r in rows] == [{"id", "score", "strategy"}] * len(CASES)
    assert {r["id"] for r in rows} == set(CASES) and all(r["strategy"] == "random" for r in rows)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    bad = subprocess.run([sys.executable, "-m", "annotator", "rank", str(folder), "--strategy", "oracle"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "oracle" in bad.stderr


def test_a_server_datastore_is_ranked_like_a_folder(tmp_path):
    from annotator.datastore.dicomweb import Credentials, DicomwebServer
    from annotator.datastore.orthanc import LocalOrthanc, available
    from annotator.datastore.remote import DicomwebDatastore

    if available() is not None:
        pytest.skip(available())
    import pydicom
    from pydicom.uid import generate_uid

    # the cropped series and a copy of it as a second series, its contrast halved (the
    # whole-head series of the study take a minute and a half to score)
    crop = sorted((DATA / "udacity_study3_mr_dicom" / "11_HCropVolume").iterdir())
    series, copies = generate_uid(), []
    for i, path in enumerate(crop):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()
        copies.append(tmp_path / f"copy{i:03d}.dcm")
        ds.save_as(copies[-1])
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload([*crop, *copies])
        store = DicomwebDatastore(DicomwebServer(server.url, Credentials(server.user, server.password)))
        ranking = rank(store, "tta")
        assert len(ranking.ranked) == 2 and not ranking.skipped
        assert all(r.score is not None and r.status == Status.UNLABELED for r in store.records())


def test_a_structure_that_fades_into_its_surroundings_scores_higher():
    """Equally unsteady repeats: the fainter structure is the likelier error."""
    from annotator.active.uncertainty import Measured, _aggregates, contrast, weighed

    def _label_score(masks, consensus, probability, distinct):
        measured = Measured({"structure": (_aggregates(masks, consensus, probability), 0.2, distinct)})
        return weighed(measured).per_label["structure"]

    z, y, x = np.ogrid[:24, :24, :24]
    ball = lambda cz: (z - cz) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 <= 36  # noqa: E731
    passes = [ball(12), ball(11), ball(13)]
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (24, 24, 24))
    clear, faint = noise + 5 * ball(12), noise + 0.5 * ball(12)
    assert contrast(clear, ball(12)) > 5 * contrast(faint, ball(12)) > 0
    assert contrast(clear, np.zeros_like(ball(12))) == 0
    scores = [_label_score(passes, ball(12), ball(12).astype(float), contrast(image, ball(12)))
              for image in (clear, faint)]
    assert 0 < scores[0] < scores[1] < 1
    # steadier repeats score lower on the same image
    assert _label_score([ball(12), ball(12), ball(11)], ball(12), ball(12).astype(float),
                        contrast(faint, ball(12))) < scores[1]
    # a label no repeat predicts still ranks first, and so does its image
    nothing = Measured({"structure": ({}, 1.0, 0.0), "other": ({"disagreement": 0.1, "entropy": 0.1}, 0.1, 3.0)})
    assert weighed(nothing).per_label["structure"] == 1.0 and weighed(nothing).score == 1.0


def test_a_prediction_the_image_does_not_bear_out_scores_higher():
    """The image's own boundary against the network's: a GraphCut seeded by the prediction
    agrees with a prediction on the structure and moves off one beside it."""
    from annotator.active.uncertainty import boundary_disagreement
    from annotator.io.volume import Volume

    z, y, x = np.ogrid[:28, :28, :28]
    ball = lambda cx: (z - 14) ** 2 + (y - 14) ** 2 + (x - cx) ** 2 <= 49  # noqa: E731
    image = np.random.default_rng(0).normal(0, 0.3, (28, 28, 28)) + 3.0 * ball(14)
    grid = Volume(image.astype(np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    on = boundary_disagreement(grid, ball(14).astype(np.uint8), 1)
    beside = boundary_disagreement(grid, ball(16).astype(np.uint8), 1)
    assert on < 0.1 and beside > 2 * on
    assert boundary_disagreement(grid, np.zeros((28, 28, 28), np.uint8), 1) == 1.0  # nothing predicted


def _measured(disagreement: float, contrast: float):
    from annotator.active.uncertainty import Measured

    return Measured({"structure": ({"disagreement": disagreement, "entropy": disagreement}, 1.0, contrast)})


def test_calibration_chooses_the_powers_that_rank_the_errors():
    """A steady model that goes wrong where the boundary is faint gets a strong contrast
    power; one whose unsteadiness says where it is wrong, none; too few cases or a tie
    keep the default."""
    from annotator.active.calibration import CONTRAST, MIN_CASES, PAIRS, choose
    from annotator.active.uncertainty import POWERS

    rng = np.random.default_rng(0)
    n = MIN_CASES + 10
    unsteady, faint = rng.uniform(0.01, 0.05, n), rng.uniform(0.5, 8.0, n)
    # errors where the structure is faint, the repeats' disagreement unrelated to them
    steady = choose({"tta": [_measured(d, c) for d, c in zip(unsteady, faint)]}, list(0.3 / faint))
    assert steady["powers"]["tta"] == {"unsteadiness": min(p for p, _ in PAIRS), "contrast": max(CONTRAST)}
    assert steady["cases"] == n and set(steady["spearman"]["tta"]) == {f"{p:g}/{q:g}" for p, q in PAIRS}
    assert steady["spearman"]["tta"]["0.25/2"] > steady["spearman"]["tta"]["1/0"] + 0.3
    # errors where the repeats disagree, the contrast unrelated to them
    learning = choose({"epistemic": [_measured(d, c) for d, c in zip(unsteady, faint)]}, list(5 * unsteady))
    assert learning["powers"]["epistemic"]["contrast"] == 0.0
    assert learning["spearman"]["epistemic"]["1/0"] == pytest.approx(1.0)
    # every pair ranks alike (one contrast for all): the default stays
    alike = choose({"tta": [_measured(d, 2.0) for d in unsteady]}, list(5 * unsteady))
    assert alike["powers"] == {"tta": {"unsteadiness": POWERS[0], "contrast": POWERS[1]}}
    # too few cases, or errors all alike: nothing is chosen
    assert choose({"tta": [_measured(d, c) for d, c in zip(unsteady, faint)][:MIN_CASES - 1]},
                  list(0.3 / faint[:MIN_CASES - 1])) == {}
    assert choose({"tta": [_measured(d, c) for d, c in zip(unsteady, faint)]}, [0.1] * n) == {}


def test_a_model_scores_with_the_powers_chosen_for_it_and_scores_again_when_they_change(folder):
    """The same weights calibrated again: the cached scores are stale, and the new powers
    are the ones the scores use."""
    from annotator.active.uncertainty import measure, weighed
    from annotator.engine.deep import new_session
    from annotator.models import ModelRegistry, load_checkpoint, save_checkpoint
    from annotator.models.registry import user_dir

    model, card = load_checkpoint(ModelRegistry().entry("deepedit-hippocampus-mr").sidecar)
    chosen = card.uncertainty["powers"]  # the starter's, chosen on its 42 validation cases
    assert set(chosen) == {"tta", "epistemic"} and card.uncertainty["cases"] == 42
    store = LocalDatastore(folder)
    for case in CASES[2:]:  # two images to rank
        volume = store.open_image(case)
        store.accept(case, np.zeros(volume.shape, np.uint8), volume)
    measured = measure(new_session(store.open_image(CASES[0]), model, card), "tta")
    scores = []
    for power in (0.0, 2.0):
        card.name, card.uncertainty = "calibrated", {"powers": {"tta": {"unsteadiness": 1.0, "contrast": power}}}
        save_checkpoint(model, card, user_dir() / "calibrated.json")
        ModelRegistry().choose("calibrated")
        ranking = {r.id: r for r in rank(store, "tta").ranked}
        assert set(ranking) == set(CASES[:2]) and not any(r.cached for r in ranking.values())
        assert ranking[CASES[0]].score == pytest.approx(weighed(measured, (1.0, power)).score)
        scores.append({i: r.score for i, r in ranking.items()})
    assert scores[0] != scores[1]
    assert all(r.cached for r in rank(store, "tta").ranked)
