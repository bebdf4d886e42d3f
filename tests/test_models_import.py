"""Models trained elsewhere: a MONAI Label sample-app checkpoint (state dict) or a MONAI
bundle becomes a model of this app that answers clicks; a full pickle is refused."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from annotator.errors import ModelError
from annotator.models import build_network, load_checkpoint
from annotator.models.importer import import_model
from annotator.models.networks import VARIANTS
from paths import HIPPO


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
    card = load_checkpoint(import_model(tmp_path / "deepgrow.pt", "deepgrow3d", name="as-monai-label"))[1]
    assert card.target_spacing == [1.0, 1.0, 1.0] and card.roi_size == [128, 192, 192]  # MONAI Label's app's
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
    with pytest.raises(ModelError, match="full unpickling.*Unsupported global"):
        import_model(tmp_path / "pickled.pt", "deepedit", {"a": 1, "b": 2}, [1.0, 1.0, 1.0])
    (tmp_path / "notes.pt").write_text("weights to follow")
    with pytest.raises(ModelError, match="notes.pt: not a PyTorch checkpoint"):
        import_model(tmp_path / "notes.pt", "deepedit", {"a": 1, "b": 2}, [1.0, 1.0, 1.0])
    (tmp_path / "image.pt").write_bytes(gzip.compress(b"hello"))  # an image chosen by mistake: the unpickler's KeyError
    with pytest.raises(ModelError, match="image.pt: not a PyTorch checkpoint"):
        import_model(tmp_path / "image.pt", "deepedit", {"a": 1, "b": 2}, [1.0, 1.0, 1.0])
    with zipfile.ZipFile(tmp_path / "archive.pt", "w") as archive:  # a zip, not torch's
        archive.writestr("weights/data.pkl", b"xx")
    with pytest.raises(ModelError, match=r"archive.pt: not a readable PyTorch checkpoint \(damaged, or another format: ") as refused:
        import_model(tmp_path / "archive.pt", "deepedit", {"a": 1, "b": 2}, [1.0, 1.0, 1.0])
    assert "report" not in str(refused.value)  # torch's plea for an enhancement request is not the person's business
    torch.save(_sample_app("deepedit", 3, 4).state_dict(), tmp_path / "two-labels.pt")
    with pytest.raises(ModelError, match="do not fit"):
        import_model(tmp_path / "two-labels.pt", "deepedit", {"a": 1, "b": 2, "c": 3}, [1.0, 1.0, 1.0])


def _hippo_bundle(bundle, dump=json.dumps, suffix=".json"):
    """A MONAI bundle of the sample-app DeepEdit for the two hippocampus labels, its configs
    written by ``dump`` (JSON or YAML) with ``suffix``."""
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    spec = {k: v for k, v in VARIANTS["sample-app"]["deepedit"].items() if k != "name"}
    (bundle / "configs" / f"inference{suffix}").write_text(dump({
        "network_def": {"_target_": "monai.networks.nets.DynUNet", **spec, "in_channels": 4, "out_channels": 3},
        "preprocessing": {"transforms": [{"_target_": "Spacingd", "keys": "image", "pixdim": [1.0, 1.0, 1.5]}]}}))
    (bundle / "configs" / f"metadata{suffix}").write_text(dump({"network_data_format": {"outputs": {"pred": {
        "channel_def": {"0": "background", "1": "anterior", "2": "posterior"}}}}}))
    torch.save(_sample_app("deepedit", 3, 4).state_dict(), bundle / "models" / "model.pt")
    return bundle


def test_a_monai_bundle_and_the_command(tmp_path):
    bundle = _hippo_bundle(tmp_path / "hippo_bundle")
    proc = subprocess.run([sys.executable, "-m", "annotator", "models", "import", str(bundle), "--method", "deepedit",
                           "--name", "bundle-edit", "--roi", "32,48,32"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    listing = subprocess.run([sys.executable, "-m", "annotator", "models", "list"], capture_output=True, text=True,
                             timeout=120)
    assert "bundle-edit" in listing.stdout and "anterior,posterior" in listing.stdout
    assert "any size" in next(r for r in listing.stdout.splitlines() if "bundle-edit" in r)
    assert "40 x 32 x 26 mm to 58 x 47 x 41 mm" in next(r for r in listing.stdout.splitlines()
                                                       if "deepedit-hippocampus-mr" in r)
    from annotator.models.registry import ModelRegistry

    card = ModelRegistry().entry("bundle-edit").card
    assert card.target_spacing == [1.5, 1.0, 1.0] and card.labels == {"anterior": 1, "posterior": 2}


def test_a_bundle_configured_in_yaml_and_broken_configs(tmp_path):
    """MONAI bundles write their configs in JSON or YAML: the same bundle in YAML gives the
    same card; a config that cannot be read is refused with the parser's reason."""
    import yaml

    bundle = _hippo_bundle(tmp_path / "yaml_bundle", yaml.safe_dump, ".yaml")
    card = load_checkpoint(import_model(bundle, "deepedit", name="yaml-edit", roi_size=[32, 48, 32]))[1]
    assert card.target_spacing == [1.5, 1.0, 1.0] and card.labels == {"anterior": 1, "posterior": 2}
    for text, reason in [("network_def: {_target_: DynUNet, kernel_size: [3, 3", "not a readable bundle config"),
                         ("- a list\n- of steps\n", r"not a bundle config \(it holds no mapping"),
                         ("!!python/object/apply:os.system [echo unsafe]", "not a readable bundle config")]:
        (bundle / "configs" / "inference.yaml").write_text(text)
        with pytest.raises(ModelError, match=f"inference.yaml: {reason}"):
            import_model(bundle, "deepedit")
    (bundle / "configs" / "inference.yaml").unlink()
    (bundle / "configs" / "inference.json").write_text('{"network_def": {"_target_": "DynUNet",')
    with pytest.raises(ModelError, match="inference.json: not a readable bundle config"):
        import_model(bundle, "deepedit")


def _coordinate_volume(axis: int):
    """A volume whose voxels hold their RAS coordinate ``axis`` (mm), stored with axes that
    are permuted and reversed against RAS."""
    from annotator.io.volume import Volume

    direction = np.array([[0, 1, 0], [0, 0, -1], [1, 0, 0]], float)  # columns: LPS of index x, y, z
    shape_zyx, origin = (20, 24, 28), np.array([5.0, -7.0, 11.0])
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape_zyx), indexing="ij")
    lps = origin[:, None] + direction @ np.stack([x.ravel(), y.ravel(), z.ravel()]).astype(float)
    ras = lps * np.array([[-1.0], [-1.0], [1.0]])
    return Volume(ras[axis].reshape(shape_zyx).astype(np.float32), (1.0, 1.0, 1.0), tuple(origin),
                  tuple(direction.ravel()), modality="CT")


def test_an_imported_deepedit_is_fed_as_monai_feeds_it(tmp_path):
    """MONAI's layout: the image as (x, y, z) turned to right, anterior, superior; the click
    channels in the label list's order (MONAI Label's: background last), 3-voxel Gaussians;
    the window it was trained with."""
    from annotator.engine.deep import new_session

    network = _sample_app("deepedit", 3, 4)
    torch.save(network.state_dict(), tmp_path / "edit.pt")
    sidecar = import_model(tmp_path / "edit.pt", "deepedit", {"liver": 1, "spleen": 2}, [1.0, 1.0, 1.0],
                           name="monai-edit", modality="CT", roi_size=[32, 32, 32], window=(-1000.0, 1000.0))
    card = json.loads(sidecar.read_text())
    assert card["guidance_order"] == ["liver", "spleen", "background"] and card["axes"] == "ras"
    assert card["guidance_sigma"] == 3.0 and card["intensity"] == {"kind": "window", "low": -1000.0, "high": 1000.0}
    model, card = load_checkpoint(sidecar)
    seen = []
    model.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    for axis in range(3):
        volume = _coordinate_volume(axis)
        session = new_session(volume, model, card)
        before = len(seen)
        session.click([(10, 12, 14)], [(10, 12, 4)], previous=np.zeros(volume.shape, np.uint8), value=2)
        x = seen[before][0]  # a first answer's first pass: the input as it is (then shifted twice)
        inside = torch.nonzero(x[0])  # the crop within the network's zero padding
        image = x[0][tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(inside.min(0).values, inside.max(0).values))]
        assert image.numel() == 20 * 24 * 28
        # the image channel grows along the network's axis of that coordinate, and only there
        for j in range(3):
            step = image.diff(dim=j)
            assert bool((step > 0).all()) if j == axis else float(step.abs().max()) < 1e-4, (axis, j)
        # a click on spleen (value 2) is in spleen's channel, the background click in the last
        peaks = [float(x[c].max()) for c in (1, 2, 3)]
        assert peaks[0] == 0 and peaks[1] > 0.99 and peaks[2] > 0.99
        assert float(x[2].sum()) > 250  # sigma 3: about (3 * sqrt(2 pi)) ** 3 = 424 voxels (sigma 2: 126)


def test_a_deepedit_bundle_as_the_model_zoo_writes_it(tmp_path):
    """Channels as expressions of the label list, the labels in inference.json (background
    last), the window in a ScaleIntensityRanged of another list, whole images resized to the
    config's spatial_size (no spacing): the network sees the whole image at that size, in
    its own axes, and its answer comes back onto the image."""
    from annotator.engine.deep import new_session

    bundle = tmp_path / "spleen_deepedit"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    spec = {k: v for k, v in VARIANTS["sample-app"]["deepedit"].items() if k != "name"}
    (bundle / "configs" / "inference.json").write_text(json.dumps({
        "label_names": {"spleen": 1, "background": 0}, "number_intensity_ch": 1, "spatial_size": [32, 64, 48],
        "network_def": {"_target_": "DynUNet", **spec, "in_channels": "$len(@label_names) + @number_intensity_ch",
                        "out_channels": "$len(@label_names)"},
        "preprocessing_transforms": [{"_target_": "LoadImaged", "keys": "image"},
                                     {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -175,
                                      "a_max": 250, "b_min": 0.0, "b_max": 1.0, "clip": True}],
        "deepedit_transforms": [{"_target_": "Resized", "keys": "image", "spatial_size": "@spatial_size",
                                 "mode": "area"}],
        "preprocessing": {"_target_": "Compose", "transforms": "$@preprocessing_transforms + @deepedit_transforms"}}))
    torch.save(_sample_app("deepedit", 2, 3).state_dict(), bundle / "models" / "model.pt")
    config = json.loads((bundle / "configs" / "inference.json").read_text())
    (bundle / "configs" / "inference.json").write_text(json.dumps({**config, "deepedit_transforms": []}))
    with pytest.raises(ModelError, match="spacing"):  # neither a Resized nor a Spacingd: it must be given
        import_model(bundle, "deepedit")
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    model, card = load_checkpoint(import_model(bundle, "deepedit", name="zoo-spleen"))
    assert card.labels == {"spleen": 1} and card.guidance == ["spleen", "background"]
    assert card.intensity == {"kind": "window", "low": -175.0, "high": 250.0} and card.axes == "ras"
    assert card.input_size == [32, 64, 48]
    assert card.class_of(1) == 1  # the output stays background first, as MONAI's argmax gives values
    seen = []
    model.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    volume = _coordinate_volume(1)  # anterior grows along the network's second axis
    session = new_session(volume, model, card)
    result = session.click([(10, 12, 14)], [], previous=np.zeros(volume.shape, np.uint8), value=1)
    assert result.box == tuple(slice(0, n) for n in volume.shape)  # an answer for the whole image
    x = seen[0][0]  # a first answer's first pass: the input as it is (then shifted twice)
    assert tuple(x.shape[1:]) == (32, 64, 48)  # the whole image at the bundle's size, in RAS order
    assert bool((x[0].diff(dim=1) > 0).all()) and float(x[0].diff(dim=0).abs().max()) < 1e-4
    session.automatic()
    assert tuple(seen[-1].shape[2:]) == (32, 64, 48)  # no click: one pass over the same grid
    # MONAI Label's DeepEdit checkpoint, given no spacing: its app's 128³ and window
    torch.save(_sample_app("deepedit", 2, 3).state_dict(), tmp_path / "deepedit_dynunet.pt")
    card = load_checkpoint(import_model(tmp_path / "deepedit_dynunet.pt", "deepedit", {"spleen": 1}))[1]
    assert card.input_size == [128, 128, 128] and card.intensity == {"kind": "window", "low": -175.0, "high": 250.0}
    with pytest.raises(ModelError, match="not both"):
        import_model(tmp_path / "deepedit_dynunet.pt", "deepedit", {"spleen": 1}, [1.0, 1.0, 1.0],
                     input_size=[96, 96, 96])


def test_resizing_a_whole_image_averages_what_it_shrinks():
    """MONAI's Resized(mode="area") averages the voxels a model voxel stands for; sampling
    every fourth voxel instead would keep the noise at full strength."""
    from annotator.engine.prepare import prepare_image
    from annotator.models import ModelCard
    from annotator.models.networks import architecture

    card = ModelCard(name="resized", method="deepedit", architecture=architecture("deepedit", 1, "sample-app"),
                     labels={"spleen": 1}, intensity={"kind": "scale", "subtract": 0.0, "divide": 1.0},
                     input_size=[32, 32, 32])
    noise = np.random.default_rng(0).standard_normal((128, 128, 128)).astype(np.float32)
    resized = prepare_image(noise, (1.0, 1.0, 1.0), card)
    assert tuple(resized.shape) == (32, 32, 32)
    assert float(resized.std()) < 0.25  # an average of about 4³ voxels: 1/8 of the noise, not all of it
    ramp = np.broadcast_to(np.arange(128, dtype=np.float32), (128, 128, 128))
    assert float(prepare_image(ramp, (1.0, 1.0, 1.0), card)[5, 5, 10]) == pytest.approx(10 * 127 / 31, abs=0.05)


def test_label_lists_and_a_window_on_the_command_line():
    from annotator.cli import _labels, build_parser

    assert list(_labels("spleen,liver,background").items()) == [("spleen", 1), ("liver", 2), ("background", 0)]
    assert _labels("background,spleen") == {"background": 0, "spleen": 1}
    args = build_parser().parse_args(["models", "import", "m.pt", "--method", "deepedit", "--window", "-175,250"])
    assert args.window == (-175.0, 250.0)  # a negative first value is a value, not an option


def test_fine_tuning_does_not_start_from_a_model_in_monais_layout(tmp_path):
    """Training feeds this app's layout: an imported network would learn from input turned
    otherwise than it was trained on, so the run starts from scratch and says why."""
    from annotator.models import ModelCard
    from annotator.models.networks import architecture
    from annotator.training.config import TrainConfig
    from annotator.training.job import _initial_weights

    network = _sample_app("deepedit", 3, 4)
    torch.save(network.state_dict(), tmp_path / "edit.pt")
    import_model(tmp_path / "edit.pt", "deepedit", {"background": 0, "anterior": 1, "posterior": 2},
                 [1.0, 1.0, 1.0], name="monai-edit")
    config = TrainConfig(method="deepedit", data=[str(tmp_path)], init="monai-edit", variant="sample-app")
    card = ModelCard(name="new", method="deepedit", architecture=architecture("deepedit", 2, "sample-app"),
                     labels={"anterior": 1, "posterior": 2})
    model, said = build_network(card.architecture), []
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _initial_weights(model, config, card, lambda event, **fields: said.append(fields.get("text", "")))
    assert any("imported from MONAI" in text and "from scratch" in text for text in said), said
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_imported_deepgrow_is_fed_as_monai_label_feeds_it(tmp_path):
    """MONAI Label's DeepGrow: the image's (x, y, z) transposed to (z, x, y) as stored, no
    turning, intensities (image - 208) / 388; its 2-D model the (x, y) slices."""
    from annotator.engine.deep import new_session
    from annotator.io.volume import Volume

    z, y, x = np.meshgrid(np.arange(20), np.arange(24), np.arange(28), indexing="ij")
    for dims, method, channels in ((3, "deepgrow3d", 3), (2, "deepgrow2d", 3)):
        torch.save(_sample_app(method, 1, channels).state_dict(), tmp_path / f"{method}.pt")
        sidecar = import_model(tmp_path / f"{method}.pt", method, None, [1.0, 1.0, 1.0], name=f"monai-{method}",
                               roi_size=[32, 32, 32] if dims == 3 else [1, 32, 32])
        model, card = load_checkpoint(sidecar)
        assert card.axes == "zxy" and card.intensity == {"kind": "scale", "subtract": 208.0, "divide": 388.0}
        seen = []
        model.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
        for values, along in ((x, dims - 2), (y, dims - 1)):  # x on the network's second axis, y on its third
            volume = Volume((1000 + 10 * values).astype(np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
                            tuple(np.eye(3).ravel()), modality="CT")
            before = len(seen)
            new_session(volume, model, card).click([(10, 12, 14)], [], previous=np.zeros(volume.shape, np.uint8))
            image = seen[before][0, 0]  # a first answer's first pass: the input as it is
            assert abs(float(image.max()) - (1000 + 10 * values.max() - 208) / 388) < 1e-4
            kept = torch.nonzero(image)  # the crop within the network's zero padding
            box = image[tuple(slice(int(a), int(b) + 1) for a, b in zip(kept.min(0).values, kept.max(0).values))]
            assert box.numel() == (20 * 24 * 28 if dims == 3 else 24 * 28)
            for j in range(dims):
                step = box.diff(dim=j)
                assert bool((step > 0).all()) if j == along else float(step.abs().max()) < 1e-4, (method, j)


def test_a_unetr_deepedit_sees_whole_images_at_its_size(tmp_path):
    """MONAI Label's DeepEdit can run a UNETR (a vision transformer with a fixed input
    size): from a bundle (its older argument name pos_embed too) it is built as declared and
    fed the whole image at exactly its img_size; a checkpoint's UNETR (weights under vit.)
    must be MONAI Label's; a sidecar that would feed it another size is refused."""
    from annotator.engine.deep import new_session
    from annotator.models.networks import build_network

    tiny = {"spatial_dims": 3, "img_size": [32, 32, 32], "feature_size": 8, "hidden_size": 96, "mlp_dim": 192,
            "num_heads": 4, "norm_name": "instance", "res_block": True}
    torch.manual_seed(0)
    network = build_network({"name": "UNETR", **tiny, "proj_type": "conv", "in_channels": 3, "out_channels": 2})
    bundle = tmp_path / "unetr_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "configs" / "inference.json").write_text(json.dumps({
        "label_names": {"spleen": 1, "background": 0},
        "network_def": {"_target_": "UNETR", **tiny, "pos_embed": "conv", "in_channels": "$len(@label_names) + 1",
                        "out_channels": "$len(@label_names)"},
        "preprocessing": [{"_target_": "ScaleIntensityRanged", "a_min": -175, "a_max": 250, "b_min": 0.0,
                           "b_max": 1.0}]}))
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    sidecar = import_model(bundle, "deepedit", name="unetr-spleen")
    model, card = load_checkpoint(sidecar)
    assert card.architecture["name"] == "UNETR" and card.architecture["proj_type"] == "conv"
    assert card.input_size == [32, 32, 32]
    seen = []
    model.register_forward_pre_hook(lambda _module, args: seen.append(tuple(args[0].shape)))
    volume = _coordinate_volume(2)
    result = new_session(volume, model, card).click([(10, 12, 14)], [], previous=np.zeros(volume.shape, np.uint8))
    assert seen[-1] == (1, 3, 32, 32, 32) and result.patch[tuple(p - b.start for p, b in zip((10, 12, 14),
                                                                                               result.box))] == 1
    with pytest.raises(ModelError, match="img_size"):
        import_model(bundle, "deepedit", spacing_zyx=[1.0, 1.0, 1.0], name="unetr-at-a-spacing")
    raw = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**raw, "input_size": [64, 64, 64]}))
    with pytest.raises(ModelError, match="img_size"):
        load_checkpoint(sidecar)
    # a checkpoint with a transformer inside is taken for MONAI Label's UNETR, and must fit it
    torch.save(network.state_dict(), tmp_path / "pretrained_deepedit_unetr.pt")
    with pytest.raises(ModelError, match="do not fit the UNETR network"):
        import_model(tmp_path / "pretrained_deepedit_unetr.pt", "deepedit", {"spleen": 1})
    with pytest.raises(ModelError, match="DeepEdit networks"):
        import_model(tmp_path / "pretrained_deepedit_unetr.pt", "deepgrow3d")
