"""One training run, as the child process executes it.

Seeded split, cached data, Dice + cross-entropy (weighted up at the clicks), simulated clicks, validation every
``val_every`` epochs. The best checkpoint (by validation Dice) and the last one are
written atomically in the run folder; when the run finishes the best one is installed
in the user models folder and, with ``activate``, chosen for its method. Anything that
goes wrong before that leaves the previously chosen model untouched.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same job trains with DistributedDataParallel:
gloo on CPUs, NCCL on GPUs; rank 0 validates, writes checkpoints and reports.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from monai.data import DataLoader
from monai.inferers import sliding_window_inference
from monai.losses import DiceLoss

import annotator
from annotator.engine.axes import orientation_code
from annotator.engine.device import choose_device
from annotator.engine.guidance import centre_of, guidance
from annotator.engine.metrics import dice
from annotator.engine.session import argmax, click_crop, forward
from annotator.errors import AnnotatorError, ModelError
from annotator.io.volume import label_values
from annotator.models.card import ModelCard
from annotator.models.checkpoint import load_checkpoint, save_card, save_checkpoint
from annotator.models.networks import DEFAULT_VARIANT, VARIANTS, architecture, build_network
from annotator.models.registry import ModelRegistry, suits, user_dir
from annotator.training.config import TrainConfig
from annotator.training.data import dataset, extent_range, gather, label_map, read_case, split_cases
from annotator.training.events import EventWriter
from annotator.training.planner import resolve
from annotator.training.simulate import channel_of, next_click, previous_maps, simulate_guidance


class Stop:
    """Set by SIGTERM/SIGINT or a ``stop`` file in the run folder: finish the iteration, keep the checkpoint.

    A forward pass cannot be interrupted, and validating a large image takes a while; so
    while validation runs, a watcher thread that sees the stop file abandons it at once
    (``abandon``: keep the checkpoint, report, exit). Validation changes no weights, so
    the checkpoint it writes is consistent.
    """

    def __init__(self, run_dir: Path):
        self.file = run_dir / "stop"
        self.requested = False
        self.lock = threading.Lock()
        self.validating = False
        self.abandon = None  # called by the watcher, with the lock held, when stopped mid-validation
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)
        threading.Thread(target=self._watch, daemon=True, name="stop-watcher").start()

    def _handler(self, *_):
        self.requested = True

    def __bool__(self) -> bool:
        return self.requested or self.file.exists()

    def _watch(self) -> None:
        while not self:
            time.sleep(0.05)
        with self.lock:
            if self.validating and self.abandon is not None:
                self.abandon()

    @contextmanager
    def validation(self):
        with self.lock:
            self.validating = True
        try:
            yield
        finally:
            with self.lock:
                self.validating = False


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(rank: int) -> torch.device:
    device = choose_device()
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def build_card(config: TrainConfig, labels: dict[str, int], cases: list[str], orientation: str = "") -> ModelCard:
    """The card of a run's model; ``orientation``: which way its training images are turned
    (:func:`_orientation`; :class:`annotator.training.data.Prepare` turns them)."""
    if config.method == "deepedit":  # each class answers with its value in the training labels
        names = {name: labels[name] for name in sorted(labels, key=labels.get)}
    else:
        names = {"structure": 1}
    patch = list(config.patch)
    if config.method == "deepgrow2d":
        patch = [1, *patch[-2:]]
    return ModelCard(
        name=config.name, method=config.method,
        architecture=architecture(config.method, len(names), config.variant or DEFAULT_VARIANT, config.previous_label),
        labels=names,
        previous_label=config.previous_label,
        modality=config.modality, target_spacing=list(config.target_spacing), intensity=dict(config.intensity),
        roi_size=patch, version=annotator.__version__, orientation=orientation,
        training={"data": [Path(d).name for d in config.data], "split": config.split, "cases": cases,
                  "source": config.source, "licence": config.licence, "label_values": labels,
                  "method": "Dice + click-weighted CE, Adam, simulated clicks", "seed": config.seed})


def _base(config: TrainConfig):
    """The registry entry of the model a run fine-tunes (``init``: active or a name); None
    from scratch, or when there is none."""
    if config.init == "scratch":
        return None
    registry = ModelRegistry()
    return registry.preferred(config.method) if config.init == "active" else registry.entry(config.init)


def _body(spec: dict) -> dict:
    """A network spec apart from its input and output channels (labels, clicks)."""
    return {k: v for k, v in spec.items() if k not in ("in_channels", "out_channels")}


def resolve_variant(config: TrainConfig, emit=None) -> TrainConfig:
    """``config`` with its network size: the one given, else that of the model it
    fine-tunes (fine-tuning the medium DeepEdit starter as a small network would train
    from scratch), else small."""
    if config.variant:
        return config
    base = _base(config)
    found = next((name for name, specs in VARIANTS.items() if base is not None and base.card.axes == "array"
                  and config.method in specs and _body(specs[config.method]) == _body(base.card.architecture)),
                 None)
    config.variant = found or DEFAULT_VARIANT
    if found and emit is not None:
        emit("message", text=f"the {found} network of {base.card.name}")
    return config


def _orientation(config: TrainConfig, cases: list) -> str:
    """Which way the run's training images are turned (a card's ``orientation``): as the
    model it fine-tunes saw its own, else as the first of them runs."""
    base = _base(config)
    if base is not None and base.card.orientation:
        return base.card.orientation
    return orientation_code(read_case(cases[0])[0].direction)


def _initial_weights(model: torch.nn.Module, config: TrainConfig, card: ModelCard, emit) -> None:
    if config.init == "scratch":
        return
    entry = _base(config)
    if entry is None:
        emit("message", text=f"no {config.method} model to fine-tune: training from scratch")
        return
    if _body(entry.card.architecture) != _body(card.architecture):
        emit("message", text=f"{entry.card.name} has another network than the {config.variant} one asked for: "
                             "training from scratch")
        return
    if entry.card.axes != card.axes or entry.card.guidance_order:
        emit("message", text=f"{entry.card.name} was imported from MONAI and reads its input in MONAI's layout "
                             "(axes, click channels), which this training does not feed: training from scratch")
        return
    if entry.card.classes != card.classes:
        emit("message", text=f"{entry.card.name} answers for {entry.card.classes - 1} label(s), this run for "
                             f"{card.classes - 1}: training from scratch")
        return
    base, _ = load_checkpoint(entry.sidecar)
    model.load_state_dict(widen_inputs(base.state_dict(), model.state_dict()))
    card.training["fine_tuned_from"] = entry.card.name
    more = card.architecture["in_channels"] - entry.card.architecture["in_channels"]
    emit("message", text=f"fine-tuning {entry.card.name}"
         + (f" (its first layer widened by {more} input channel(s) for the earlier label, starting at zero)"
            if more else ""))


def widen_inputs(base: dict, target: dict) -> dict:
    """``base``'s weights for a network that takes more input channels (``target``'s
    shapes): the extra input channels of the first layer start at zero, so the widened
    network answers as ``base`` did until training teaches it to use them."""
    out = {}
    for key, value in base.items():
        want = target[key].shape
        if value.shape != want:
            if value.dim() < 2 or value.shape[0] != want[0] or value.shape[2:] != want[2:] or value.shape[1] > want[1]:
                raise ModelError(f"cannot widen layer {key} from {tuple(value.shape)} to {tuple(want)}")
            wide = torch.zeros(want, dtype=value.dtype)
            wide[:, :value.shape[1]] = value
            value = wide
        out[key] = value
    return out


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A MONAI MetaTensor as a plain tensor: every operation on a MetaTensor also goes
    through its metadata bookkeeping, which costs more than the small network's forward."""
    return t.as_tensor() if hasattr(t, "as_tensor") else t


def _targets(labels: torch.Tensor, method: str, rng: np.random.Generator) -> np.ndarray:
    """Classes per sample; DeepGrow learns one structure at a time (a random label present)."""
    truth = labels[:, 0].cpu().numpy().astype(np.int64)
    if method == "deepedit":
        return truth
    out = np.zeros_like(truth)
    for i, t in enumerate(truth):
        present = [c for c in np.unique(t) if c > 0]
        if present:
            out[i] = t == rng.choice(present)
    return out


def _predict(model: torch.nn.Module, x: torch.Tensor, patch) -> torch.Tensor:
    """Classes of ``x`` (N, C, *S): one forward when it fits the patch, else a sliding window."""
    if all(s <= p for s, p in zip(x.shape[2:], patch)):
        return argmax(forward(model, x), dim=1)
    roi = [int(math.ceil(p / 16) * 16) for p in patch]
    return argmax(sliding_window_inference(x, roi, 1, lambda t: forward(model, t), overlap=0.25), dim=1)


#: structures of one image that DeepGrow validation clicks at most (a whole-body CT labels over a hundred)
MAX_STRUCTURES = 8


def _validation_targets(truth: np.ndarray, method: str):
    """What validation asks for in one image: DeepEdit its labels at once; DeepGrow one
    structure at a time, at most :data:`MAX_STRUCTURES` of them (evenly through its label
    values, the same ones at every validation), each as it is asked for."""
    if method == "deepedit":
        yield truth
        return
    present = [int(c) for c in np.unique(truth) if c > 0]
    if len(present) > MAX_STRUCTURES:
        present = [present[i] for i in np.linspace(0, len(present) - 1, MAX_STRUCTURES).round().astype(int)]
    for cls in present:
        yield (truth == cls).astype(np.int64)


def validate(model: torch.nn.Module, data, card: ModelCard, device, clicks: int = 3,
             stop=lambda: False) -> float | None:
    """Mean validation Dice. DeepEdit: the mean of the automatic result's Dice and the Dice
    after ``clicks`` robot corrections from it (mean over labels), so that a network that
    ignores clicks does not win; DeepGrow: after a click at each structure's centre and
    ``clicks - 1`` robot corrections, on the crop the app answers that click on
    (:func:`click_crop`; DeepGrow 2D: on the slice where the structure is largest).
    None when ``stop()`` says so."""
    model.eval()
    scores = []
    channels = len(card.guidance)
    spatial = card.spatial_dims
    with torch.no_grad():
        for item in data:
            if stop():
                model.train()
                return None
            image = torch.as_tensor(item["image"], device=device)[None]  # (1, 1, z, y, x)
            truth = np.asarray(item["label"])[0].astype(np.int64)
            rounds = clicks + 1 if card.method == "deepedit" else clicks
            for target in _validation_targets(truth, card.method):
                img, points = image, {}
                if card.method != "deepedit":
                    if spatial == 3:
                        first = centre_of(target > 0)
                    else:
                        z = int(np.argmax((target > 0).sum(axis=(1, 2))))
                        first = (z, *centre_of(target[z] > 0))
                    crop = click_crop(target.shape, card, np.array([first]))
                    target, img = target[crop], image[(slice(None), slice(None), *crop)]
                    points = {0: [tuple(int(p - c.start) for p, c in zip(first, crop))[-spatial:]]}
                    if spatial == 2:
                        target, img = target[0], img[:, :, 0]
                curve = []
                previous = torch.zeros((1, card.previous_channels, *target.shape), device=device)
                for k in range(rounds):
                    x = torch.cat([img, guidance(target.shape, points, channels, device)[None], previous], dim=1)
                    pred = _predict(model, x, card.roi_size[-spatial:])[0].cpu().numpy()
                    if card.previous_label:
                        previous = previous_maps(pred[None], card.classes, device)
                    curve.append(np.mean([dice(pred == c, target == c) for c in range(1, card.classes)]))
                    found = next_click(pred, target) if k < rounds - 1 else None
                    if found is None:
                        break
                    points.setdefault(channel_of(found[0], card.method), []).append(found[1])
                scores.append((curve[0] + curve[-1]) / 2 if card.method == "deepedit" else curve[-1])
    model.train()
    return float(np.mean(scores)) if scores else 0.0


def _our_error(exc: BaseException | None) -> AnnotatorError | None:
    """The product's own error in ``exc`` or its causes, if any (its message is for people)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, AnnotatorError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def run(config: TrainConfig, emit: EventWriter) -> int:
    """Train; returns the process exit status (0 done or cancelled, 2 bad input, 1 failure)."""
    rank, world = _distributed()
    run_dir = config.run_dir
    stop = Stop(run_dir)
    if rank != 0:
        emit = lambda *a, **k: None  # noqa: E731 - only rank 0 reports
    try:
        return _train(config, emit, stop, rank, world)
    except (MemoryError, torch.OutOfMemoryError) as exc:
        emit("error", message=f"out of memory ({exc}); try a smaller batch or patch")
        return 1
    except Exception as exc:
        cause = _our_error(exc)  # MONAI wraps what a transform raised in "applying transform ..."
        if cause is None:
            raise
        emit("error", message=str(cause))
        return 2
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, emit, stop: Stop, rank: int, world: int) -> int:
    run_dir = config.run_dir
    device = _device(rank)
    torch.manual_seed(config.seed + rank)
    rng = np.random.default_rng(config.seed + 1000 * rank)
    labels = label_map(config)
    if world > 1 and rank > 0:
        dist.barrier()  # the first rank fetches what a server labelled elsewhere; the others then find it here
    cases = gather(config, emit if rank == 0 else None)
    if world > 1 and rank == 0:
        dist.barrier()
    resolve(config, emit if rank == 0 else None)
    resolve_variant(config, emit if rank == 0 else None)
    values = sorted(labels.values()) if labels else None
    if not labels:  # 1..N from the first label file, named as the app names them
        for v in label_values(read_case(cases[0])[1]):
            name = config.value_names.get(str(v), "").strip().lower() or f"label_{v}"
            labels[name if name not in labels else f"label_{v}"] = v
        values = sorted(labels.values())
    train_cases, val_cases = split_cases(cases, config.val_fraction, config.seed)
    card = build_card(config, labels, [c.id for c in train_cases], _orientation(config, train_cases))
    card.training["validation_cases"] = [c.id for c in val_cases]
    model = build_network(card.architecture).to(device)

    start_iteration, start_epoch, best = 0, 0, -1.0
    last = run_dir / "last.json"
    if config.resume:
        resumed = Path(config.resume) / "last.json"
        if not resumed.exists():
            raise ModelError(f"{config.resume}: no checkpoint to resume from (last.json)")
        base, base_card = load_checkpoint(resumed)
        if base_card.architecture != card.architecture:
            raise ModelError(f"{resumed}: another network than this config trains")
        model.load_state_dict(base.state_dict())
        start_iteration = int(base_card.training.get("iteration", 0))
        start_epoch = int(base_card.training.get("epoch", 0))
        best = float(base_card.training.get("best_dice", -1.0))
        card.training["baseline"] = base_card.training.get("baseline", {})
        emit("message", text=f"resuming at iteration {start_iteration}")
    else:
        _initial_weights(model, config, card, emit)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.json")

    patch = card.roi_size if config.method == "deepgrow2d" else list(config.patch)
    extents: dict = {}  # each training image's extent, for the sidecar: what sizes the model knows
    train_ds = dataset(train_cases, card, values, patch, config.cache_rate, extents)
    val_ds = dataset(val_cases, card, values, None, config.cache_rate) if rank == 0 else []
    sampler = None
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(train_ds, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=0, generator=generator, drop_last=len(train_ds) > config.batch_size)
    per_epoch = max(1, len(loader))
    total = config.max_iterations or config.epochs * per_epoch
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    emit("start", method=config.method, run=str(run_dir), train_cases=len(train_cases), val_cases=len(val_cases),
         iterations=total, max_minutes=config.max_minutes, start_iteration=start_iteration, per_epoch=per_epoch,
         device=str(device), world=world,
         parameters=sum(p.numel() for p in model.parameters()))

    def save(path: Path, **state) -> None:
        card.training.update(state, extent_mm=extent_range(extents.values()))
        save_checkpoint(model, replace(card, training=dict(card.training)), path)

    iteration, epoch = start_iteration, start_epoch

    def abandon() -> None:
        save(last, iteration=iteration, epoch=epoch, best_dice=best)
        emit("cancelled", iteration=iteration, checkpoint=str(last))
        sys.stdout.flush()
        os._exit(0)

    if world == 1:
        stop.abandon = abandon
    if rank == 0 and not config.resume:
        card.training["baseline"] = _baseline(model, val_ds, val_cases, values, card, config, device,
                                              lambda: world == 1 and bool(stop), stop, emit)
    started, deadline = time.monotonic(), (time.monotonic() + config.max_minutes * 60) if config.max_minutes else None
    rate, last_report, cancelled, spent = None, 0.0, False, 0.0
    model.train()
    predict = lambda x: argmax(forward(model, x), dim=1)  # noqa: E731
    while iteration < total and not cancelled:
        if sampler is not None:
            sampler.set_epoch(epoch)
        for batch in loader:
            if world == 1 and stop:  # asked while loading the batch: do not start the iteration
                cancelled = True
                break
            tick = time.monotonic()
            images = _plain(batch["image"]).to(device)
            truth = _targets(_plain(batch["label"]), config.method, rng)
            if config.method == "deepgrow2d":
                images, truth = images[:, :, 0], truth[:, 0]
            model.eval()
            maps, previous = simulate_guidance(predict, images, truth, config.method, len(card.guidance), rng,
                                               config.max_click_iterations, card.previous_channels)
            model.train()
            out = forward(net, torch.cat([images, maps, previous], dim=1))
            target = torch.as_tensor(truth, device=device)
            loss = click_weighted_loss(out, target, maps, config.click_weight)
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * (1 - min(max(iteration / total, spent), 1)) ** 0.9
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iteration += 1
            step = time.monotonic() - tick
            rate = 1 / step if rate is None else 0.9 * rate + 0.1 / step
            if time.monotonic() - last_report > 0.5 or iteration == total:
                last_report = time.monotonic()
                eta = (total - iteration) / rate
                if deadline:  # a time limit ends the run first when it comes sooner
                    eta = min(eta, max(deadline - last_report, 0.0))
                emit("progress", epoch=epoch + 1, epochs=math.ceil(total / per_epoch), iteration=iteration,
                     iterations=total, loss=round(loss.item(), 5), it_per_s=round(rate, 3),
                     eta_s=round(eta, 1), elapsed_s=round(last_report - started, 1))
            # every rank must leave at the same iteration: agree on stop and time limit
            flags = torch.tensor([float(bool(stop)), float(bool(deadline and time.monotonic() > deadline)),
                                  (time.monotonic() - started) / (config.max_minutes * 60) if deadline else 0.0],
                                 device=device)
            if world > 1:
                dist.all_reduce(flags)
            spent = flags[2].item() / world  # share of the time limit used: the learning rate decays with it too
            if flags[0].item() > 0:
                cancelled = True
                break
            if iteration >= total or flags[1].item() > 0:
                total = iteration
                break
        epoch += 1
        alone = world == 1  # with several ranks, only the agreed flags above may end the run
        cancelled = cancelled or (alone and bool(stop))
        if rank == 0 and not cancelled and (epoch % config.val_every == 0 or iteration >= total):
            with stop.validation():
                score = validate(model, val_ds, card, device, stop=lambda: alone and bool(stop))
            if score is None:
                cancelled = True
            elif score > best:
                best = score
                card.metrics = {"val_dice": round(score, 4), "val_dice_kind": _dice_kind(config.method)}
                save(run_dir / "best.json", iteration=iteration, epoch=epoch, best_dice=best)
            if score is not None:
                emit("validation", epoch=epoch, iteration=iteration, dice=round(score, 4), best_dice=round(best, 4),
                     elapsed_s=round(time.monotonic() - started, 1))
        if rank == 0:
            save(last, iteration=iteration, epoch=epoch, best_dice=best)
    if rank != 0:
        return 0
    if cancelled:
        emit("cancelled", iteration=iteration, checkpoint=str(last))
        return 0
    if (run_dir / "best.json").exists():
        _calibrate(run_dir / "best.json", val_cases, device, stop, emit)
    wanted = config.install and config.activate
    not_used = _why_not_used(round(best, 4), card) if wanted else None
    installed = _install(run_dir / "best.json", config, wanted and not not_used, not_used) if config.install \
        else run_dir / "best.json"
    emit("done", iteration=iteration, best_dice=round(best, 4), model=config.name, sidecar=str(installed),
         activated=wanted and not not_used, not_used=not_used or "", elapsed_s=round(time.monotonic() - started, 1))
    return 0


def _baseline(model, val_ds, val_cases, values, card: ModelCard, config: TrainConfig, device, asked, stop,
              emit) -> dict:
    """What the run's model has to beat before it is used (``{"model", "dice"}``), on its
    validation cases, measured as it will be: the model it fine-tunes, before any step,
    else the model in use for its method and modality when that one is made for the
    modality and answers for the same labels (DeepGrow: for any structure). Empty when
    there is none: then a model that finds nothing on them (Dice 0) is not used. (A model
    made for another modality, which the app falls back to with a warning, is no rival:
    a CT run measured the hippocampus MR model on CT resampled to its 1 mm grid.)"""
    name = card.training.get("fine_tuned_from")
    rival, rival_card, rival_ds = model, card, val_ds
    if not name:
        entry = ModelRegistry().preferred(config.method, card.modality)
        if entry is None or entry.card.axes != "array" or entry.card.method != config.method or (
                not suits(entry.card.modality, card.modality)) or (
                config.method == "deepedit" and entry.card.labels != card.labels):
            return {}
        name = entry.card.name
        rival, rival_card = load_checkpoint(entry.sidecar, device)
        rival_ds = dataset(val_cases, rival_card, values, None, config.cache_rate)
    with stop.validation():
        found = validate(rival, rival_ds, rival_card, device, stop=asked)
    if found is None:
        return {}
    emit("message", text=f"{name} on the validation cases: Dice {found:.3f} (what the new model has to beat "
                         "to be used)")
    return {"model": name, "dice": round(found, 4)}


def _calibrate(best: Path, val_cases, device, stop, emit) -> None:
    """What the best model's validation cases choose about it (:mod:`annotator.training.calibrate`),
    kept in its sidecar; with too few cases, a stop or a case that cannot be read, the
    defaults stay."""
    from annotator.active.calibration import MAX_CASES, MIN_CASES
    from annotator.training.calibrate import calibrate

    if len(val_cases) < MIN_CASES:
        return
    model, card = load_checkpoint(best, device)
    emit("message", text=f"choosing how this model is used, on {min(len(val_cases), MAX_CASES)} validation cases")

    def progress(text, fraction):
        if stop:
            raise InterruptedError(text)

    try:
        chosen, text = calibrate(model, card, val_cases, lambda case: (case.id, *read_case(case)), progress)
    except (AnnotatorError, OSError, InterruptedError) as exc:
        emit("message", text=f"nothing chosen on the validation cases: this model is used with the defaults ({exc})")
        return
    if text:
        save_card(chosen, best)
        emit("message", text=text)


def _why_not_used(best: float, card: ModelCard) -> str | None:
    """Why the run's best model may not replace the model in use (None: it may): it did not
    beat :func:`_baseline` on the validation cases, or found nothing on them. It is
    installed all the same, for the person to choose."""
    baseline = card.training.get("baseline") or {}
    if baseline and best <= baseline["dice"]:
        return (f"its validation Dice ({best:.3f}) is no better than {baseline['model']}'s on the same cases "
                f"({baseline['dice']:.3f})")
    if best <= 0:
        return f"it found nothing on its validation cases (Dice {best:.3f})"
    return None


def _dice_kind(method: str) -> str:
    if method == "deepedit":
        return "mean of automatic and after 3 robot clicks, mean over labels"
    return "3 robot clicks per structure"


def click_weighted_loss(scores: torch.Tensor, target: torch.Tensor, maps: torch.Tensor, weight: float) -> torch.Tensor:
    """Dice + cross-entropy, the cross-entropy weighted up to ``1 + weight`` at the clicks
    (``maps``: the guidance the network saw): a network that ignores a click pays for it."""
    dice_loss = DiceLoss(to_onehot_y=True, softmax=True)(scores, target[:, None])
    voxel_weight = 1 + weight * maps.amax(dim=1)
    ce = torch.nn.functional.cross_entropy(scores, target, reduction="none")
    return dice_loss + (ce * voxel_weight).sum() / voxel_weight.sum()


def _install(best: Path, config: TrainConfig, use: bool, why_not: str | None = None) -> Path:
    """Copy the best checkpoint into the user models folder; choose it when ``use``, else
    mark it as not to be used unless chosen (``training.not_used``: why), so that the
    model in use stays in use."""
    model, card = load_checkpoint(best)
    if not use:
        card.training["not_used"] = why_not or "the run was told not to use it"
    target = save_checkpoint(model, card, user_dir() / f"{config.name}.json")
    if use:
        ModelRegistry().choose(config.name)
    return target
