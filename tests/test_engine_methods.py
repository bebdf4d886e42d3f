"""Networks join the click methods when a model for the image's modality is installed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from annotator.engine.deep import DeepClicks
from annotator.engine.methods import choose
from annotator.io import read_volume
from annotator.models import ModelCard, ModelRegistry, build_network, save_checkpoint
from paths import HIPPO

SMALL = {"name": "UNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 2,
         "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}
IMAGE = HIPPO / "images" / "hippocampus_001.nii.gz"


def _install(folder, modality="MR"):
    torch.manual_seed(0)
    card = ModelCard(name=f"tiny-{modality}", method="deepgrow3d", architecture=SMALL,
                     labels={"hippocampus": 1}, modality=modality, roi_size=[32, 32, 32])
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(build_network(SMALL), card, folder / f"tiny-{modality}.json")


def test_graphcut_without_models_and_network_with_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    volume = read_volume(IMAGE)
    volume.modality = "CT"
    assert choose(volume).name == "graphcut"  # the bundled model is for MR: not chosen
    volume.modality = "MR"
    assert choose(volume).name == "deepedit"  # the bundled starter model
    volume.modality = "unknown"  # a NIfTI not in Hounsfield units: not a CT, so an MR model suits it
    assert choose(volume).name == "deepedit"
    _install(tmp_path / "data" / "annotator" / "models", modality="CT")
    volume.modality = "CT"
    assert choose(volume).name == "deepgrow3d"


def test_an_image_that_does_not_say_its_modality_takes_mr_models_not_ct_ones(tmp_path):
    """A NIfTI's modality is "unknown" unless its values are Hounsfield units (then "CT"):
    models for MR (or any modality) answer it, a CT model only when asked for, with a warning."""
    from annotator.models.registry import suits

    assert [suits(made_for, "unknown") for made_for in ("MR", "unknown", "CT")] == [True, True, False]
    assert [suits(made_for, "CT") for made_for in ("MR", "unknown", "CT")] == [False, True, True]
    volume = read_volume(IMAGE)
    assert volume.modality == "unknown"
    for modality, answers in (("MR", True), ("CT", False)):
        folder = tmp_path / modality
        _install(folder, modality=modality)
        method = DeepClicks("deepgrow3d", ModelRegistry([folder]))
        assert method.available(volume) == answers
        note = method.warning(volume)
        assert (note is None) == answers, note
    assert "trained on CT images; this image is not in Hounsfield units" in note


def test_sessions_are_reused_per_image(tmp_path):
    _install(tmp_path)
    method = DeepClicks("deepgrow3d", ModelRegistry([tmp_path]))
    a, b = read_volume(IMAGE), read_volume(HIPPO / "images" / "hippocampus_003.nii.gz")
    for volume in (a, b, a, b):
        result = method(volume, [tuple(s // 2 for s in volume.shape)])
        assert result.label.shape == volume.shape
    assert method.session(a).preprocess_count == 1 and method.session(b).preprocess_count == 1


def test_cli_says_which_method_it_used(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    _install(tmp_path / "data" / "annotator" / "models", modality="unknown")
    for method in ("auto", "deepgrow3d"):  # auto: the bundled DeepEdit, made for such images
        out = tmp_path / f"{method}.nii.gz"
        proc = subprocess.run([sys.executable, "-m", "annotator", "clicks", str(IMAGE), "--fg", "17,25,17",
                               "--method", method, "--out", str(out)], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert f"method: {'deepedit' if method == 'auto' else method}," in proc.stdout and out.exists()


def _install_deepedit(folder, name="tiny-edit", training=None):
    torch.manual_seed(0)
    arch = dict(SMALL, in_channels=4, out_channels=3)  # image + 3 class guidance
    card = ModelCard(name=name, method="deepedit", architecture=arch,
                     labels={"background": 0, "anterior": 1, "posterior": 2}, modality="MR",
                     roi_size=[32, 32, 32], training=training or {})
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(build_network(arch), card, folder / f"{name}.json")


def test_automatic_segmentation_covers_the_image(tmp_path):
    from annotator.engine.session import ClickSession
    from annotator.models import load_checkpoint

    sidecar = _install_deepedit(tmp_path)
    model, card = load_checkpoint(sidecar)
    volume = read_volume(HIPPO / "images" / "hippocampus_004.nii.gz")
    forwards = []
    model.register_forward_hook(lambda *_: forwards.append(1))
    session = ClickSession(volume, model, card)
    result = session.automatic()
    assert result.label.shape == volume.shape
    assert set(np.unique(result.label)) <= {0, 1, 2}
    assert result.box == tuple(slice(0, n) for n in volume.shape)
    assert result.method == "deepedit-auto"
    # the strokes that then correct it take its probability without running the network again
    ran = len(forwards)
    assert ran >= 1
    probability = session.probability((1,))
    assert len(forwards) == ran and probability.shape == volume.shape
    assert session.probability((2,)).shape == volume.shape and len(forwards) == ran


def test_cli_infer(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    _install_deepedit(tmp_path / "data" / "annotator" / "models")
    out = tmp_path / "auto.nii.gz"
    run = lambda *a: subprocess.run([sys.executable, "-m", "annotator", *a], capture_output=True, text=True,
                                    env=env, timeout=300)
    proc = run("infer", str(IMAGE), "--model", "tiny-edit", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "method: deepedit-auto (tiny-edit)" in proc.stdout and "warning" not in proc.stderr
    assert read_volume(out).shape == read_volume(IMAGE).shape
    _install_deepedit(tmp_path / "data" / "annotator" / "models", "tiny-patch",  # trained on 16 mm patches
                      {"extent_mm": {"smallest": [16, 16, 16], "largest": [16, 16, 16]}})
    proc = run("infer", str(IMAGE), "--model", "tiny-patch", "--out", str(out))
    assert proc.returncode == 0 and "method: deepedit-auto (tiny-patch)" in proc.stdout
    assert proc.stderr.startswith("warning: this image (51 x 35 x 35 mm) is far larger than the images model "
                                  "'tiny-patch' was trained on (16 x 16 x 16 mm)"), proc.stderr
    proc = run("infer", str(IMAGE), "--model", "nope", "--out", str(out))
    assert proc.returncode == 2 and "no model named 'nope'" in proc.stderr


def test_a_model_warns_of_images_far_from_the_sizes_it_was_trained_on(tmp_path):
    """The bundled models' sidecars give the sizes of their training images (hippocampus
    crops, 26 to 58 mm); a whole head, or a patch far smaller, is warned about, whichever
    way it is stored, and "auto" does not answer its clicks with them; a model whose
    sidecar does not say warns of nothing."""
    from annotator.engine.deep import extent_note, model_notes
    from annotator.io.volume import Volume
    from annotator.models import load_checkpoint

    card = ModelRegistry().entry("deepedit-hippocampus-mr").card
    assert card.training["extent_mm"] == {"smallest": [40.0, 32.0, 26.0], "largest": [58.0, 47.0, 41.0]}
    crop = read_volume(IMAGE)
    crop.modality = "MR"  # a NIfTI does not say
    assert extent_note(card, crop) is None and model_notes(card, crop) is None

    def volume(shape, spacing):
        return Volume(np.zeros(shape, np.int16), spacing=tuple(reversed(spacing)), origin=(0.0, 0.0, 0.0),
                      direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), modality="MR")

    head = volume((22, 320, 280), (6.5, 0.6875, 0.6875))  # the T1 of the brain MR study
    note = extent_note(card, head)
    assert note.startswith("this image (220 x 192 x 143 mm) is far larger than")
    assert "(40 x 32 x 26 mm to 58 x 47 x 41 mm)" in note
    assert extent_note(card, volume((280, 320, 22), (0.6875, 0.6875, 6.5))) == note  # stored the other way
    assert extent_note(card, volume((100, 60, 40), (1, 1, 1))) is None  # within twice the largest
    assert extent_note(card, volume((120, 60, 40), (1, 1, 1))).split(" is ")[1].startswith("far larger")
    assert "far smaller" in extent_note(card, volume((12, 12, 12), (1, 1, 1)))
    assert model_notes(card, head) == note  # an MR: the size is all there is to say
    # "auto" answers clicks with the bundled networks on crops of their size, GraphCut on a head
    assert [choose(v).name for v in (crop, head, volume((100, 60, 40), (1, 1, 1)))] == \
        ["deepedit", "graphcut", "deepedit"]
    _, tiny = load_checkpoint(_install_deepedit(tmp_path))
    assert extent_note(tiny, head) is None


def test_the_model_for_an_images_size_answers_it(tmp_path):
    """With a DeepEdit trained on whole heads beside one trained on hippocampus crops,
    whichever is chosen, a crop is answered by the crop model and a head by the head model
    (the chosen one answered both, one of them with a model that never saw such an image);
    among models that fit, the chosen one (a sidecar that gives no sizes fits any)."""
    from annotator.io.volume import Volume

    folder = tmp_path / "models"
    _install_deepedit(folder, "crops", {"extent_mm": {"smallest": [40, 32, 26], "largest": [58, 47, 41]}})
    _install_deepedit(folder, "heads", {"extent_mm": {"smallest": [200, 180, 140], "largest": [240, 220, 180]}})
    registry = ModelRegistry([folder])
    crop = read_volume(IMAGE)
    crop.modality = "MR"
    head = Volume(np.zeros((22, 320, 280), np.int16), spacing=(0.6875, 0.6875, 6.5), origin=(0.0, 0.0, 0.0),
                  direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), modality="MR")
    for chosen in ("heads", "crops"):
        registry.choose(chosen)
        clicks = DeepClicks("deepedit", registry)
        assert clicks.model(crop)[1].name == "crops" and clicks.model(head)[1].name == "heads"
        assert clicks.warning(head) is None and clicks.warning(crop) is None
        assert registry.preferred("deepedit", "MR").card.name == chosen  # size not known: the chosen one
    _install_deepedit(folder, "any")  # its sidecar does not say: it fits any image
    registry = ModelRegistry([folder])
    registry.choose("any")
    assert {registry.preferred("deepedit", "MR", v.extent_mm).card.name for v in (crop, head)} == {"any"}


def test_cli_infer_without_a_model_chooses_as_auto_segment_does(tmp_path):
    """`annotator infer` needed --model; without one it now takes the model made for such an
    image, as Auto-segment does, and for an image none is made for says why, writing
    nothing."""
    from annotator.io.volume import Volume
    from annotator.io.write import write_volume

    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "annotator", *a], capture_output=True, text=True,
                                    env=env, timeout=300)
    out = tmp_path / "auto.nii.gz"
    proc = run("infer", str(IMAGE), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "method: deepedit-auto (deepedit-hippocampus-mr)" in proc.stdout and not proc.stderr
    assert set(np.unique(read_volume(out).array)) <= {0, 1, 2}
    head = write_volume(tmp_path / "head.nii.gz", Volume(np.zeros((40, 50, 50), np.int16), spacing=(4.0, 4.0, 4.0),
                                                          origin=(0.0, 0.0, 0.0),
                                                          direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)))
    proc = run("infer", str(head), "--out", str(tmp_path / "head_seg.nii.gz"))
    assert proc.returncode != 0 and not (tmp_path / "head_seg.nii.gz").exists()
    assert "no installed model is for this image: this image (200 x 200 x 160 mm) is far larger" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_strokes_and_graphcut_clicks_correct_a_networks_answer():
    """Strokes (and GraphCut clicks) on a label that is still the network's answer (Auto-segment, then strokes)
    correct it: the network's probability of the label joins the cut's priors. A label
    drawn from nothing, or another structure under the network's label value, is cut from
    the strokes alone. The bench cuts the hippocampus as one structure the same way."""
    from annotator.bench.robot_graphcut import _model_prior
    from annotator.bench.simulate import sparse_scribbles_from_mask
    from annotator.engine.blend import RADIUS_MM
    from annotator.engine.interactive import segment_scribbles
    from annotator.engine.methods import METHODS, model_prior
    from annotator.engine.metrics import dice
    from annotator.io import read_label

    graphcut = METHODS["graphcut"]
    alone, on_model, whole_alone, whole_on_model, kept = [], [], [], [], []
    for case in ("hippocampus_007", "hippocampus_036"):  # test cases: the starter never saw them
        volume = read_volume(HIPPO / "images" / f"{case}.nii.gz")
        volume.modality = "MR"
        label = read_label(HIPPO / "labels" / f"{case}.nii.gz", volume)
        answer = METHODS["deepedit"].automatic(volume).label  # Auto-segment
        for value in (1, 2):  # anterior, posterior: the starter's labels
            truth = label == value
            strokes = sparse_scribbles_from_mask(truth)  # three slices of strokes, one ring
            plain = segment_scribbles(volume, strokes, value=value)
            corrected = graphcut.scribbles(volume, strokes, previous=answer.copy(), value=value)
            assert corrected.method == "graphcut-scribbles on deepedit's answer" and corrected.model
            alone.append(dice(plain.label == value, truth))
            on_model.append(dice(corrected.label == value, truth))
            fresh = graphcut.scribbles(volume, strokes, previous=None, value=value)  # drawn from nothing
            np.testing.assert_array_equal(fresh.label, plain.label)
            assert fresh.method == "graphcut-scribbles" and not fresh.model
            # a GraphCut click on the answer: from the click alone it redrew the label and lost
            # most of the answer (20 validation cases: 0.87 -> 0.27 after one click; 0.84 with the answer)
            missed = truth & (answer != value)
            click = tuple(int(v) for v in np.argwhere(missed)[len(np.argwhere(missed)) // 2])
            clicked = graphcut.clicks(volume, [click], [], previous=answer.copy(), value=value)
            assert clicked.method == "graphcut-clicks on deepedit's answer" and clicked.label[click] == value
            kept.append(dice(clicked.label == value, answer == value))
            # and it changes the answer near the click only, as the network's own clicks do:
            # where the click's weight in the blend passes one half
            changed = np.argwhere((clicked.label == value) != (answer == value)) * volume.array_spacing
            assert changed.size and np.linalg.norm(changed - np.multiply(click, volume.array_spacing),
                                                   axis=1).max() <= RADIUS_MM * np.sqrt(2 * np.log(2))
        # the whole hippocampus drawn as label 1 is not the network's anterior part
        assert model_prior(volume, np.where(label > 0, 1, 0).astype(np.uint8), 1) is None
        whole = label > 0
        strokes = sparse_scribbles_from_mask(whole)
        prior = _model_prior(volume)
        assert prior.shape == volume.shape and 0 <= prior.min() and prior.max() <= 1
        whole_alone.append(dice(segment_scribbles(volume, strokes).label, whole))
        whole_on_model.append(dice(segment_scribbles(volume, strokes, model_prior=prior).label, whole))
    assert np.mean(on_model) >= 0.85 and np.mean(on_model) > np.mean(alone) + 0.05, (alone, on_model)
    assert min(kept) >= 0.8, kept
    assert np.mean(whole_on_model) >= 0.84 and np.mean(whole_on_model) > np.mean(whole_alone) + 0.05
    volume.modality = "CT"
    assert model_prior(volume, answer, 1) is None and _model_prior(volume) is None  # no model for such an image


def test_a_corrected_answer_the_caller_knows_keeps_the_networks_prior():
    """Corrections can move a part far from DeepEdit's answer (a large missed part added):
    judged by its overlap with the answer alone, such a label is no longer the network's,
    and the next GraphCut click was cut from the click alone and redrew it (2 of 120
    clicks on validation cases lost 0.33 and 0.41 of Dice). A caller that knows the label
    is a corrected answer (the session, from its undo history) says so: the click then
    changes it near the click only."""
    from annotator.engine.methods import METHODS, ON_THE_ANSWER, model_prior
    from annotator.engine.metrics import dice

    volume = read_volume(HIPPO / "images" / "hippocampus_036.nii.gz")  # a test case: the starter never saw it
    volume.modality = "MR"
    answer = METHODS["deepedit"].automatic(volume).label
    for value, added in ((1, 2), (2, 1)):
        corrected = answer.copy()
        corrected[answer == added] = value  # the other part added to this one
        assert dice(corrected == value, answer == value) < 0.7
        assert model_prior(volume, corrected, value) is None
        assert model_prior(volume, corrected, value, on_answer=True) is not None
        part = np.argwhere(answer == added)
        click = tuple(int(v) for v in part[len(part) // 2])
        known = METHODS["graphcut"].clicks(volume, [click], [], previous=corrected.copy(), value=value,
                                           on_answer=True)
        unknown = METHODS["graphcut"].clicks(volume, [click], [], previous=corrected.copy(), value=value)
        assert known.method.endswith(ON_THE_ANSWER) and unknown.method == "graphcut-clicks"
        assert dice(known.label == value, corrected == value) >= 0.95
        assert dice(unknown.label == value, corrected == value) < 0.8  # what the click did before (0.32, 0.71)
