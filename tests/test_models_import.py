"""Models trained elsewhere: a MONAI Label sample-app checkpoint (state dict) or a MONAI
bundle becomes a model of this app that answers clicks; a full pickle is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from annotator.errors import ModelError
from annotator.models import build_network, load_checkpoint
from annotator.models.importer import import_model
from annotator.models.networks import VARIANTS
from paths import HIPPO

pytestmark = pytest.mark.usefixtures("private_user_dirs")


def _sample_app(method: str, out_channels: int, in_channels: int):
    torch.manual_seed(0)
    spec = {**VARIANTS["sample-app"][method], "in_channels": in_channels, "out_channels": out_channels}
    return build_network(spec)


def _click(sidecar, value=1):
    from annotator.engine.deep import new_session
    from annotator.io import read_label, read_volume

    volume = read_volume(HIPPO / "images" / "hippocampus_001.nii.gz")
    truth = read_label(HIPPO / "labels" / "hippocampus_001.nii.gz", volume)
    model, card = load_checkpoint(sidecar)
    session = new_session(volume, model, card)
    point = tuple(int(v) for v in np.argwhere(truth == value).mean(axis=0).round())
    result = session.click([point], [], previous=np.zeros(volume.shape, np.uint8), value=value)
    assert result.patch[tuple(p - b.start for p, b in zip(point, result.box))] == value  # the click is honoured
    return model, card


def test_a_deepedit_state_dict_is_imported_with_its_labels_and_spacing(tmp_path):
    network = _sample_app("deepedit", 3, 4)  # background + 2 labels; image + 3 guidance channels
    torch.save({"model": network.state_dict()}, tmp_path / "pretrained.pt")  # as MONAI Label trainers wrap it
    sidecar = import_model(tmp_path / "pretrained.pt", "deepedit", {"background": 0, "anterior": 1, "posterior": 2},
                           [1.0, 1.0, 1.0], name="imported-edit", modality="MR", roi_size=[32, 48, 32])
    card = json.loads(sidecar.read_text())
    assert card["labels"] == {"anterior": 1, "posterior": 2} and card["target_spacing"] == [1.0, 1.0, 1.0]
    assert card["architecture"]["name"] == "DynUNet" and card["modality"] == "MR"
    model, _ = _click(sidecar, value=2)
    for ours, theirs in zip(model.state_dict().values(), network.state_dict().values()):
        torch.testing.assert_close(ours, theirs)  # the same weights, nothing retrained


def test_a_one_channel_deepgrow_answers_with_the_same_probabilities(tmp_path):
    network = _sample_app("deepgrow3d", 1, 3).eval()  # MONAI Label's DeepGrow: one sigmoid output
    torch.save(network.state_dict(), tmp_path / "deepgrow.pt")
    sidecar = import_model(tmp_path / "deepgrow.pt", "deepgrow3d", None, [1.0, 1.0, 1.0], name="imported-grow",
                           roi_size=[32, 48, 32])
    model, card = load_checkpoint(sidecar)
    x = torch.randn(1, 3, 32, 32, 32)
    with torch.no_grad():
        theirs = torch.sigmoid(network(x))[:, 0]
        ours = torch.softmax(model(x), dim=1)[:, 1]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    _click(sidecar)


def test_a_full_pickle_and_a_wrong_network_are_refused(tmp_path):
    torch.save({"model": _sample_app("deepedit", 3, 4).state_dict(), "trainer": np.dtype("float32").type},
               tmp_path / "pickled.pt")
    with pytest.raises(ModelError, match="full unpickling"):
        import_model(tmp_path / "pickled.pt", "deepedit", {"a": 1, "b": 2}, [1.0, 1.0, 1.0])
    torch.save(_sample_app("deepedit", 3, 4).state_dict(), tmp_path / "two-labels.pt")
    with pytest.raises(ModelError, match="do not fit"):
        import_model(tmp_path / "two-labels.pt", "deepedit", {"a": 1, "b": 2, "c": 3}, [1.0, 1.0, 1.0])
    with pytest.raises(ModelError, match="spacing"):
        import_model(tmp_path / "two-labels.pt", "deepedit", {"a": 1, "b": 2}, None)


def test_a_monai_bundle_and_the_command(tmp_path):
    bundle = tmp_path / "hippo_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    spec = {k: v for k, v in VARIANTS["sample-app"]["deepedit"].items() if k != "name"}
    (bundle / "configs" / "inference.json").write_text(json.dumps({
        "network_def": {"_target_": "monai.networks.nets.DynUNet", **spec, "in_channels": 4, "out_channels": 3},
        "preprocessing": {"transforms": [{"_target_": "Spacingd", "keys": "image", "pixdim": [1.0, 1.0, 1.5]}]}}))
    (bundle / "configs" / "metadata.json").write_text(json.dumps({"network_data_format": {"outputs": {"pred": {
        "channel_def": {"0": "background", "1": "anterior", "2": "posterior"}}}}}))
    torch.save(_sample_app("deepedit", 3, 4).state_dict(), bundle / "models" / "model.pt")
    proc = subprocess.run([sys.executable, "-m", "annotator", "models", "import", str(bundle), "--method", "deepedit",
                           "--name", "bundle-edit", "--roi", "32,48,32"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    listing = subprocess.run([sys.executable, "-m", "annotator", "models", "list"], capture_output=True, text=True,
                             timeout=120)
    assert "bundle-edit" in listing.stdout and "anterior,posterior" in listing.stdout
    from annotator.models.registry import ModelRegistry

    card = ModelRegistry().entry("bundle-edit").card
    assert card.target_spacing == [1.5, 1.0, 1.0] and card.labels == {"anterior": 1, "posterior": 2}
