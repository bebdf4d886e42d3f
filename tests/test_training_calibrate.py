"""What a model's validation cases choose about its use: where a DeepGrow model's first
answer is cut (annotator.training.calibrate), in a training run and with
`annotator models calibrate`."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from annotator.active.calibration import MIN_CASES
from annotator.models import ModelCard, load_checkpoint
from annotator.models.checkpoint import save_card
from annotator.training.calibrate import THRESHOLDS, calibrate, choose_threshold
from balls import ball, ball_folder, install_tiny_deepgrow


class UnsureOfRims(torch.nn.Module):
    """A click network sure of a ball's core, unsure of its rim (log-odds -0.6: the rim
    belongs to the structure, but is less probable than not) and sure the background is
    not the structure: a model that answers too small at the usual cut."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # sessions run where a network's parameters are

    def forward(self, x):
        image = x[:, :1] * 2 - 1  # the window below maps -1..1 to 0..1
        structure = torch.where(image > 0.8, 10.0, torch.where(image > 0.0, -0.6, -10.0))
        return torch.cat([torch.zeros_like(structure), structure], dim=1)


def _card(**kw) -> ModelCard:
    base = dict(name="rims", method="deepgrow3d", architecture={"name": "UNet"}, labels={"structure": 1},
                target_spacing=[1.0, 1.0, 1.0], roi_size=[16, 32, 32], modality="MR",
                intensity={"kind": "window", "low": -1.0, "high": 1.0})
    base.update(kw)
    return ModelCard(**base)


def test_the_best_threshold_is_chosen_and_a_tie_keeps_the_one_nearer_zero():
    scores = {t: [0.8] * MIN_CASES for t in THRESHOLDS}
    scores[-0.5] = scores[0.5] = [0.9] * MIN_CASES
    found = choose_threshold(scores)
    assert found["threshold"] == -0.5 and found["structures"] == MIN_CASES
    assert found["dice"] == {f"{t:g}": (0.9 if abs(t) == 0.5 else 0.8) for t in THRESHOLDS}
    scores[0.25] = [0.9] * MIN_CASES
    assert choose_threshold(scores)["threshold"] == 0.25
    assert choose_threshold({t: [0.9] * (MIN_CASES - 1) for t in THRESHOLDS}) == {}


@pytest.mark.parametrize("method", ["deepgrow3d", "deepgrow2d"])
def test_a_model_that_answers_too_small_gets_a_lower_threshold(method):
    """Clicked at its centre, each validation ball's first answer at the usual cut is its
    core; a log-odds below -0.6 takes the rim too, and is chosen; the model then answers
    whole balls it never saw (DeepGrow 2D: the clicked slice, which it answers and is
    scored on)."""
    from annotator.engine.deep import new_session

    flat = method == "deepgrow2d"
    model = UnsureOfRims()
    card = _card(method=method, architecture={"name": "UNet", "spatial_dims": 2 if flat else 3},
                 roi_size=[1 if flat else 16, 32, 32])
    chosen, text = calibrate(model, card, list(range(MIN_CASES)), ball)
    found = chosen.first_answer
    assert found["threshold"] == -0.75  # -1 takes the rims as well: the one nearer 0
    assert found["dice"]["-0.75"] == 1.0 and found["dice"]["0"] < 0.9
    assert "log-odds of -0.75" in text and f"on {found['structures']} structures" in text
    assert card.first_answer == {}  # the card given stays as it was
    _, volume, truth = ball(101)
    centre, scored = (8, 14, 14), slice(8, 9) if flat else slice(None)
    assert (new_session(volume, model, chosen).click([centre]).label[scored] == truth[scored]).all()
    assert new_session(volume, model, card).click([centre]).label[scored].sum() < truth[scored].sum()
    assert calibrate(model, card, list(range(MIN_CASES - 1)), ball) == (card, "")
    # a case whose label turns out unusable (a server's damaged structure set) is passed over
    unusable = lambda i: ball(i) if i < MIN_CASES else (f"ball{i}", ball(i)[1], None)
    assert calibrate(model, card, list(range(MIN_CASES + 1)), unusable)[0].first_answer["structures"] == MIN_CASES
    assert calibrate(model, card, [*range(MIN_CASES - 1), MIN_CASES], unusable) == (card, "")


def test_a_deepedit_calibration_passes_over_a_case_whose_label_is_unusable():
    """``annotator models calibrate NAME --data URL`` stopped with an error on a server
    series whose only label could not be used for it (a damaged structure set); training
    left such a series out, and so does calibrating now."""
    from annotator.active.calibration import calibrate as powers

    unusable = lambda i: ball(i) if i < MIN_CASES else (f"ball{i}", ball(i)[1], None)
    found = powers(UnsureOfRims(), _card(method="deepedit"), list(range(MIN_CASES + 1)), unusable)
    assert found["cases"] == MIN_CASES and set(found["powers"]) == {"tta", "epistemic"}


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """An installed DeepGrow 3D model of random weights (user models in a temporary folder)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return install_tiny_deepgrow("tiny", modality="MR", training={"data": ["balls"]})


def test_models_calibrate_rewrites_the_sidecar_and_keeps_the_weights(tmp_path, tiny_model, capsys):
    from annotator.cli import main

    weights = tiny_model.with_suffix(".safetensors").read_bytes()
    before = load_checkpoint(tiny_model)[1]
    folder = ball_folder(tmp_path / "balls", MIN_CASES)
    assert main(["models", "calibrate", "tiny"]) != 0  # the sidecar's "balls" is not found here
    assert "give the labelled images" in capsys.readouterr().err
    assert main(["models", "calibrate", "tiny", "--data", str(folder)]) == 0
    said = capsys.readouterr().out
    assert f"on {MIN_CASES} of the labelled images" in said and "log-odds of" in said
    after = load_checkpoint(tiny_model)[1]  # the weights' hash still theirs
    assert after.first_answer["threshold"] in THRESHOLDS and after.first_answer["structures"] == MIN_CASES
    assert set(after.first_answer["dice"]) == {f"{t:g}" for t in THRESHOLDS}
    assert tiny_model.with_suffix(".safetensors").read_bytes() == weights
    assert after.weights_sha256 == before.weights_sha256 and after.training == before.training
    # only the validation cases a sidecar names are used: too few of them here, nothing changes
    raw = json.loads(tiny_model.read_text())
    raw["first_answer"], raw["training"]["validation_cases"] = {}, ["ball00", "ball01"]
    tiny_model.write_text(json.dumps(raw))
    assert main(["models", "calibrate", "tiny", "--data", str(folder)]) == 1
    assert "on 2 of its validation cases" in capsys.readouterr().out
    assert load_checkpoint(tiny_model)[1].first_answer == {}
    # validation cases of another data set: the person's own labelled images are all used
    raw["training"]["validation_cases"] = ["hippocampus_001", "hippocampus_003"]
    tiny_model.write_text(json.dumps(raw))
    assert main(["models", "calibrate", "tiny", "--data", str(folder)]) == 0
    assert f"on {MIN_CASES} of the labelled images" in capsys.readouterr().out
    assert load_checkpoint(tiny_model)[1].first_answer["structures"] == MIN_CASES


def test_calibrating_a_bundled_model_keeps_it_as_shipped(tmp_path):
    """A bundled model's folder may be read-only (a frozen app) and is the package's: its
    calibration goes to a copy in the user folder, which answers in its place where it
    answered, and is rewritten by a second calibration; the bundled files stay byte for byte."""
    from annotator.models import ModelRegistry
    from annotator.training.calibrate import calibrate_installed

    bundled, user = tmp_path / "bundled", tmp_path / "user"
    install_tiny_deepgrow("starter", bundled, modality="MR")
    shipped = {p.name: p.read_bytes() for p in bundled.iterdir()}
    registry = ModelRegistry([bundled, user])
    folder = ball_folder(tmp_path / "balls", MIN_CASES)
    said = calibrate_installed("starter", folder, registry=registry)
    assert {p.name: p.read_bytes() for p in bundled.iterdir()} == shipped
    copy = registry.entry("starter-calibrated")
    assert not copy.bundled and copy.sidecar.parent == user
    card = load_checkpoint(copy.sidecar)[1]  # its weights' hash checked
    assert card.first_answer["threshold"] in THRESHOLDS and card.first_answer["structures"] == MIN_CASES
    assert registry.chosen() == {"deepgrow3d": "starter-calibrated"}
    assert "'starter-calibrated'" in said and "now answers in its place" in said
    # once more: the one copy rewritten; a copy of a model not in use is not chosen
    save_card(replace(card, first_answer={}), copy.sidecar)
    install_tiny_deepgrow("mine", user, modality="MR")
    registry.choose("mine")
    said = calibrate_installed("starter", folder, registry=registry)
    assert registry.chosen() == {"deepgrow3d": "mine"} and "in its place" not in said
    assert sorted(p.name for p in user.glob("starter*")) == ["starter-calibrated.json", "starter-calibrated.safetensors"]
    assert load_checkpoint(copy.sidecar)[1].first_answer == card.first_answer
    assert {p.name: p.read_bytes() for p in bundled.iterdir()} == shipped


def test_a_deepgrow_run_ends_by_choosing_its_threshold(tmp_path, tiny_model):
    """The training run's last step on its best checkpoint: with enough validation cases
    its sidecar gets a threshold (and says so); with fewer, nothing is said or changed."""
    from annotator.training.data import Case
    from annotator.training.job import _calibrate

    folder = ball_folder(tmp_path / "balls", MIN_CASES)
    cases = [Case(str(folder), f"ball{i:02d}") for i in range(MIN_CASES)]
    for given, chosen in ((cases[:-1], False), (cases, True)):
        events = []
        _calibrate(tiny_model, given, "cpu", False, lambda kind, **kw: events.append((kind, kw)))
        found = load_checkpoint(tiny_model)[1].first_answer
        if not chosen:
            assert found == {} and events == []
            continue
        assert found["threshold"] in THRESHOLDS and found["structures"] == MIN_CASES
        assert [kind for kind, _ in events] == ["message", "message"]
        assert f"log-odds of {found['threshold']:g}" in events[-1][1]["text"]
