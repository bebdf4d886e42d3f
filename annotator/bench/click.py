"""`annotator bench click`: per-click latency of the network click methods on a CT volume.

For DeepGrow 3D and DeepEdit, on a seeded CT phantom (default 512×512×120 voxels, or
``--image``): the first click on a newly opened volume (the session is built then),
then repeated clicks (click in -> label in image geometry), each next to (a) the bare
forward of the same network on the same input tensor, and (b) the reference pipeline
of :mod:`annotator.bench.reference`, which redoes everything per click. Also: peak
memory of a session on a 512×512×300 CT (measured in a fresh child process) and the
parameter count and forward time of each network variant.

The networks are seeded and then fitted to the phantom for a few dozen steps: the
forward does not depend on the weights, but pasting the answer back does, and a
freshly initialised network answers with speckle (thousands of one-voxel islands) that
no trained network gives. The untrained networks' ratio is reported beside, as a worst case.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from annotator.bench import reference
from annotator.bench import report as rep
from annotator.engine.device import choose_device
from annotator.engine.session import ClickSession, forward
from annotator.io.phantom import ct_phantom
from annotator.io.read import read_volume
from annotator.io.volume import Volume
from annotator.models import ModelCard, architecture, build_network
from annotator.models.networks import parameter_count

METHODS = ("deepgrow3d", "deepedit")
CT_WINDOW = {"kind": "window", "low": -175.0, "high": 250.0}



def model_for(method: str, spacing: float, roi: int, variant: str = "small") -> tuple[torch.nn.Module, ModelCard]:
    torch.manual_seed(0)
    previous = variant == "small"  # as the starter models: the network also sees the label it corrects
    spec = architecture(method, 2, variant, previous_label=previous)
    card = ModelCard(name=f"bench-{method}", method=method, architecture=spec,
                     labels={"liver": 1, "spleen": 2}, modality="CT", target_spacing=[spacing] * 3,
                     intensity=dict(CT_WINDOW), roi_size=[roi] * 3, previous_label=previous)
    return build_network(spec).eval(), card


def fit(model: torch.nn.Module, card: ModelCard, session: ClickSession, label: np.ndarray,
        steps: int, seed: int = 0) -> None:
    """``steps`` of Adam on crops of the session's image around organ 2, with a click at its
    centre: enough for the answer to become a region shaped like the organ."""
    from monai.losses import DiceCELoss

    from annotator.engine.guidance import centre_of, guidance
    from annotator.engine.prepare import prepare_label

    if steps <= 0:
        return
    rng = np.random.default_rng(seed)
    image = session.image()
    truth = prepare_label(label, session.volume.array_spacing, card)
    organ = truth == 2
    channel = card.guidance.index("spleen") if card.method == "deepedit" else 0
    centre = np.asarray(centre_of(organ))
    target = np.where(organ, 2 if card.method == "deepedit" else 1, 0)
    if card.method == "deepedit":
        target[truth == 1] = 1
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    model.train()
    grid = np.asarray(truth.shape)
    shape = np.minimum(64, grid)  # smaller than the click crop: the network is convolutional
    for _ in range(steps):
        offset = np.clip(centre + rng.integers(-12, 13, 3) - shape // 2, 0, grid - shape)
        crop = tuple(slice(int(a), int(a + n)) for a, n in zip(offset, shape))
        maps = guidance(tuple(shape), {channel: [centre - offset]}, len(card.guidance), image.device)
        earlier = torch.zeros((card.previous_channels, *shape), device=image.device)  # a first click
        x = torch.cat([image[crop][None], maps, earlier])[None]
        y = torch.as_tensor(target[crop][None, None], device=image.device)
        loss = loss_fn(forward(model, x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()


def _clicks(label: np.ndarray, n: int, seed: int = 0) -> list[tuple[list, list]]:
    """``n`` growing click sets on organ 2 of the phantom: foreground inside, background just outside."""
    rng = np.random.default_rng(seed)
    organ = np.argwhere(label == 2)
    hi = organ.max(axis=0)
    fg, bg, sets = [], [], []
    for i in range(n):
        if i % 3 == 2:
            p = np.clip(hi + rng.integers(2, 6, 3), 0, np.array(label.shape) - 1)
            bg.append(tuple(int(v) for v in p))
        else:
            fg.append(tuple(int(v) for v in organ[rng.integers(len(organ))]))
        sets.append((list(fg), list(bg)))
    return sets


def _volume(args, slices: int) -> tuple[Volume, np.ndarray]:
    if args.image:
        volume = read_volume(args.image)
        label = np.zeros(volume.shape, np.uint8)
        centre = tuple(n // 2 for n in volume.shape)
        label[tuple(slice(c - 5, c + 5) for c in centre)] = 2
        return volume, label
    return ct_phantom((slices, 512, 512), (2.0, 0.8, 0.8))


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _click_times(model, card: ModelCard, volume: Volume, sets: list, device) -> tuple[float, list[float], list[float], ClickSession]:
    """The first click on a new session (the image is prepared then), then the timed
    clicks, each followed by the bare forward of the network on that click's own input.

    A click is timed as the viewer takes it: click in, the structure replaced in the
    label (changed in place; the structure is known to lie in the last click's box).
    Timing each forward right after its click pairs them on this shared, noisy machine.
    """
    session = ClickSession(volume, model, card, device)
    label = np.zeros(volume.shape, np.uint8)
    value = 2 if card.method == "deepedit" else 1
    times, forwards, bound = [], [], None
    for fg, bg in sets:
        start = time.perf_counter()
        result = session.click(fg, bg, previous=label, value=value).replacing(label, value, within=bound)
        result.apply(label)
        times.append(time.perf_counter() - start)
        bound = result.box
        _, x = session.click_input(fg, bg, value, label)
        with torch.inference_mode():
            forwards += _time(lambda: forward(model, x), 1)
    return times[0], times[1:], forwards[1:], session


def _ours(method: str, volume: Volume, label: np.ndarray, clicks: int, args, device) -> dict:
    model, card = model_for(method, args.spacing, args.roi)
    model = model.to(device)
    sets = _clicks(label, clicks + 1)
    _, untrained, untrained_forwards, _ = _click_times(model, card, volume, sets, device)
    fit(model, card, ClickSession(volume, model, card, device), label, args.fit_steps)
    first, times, forwards, session = _click_times(model, card, volume, sets, device)
    _, x = session.click_input(*sets[-1], value=2 if method == "deepedit" else 1)
    return {"first": first, "clicks": times, "forward": forwards, "untrained_clicks": untrained,
            "untrained_forward": untrained_forwards, "input": list(x.shape),
            "parameters": parameter_count(model), "preprocess_count": session.preprocess_count}


def _reference(method: str, volume: Volume, label: np.ndarray, repeats: int, quick: bool) -> dict:
    net = reference.network(method)
    sets = _clicks(label, 2)
    fg, bg = sets[-1]
    xyz = lambda points: [list(reversed(p)) for p in points]  # noqa: E731 - (z, y, x) -> ITK (x, y, z)
    size = reference.DEEPGROW_SIZE if method == "deepgrow3d" else reference.DEEPEDIT_SIZE
    if quick:
        size = tuple(s // 2 for s in size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.nii.gz"
        import SimpleITK as sitk

        sitk.WriteImage(volume.to_sitk(), str(path))
        out = Path(tmp) / "label.nii.gz"
        if method == "deepgrow3d":
            run = lambda: reference.deepgrow3d_click(path, xyz(fg), xyz(bg), net, out, size)  # noqa: E731
        else:
            run = lambda: reference.deepedit_click(path, {"spleen": xyz(fg), "background": xyz(bg)}, net, out, size)  # noqa: E731
        times = _time(run, repeats)
    channels = 1 + (2 if method == "deepgrow3d" else len(reference.LABELS))
    x = torch.zeros((1, channels, *size))
    with torch.inference_mode():
        forwards = _time(lambda: net(x), max(1, min(repeats, 2)))
    return {"clicks": times, "forward": forwards, "input": list(x.shape), "parameters": parameter_count(net)}


def memory_probe(slices: int, spacing: float, roi: int) -> dict:
    """Peak RSS of this process while the CT (512×512×``slices``) is open and both methods
    answer clicks on it: the image and its label count, making the phantom does not
    (Linux lets a process reset its peak, ``/proc/self/clear_refs``)."""
    import gc

    volume, label = ct_phantom((slices, 512, 512), (2.0, 0.8, 0.8))
    gc.collect()
    reset = Path("/proc/self/clear_refs")
    if reset.exists():
        reset.write_text("5")
    device = choose_device()
    for method in METHODS:
        model, card = model_for(method, spacing, roi)
        session = ClickSession(volume, model.to(device), card, device)
        shown = np.zeros(volume.shape, np.uint8)
        for fg, bg in _clicks(label, 3):
            session.click(fg, bg, previous=shown).apply(shown)
        del session
    return {"peak_rss_gb": _peak_kb() / 1024**2, "shape": list(volume.shape)}


def _peak_kb() -> float:
    """Peak resident memory (VmHWM, which clear_refs resets), else the lifetime maximum."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _memory(slices: int, args) -> float:
    code = (f"import json; from annotator.bench.click import memory_probe; "
            f"print(json.dumps(memory_probe({slices}, {args.spacing}, {args.roi})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed: {proc.stderr[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_gb"]


def _paired_ratio(clicks: list[float], forwards: list[float]) -> float:
    """Median over clicks of click time ÷ the forward timed right after it."""
    return float(np.median(np.asarray(clicks) / np.asarray(forwards)))


def run(args: argparse.Namespace) -> dict:
    quick = bool(args.quick)
    clicks = args.clicks or (3 if quick else 10)
    ref_clicks = args.reference_clicks or (1 if quick else 3)
    slices = args.slices or (40 if quick else 120)
    if args.fit_steps is None:
        args.fit_steps = 4 if quick else 40
    memory_slices = args.memory_slices or (60 if quick else 300)
    device = choose_device()
    volume, label = _volume(args, slices)
    results, variants = [], []
    for method in METHODS:
        ours = _ours(method, volume, label, clicks, args, device)
        ref = _reference(method, volume, label, ref_clicks, quick)
        click_median, click_p95 = rep.summary(ours["clicks"])
        forward_median = float(np.median(ours["forward"]))
        ref_median = float(np.median(ref["clicks"]))
        results += [
            rep.result(f"{method}_click_median_s", click_median, "s", "lower", 1.0),
            rep.result(f"{method}_click_p95_s", click_p95, "s", "lower"),
            rep.result(f"{method}_forward_median_s", forward_median, "s", "lower"),
            rep.result(f"{method}_click_over_forward", _paired_ratio(ours["clicks"], ours["forward"]), "ratio", "lower", 1.3),
            rep.result(f"{method}_untrained_click_over_forward",
                       _paired_ratio(ours["untrained_clicks"], ours["untrained_forward"]), "ratio", "lower"),
            rep.result(f"{method}_reference_pipeline_median_s", ref_median, "s", "lower"),
            rep.result(f"{method}_reference_forward_s", float(np.median(ref["forward"])), "s", "lower"),
            rep.result(f"{method}_speedup_vs_reference", ref_median / click_median, "ratio", "higher", 20.0),
            rep.result(f"{method}_first_click_s", ours["first"], "s", "lower", 3.0),
        ]
        variants += [{"method": method, "variant": "small", "parameters": ours["parameters"],
                      "input": ours["input"], "forward_median_s": round(forward_median, 4)},
                     {"method": method, "variant": "sample-app", "parameters": ref["parameters"],
                      "input": ref["input"], "forward_median_s": round(float(np.median(ref["forward"])), 4)}]
    peak = _memory(memory_slices, args)
    results.append(rep.result("peak_rss_gb", peak, "GB", "lower", 3.0 if memory_slices >= 300 else None))
    params = {"image": args.image or f"ct_phantom({slices}x512x512, 2.0x0.8x0.8 mm, seed 0)",
              "volume_zyx": list(volume.shape), "clicks": clicks, "reference_clicks": ref_clicks,
              "model_spacing_mm": args.spacing, "click_roi": args.roi, "fit_steps": args.fit_steps, "memory_volume_zyx": [memory_slices, 512, 512],
              "threads": torch.get_num_threads(), "quick": quick}
    return rep.report("click", params, results, variants=variants)
