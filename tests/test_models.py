"""Checkpoints are safetensors + sidecar; anything tampered with is refused, the old model stays."""

from __future__ import annotations

import json

import pytest
import torch

from annotator.engine.device import choose_device, cpu_threads, use_half
from annotator.errors import ModelError
from annotator.models import ModelCard, architecture, ModelRegistry, build_network
from annotator.models import load_checkpoint, save_checkpoint
from annotator.models.networks import parameter_count

SMALL = {"name": "UNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 2,
         "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}


def _card(name="tiny", method="deepgrow3d", arch=SMALL) -> ModelCard:
    return ModelCard(name=name, method=method, architecture=arch, labels={"background": 0, "structure": 1},
                     modality="MR", training={"cases": ["hippocampus_001"]})


def _saved(tmp_path, name="tiny", seed=0):
    torch.manual_seed(seed)
    model = build_network(SMALL)
    return model, save_checkpoint(model, _card(name), tmp_path / f"{name}.json")


def test_round_trip_gives_the_same_outputs(tmp_path):
    model, sidecar = _saved(tmp_path)
    loaded, card = load_checkpoint(sidecar)
    x = torch.randn(1, 3, 16, 16, 16)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x))
    assert card.training == {"cases": ["hippocampus_001"]} and len(card.weights_sha256) == 64
    assert (tmp_path / "tiny.safetensors").read_bytes()[:8]  # a real file beside the sidecar


def test_default_architectures_build_and_are_cpu_sized():
    for method in ("deepgrow2d", "deepgrow3d", "deepedit"):
        model = build_network(architecture(method, labels=2))
        assert parameter_count(model) < 3_000_000, method
        big = build_network(architecture(method, labels=2, variant="sample-app"))
        assert parameter_count(big) > 5 * parameter_count(model), method


@pytest.mark.parametrize("damage, message", [
    ("flip_byte", "do not match their sidecar"),
    ("truncate", "do not match their sidecar"),
    ("remove_weights", "weights file is missing"),
    ("bad_json", "not valid JSON"),
    ("unknown_arch", "unknown architecture 'Transformer9000'"),
    ("wrong_arch", "do not fit the architecture"),
    ("unknown_method", "unknown method"),
    ("label_beyond", "labels must map names to values 0..65535"),
])
def test_damaged_checkpoints_are_refused(tmp_path, damage, message):
    _, sidecar = _saved(tmp_path)
    weights = tmp_path / "tiny.safetensors"
    card = json.loads(sidecar.read_text())
    if damage == "flip_byte":
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "remove_weights":
        weights.unlink()
    elif damage == "bad_json":
        sidecar.write_text("{not json")
    elif damage == "unknown_arch":
        card["architecture"]["name"] = "Transformer9000"
        sidecar.write_text(json.dumps(card))
    elif damage == "wrong_arch":
        card["architecture"]["channels"] = [8, 16, 32]
        sidecar.write_text(json.dumps(card))
    elif damage == "unknown_method":
        card["method"] = "magic"
        sidecar.write_text(json.dumps(card))
    elif damage == "label_beyond":
        card["labels"]["structure"] = 70000
        sidecar.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=message):
        load_checkpoint(sidecar)


def test_a_pickle_in_disguise_is_never_unpickled(tmp_path):
    _, sidecar = _saved(tmp_path)
    weights = tmp_path / "tiny.safetensors"
    torch.save({"x": torch.zeros(1)}, weights)  # a pickle-based file under the expected name
    card = json.loads(sidecar.read_text())
    import hashlib

    card["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()  # even with a matching hash
    sidecar.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_checkpoint(sidecar)


def test_registry_keeps_the_previous_model_when_a_new_one_is_bad(tmp_path):
    _saved(tmp_path, "good", seed=1)
    _, bad = _saved(tmp_path, "bad", seed=2)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 100)
    (tmp_path / "broken.json").write_text("{")
    registry = ModelRegistry([tmp_path])
    assert {e.card.name for e in registry.entries()} == {"good", "bad"}
    assert "broken.json" in str(list(registry.problems))
    registry.activate("good")
    with pytest.raises(ModelError, match="do not match"):
        registry.activate("bad")
    assert registry.active("deepgrow3d")[1].name == "good"
    assert [e.card.name for e in registry.find("deepgrow3d", "MR")] == ["bad", "good"]
    assert registry.find("deepgrow3d", "CT") == []


def test_device_choice_follows_cuda_availability():
    device = choose_device()
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert choose_device("cpu").type == "cpu"
    assert use_half(torch.device("cuda")) and not use_half(torch.device("cpu"))


def test_the_cpu_runs_on_every_core_unless_omp_num_threads_says(monkeypatch):
    import os

    cores = len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        for asked, threads in (("3", 3), ("1", 1), ("", cores), ("0", cores), ("many", cores)):
            monkeypatch.setenv("OMP_NUM_THREADS", asked)
            assert cpu_threads() == threads
            choose_device("cpu")
            assert torch.get_num_threads() == threads
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert cpu_threads() == cores
    finally:
        torch.set_num_threads(before)


def test_cuda_is_chosen_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device().type == "cuda"
    assert choose_device("cpu").type == "cpu"  # asked for explicitly


def _mutated(sidecar, **changes):
    raw = json.loads(sidecar.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize("changes", [
    {"labels": ["background", "structure"]}, {"labels": {"a": "x"}}, {"labels": {"a": 70000}},
    {"architecture": {"channels": [100000, 200000, 300000]}}, {"architecture": {"channels": "many"}},
    {"architecture": {"in_channels": 4000}}, {"architecture": {"spatial_dims": 7}},
    {"architecture": {"strides": list(range(50))}}, {"architecture": ["UNet"]},
    {"name": "../escape"}, {"name": ["a"]}, {"target_spacing": "abc"}, {"target_spacing": [0, 1, 1]},
    {"roi_size": [-1, 96, 96]}, {"roi_size": 96}, {"format_version": "x"}, {"metrics": None, "labels": None},
    {"axes": "lps"}, {"orientation": "SAS"}, {"orientation": "SA"}, {"orientation": "sar"}, {"orientation": 3},
    {"orientation": "SAR", "axes": "ras"}, {"guidance_sigma": 0}, {"guidance_sigma": "wide"}, {"guidance_sigma": True},
    {"guidance_order": ["background", "nothing"]}, {"guidance_order": "background"},
    {"input_size": [128, 128]}, {"input_size": "128"}, {"input_size": [0, 128, 128]}, {"input_size": [1.5, 8, 8]},
    {"uncertainty": "calibrated"}, {"uncertainty": {"powers": {"tta": {"unsteadiness": 1, "contrast": -1}}}},
    {"uncertainty": {"powers": {"tta": {"unsteadiness": "strong", "contrast": 1}}}},
    {"uncertainty": {"powers": {"tta": {"contrast": 1}}}}, {"uncertainty": {"powers": [1.0]}},
    {"first_answer": "cut low"}, {"first_answer": {"threshold": "low"}}, {"first_answer": {"threshold": 9}},
    {"first_answer": {"threshold": True}},
], ids=lambda c: ",".join(f"{k}={str(v)[:20]}" for k, v in c.items()))
def test_malformed_sidecars_are_model_errors_naming_the_file(tmp_path, changes):
    _, sidecar = _saved(tmp_path)
    sidecar.write_text(json.dumps(_mutated(sidecar, **changes)))
    with pytest.raises(ModelError) as err:
        load_checkpoint(sidecar)
    assert str(sidecar) in str(err.value)


def test_deeply_nested_sidecar_is_a_model_error(tmp_path):
    _, sidecar = _saved(tmp_path)
    sidecar.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ModelError, match=str(sidecar)):
        load_checkpoint(sidecar)


def test_a_malformed_sidecar_is_skipped_with_a_warning_and_the_rest_still_found(tmp_path):
    _saved(tmp_path, "good")
    (tmp_path / "broken.json").write_text(json.dumps({"name": "broken", "method": "deepedit", "labels": [1],
                                                      "architecture": {"name": "UNet"}, "weights_sha256": "x"}))
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.warns(UserWarning, match="broken.json"):
        entries = ModelRegistry([tmp_path]).entries()
    assert [e.card.name for e in entries] == ["good"]
    registry = ModelRegistry([tmp_path])
    assert registry.entry("good").card.name == "good"
    assert set(registry.problems) == {tmp_path / "broken.json", tmp_path / "garbage.json"}


def test_weights_holding_nan_are_refused(tmp_path):
    torch.manual_seed(0)
    model = build_network(SMALL)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    sidecar = save_checkpoint(model, _card("nan"), tmp_path / "nan.json")
    with pytest.raises(ModelError, match="NaN or infinity"):
        load_checkpoint(sidecar)


def test_a_user_model_named_like_a_bundled_one_is_never_chosen(tmp_path):
    bundled, user = tmp_path / "bundled", tmp_path / "user"
    bundled.mkdir()
    user.mkdir()
    _saved(bundled, "starter", seed=0)
    _saved(user, "starter", seed=1)
    registry = ModelRegistry([bundled, user])
    with pytest.warns(UserWarning, match="another model is already called 'starter'"):
        entries = registry.entries()
    assert [e.sidecar.parent for e in entries] == [bundled]
    assert registry.entry("starter").sidecar.parent == bundled
    assert registry.preferred("deepgrow3d").sidecar.parent == bundled


def test_a_modality_typed_in_any_case_is_dicoms(tmp_path):
    """A model trained with `--modality mr`, or a sidecar written so by hand, is a model for
    MR images: it was one for "mr", which no image's modality ever is."""
    from annotator.training.config import TrainConfig

    assert _card().modality == "MR"
    card = ModelCard(name="typed", method="deepgrow3d", architecture=SMALL, labels={"background": 0, "structure": 1},
                     modality=" mr ")
    assert card.modality == "MR"
    assert ModelCard(name="any", method="deepgrow3d", architecture=SMALL, labels={}, modality="").modality == "unknown"
    assert TrainConfig(method="deepedit", data=[str(tmp_path)], modality="ct").modality == "CT"
    assert TrainConfig(method="deepedit", data=[str(tmp_path)], modality="Unknown").modality == "unknown"
    _, sidecar = _saved(tmp_path, "lower")
    raw = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**raw, "modality": "mr"}))
    assert ModelRegistry([tmp_path]).preferred("deepgrow3d", "MR").card.name == "lower"
