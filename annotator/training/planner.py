"""Training settings chosen from the data and the machine (as MONAI Label's heuristic
planner and nnU-Net's rules do): target spacing, crop size, batch size, intensity
normalisation and how much of the data set the training process may cache.

From up to :data:`SAMPLE` labelled images of the datastores (spread over the list):

- **spacing**: the median voxel spacing per axis; where the data is anisotropic (one axis
  more than 3 times coarser than the finest), that axis gets the 10th percentile of its
  spacings instead, so that thick slices are not made thicker;
- **intensity**: CT: a fixed window from the 0.5 and 99.5 percentiles of the labelled
  voxels (in HU, the same for every image); MR and others: each image's own 0.5–99.5
  percentiles;
- **crop**: the median image size on the target grid, rounded up to multiples of 16,
  shrunk (largest axis first) to what the device trains at a useful speed: about 0.9 M
  voxels (96³) on a CPU, more with GPU memory;
- **batch**: 2 on a CPU; on a GPU as many crops as its memory allows, 2 to 8;
- **cache**: the prepared images (float32 image and uint8 label on the target grid) are
  cached only as far as a quarter of the memory available allows; a data set that does
  not fit is cached in part and the rest read as needed (MONAI Label's users run out of
  memory here).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from annotator.errors import InputError
from annotator.models.card import PERCENTILES

#: images read to plan (the first, the last and evenly between)
SAMPLE = 20
#: crop voxels a CPU trains at a useful speed (96³), and per GB of GPU memory
CPU_VOXELS, GPU_VOXELS_PER_GB = 96 ** 3, 200_000
#: share of the available memory the training cache may take
CACHE_SHARE = 0.25


@dataclass
class Machine:
    cores: int
    memory_gb: float  # available now
    gpu: str | None = None
    gpu_memory_gb: float = 0.0

    @classmethod
    def here(cls) -> "Machine":
        memory = _meminfo().get("MemAvailable", 8 * 2**20) / 2**20
        gpu, gpu_gb = None, 0.0
        try:
            import torch

            if torch.cuda.is_available():
                free, _total = torch.cuda.mem_get_info()
                gpu, gpu_gb = torch.cuda.get_device_name(0), free / 2**30
        except ImportError:
            pass
        return cls(os.cpu_count() or 1, round(memory, 1), gpu, round(gpu_gb, 1))


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in kB (empty where there is none)."""
    try:
        return {line.split(":")[0]: int(line.split()[1]) for line in open("/proc/meminfo") if line.split()[1:2]}
    except (OSError, ValueError, IndexError):
        return {}


@dataclass
class Plan:
    modality: str
    images: int  # labelled images in the data
    sampled: int
    target_spacing: list[float]  # mm, (z, y, x)
    median_shape: list[int]  # on the target grid
    patch: list[int]
    batch_size: int
    intensity: dict
    cache_rate: float
    machine: Machine
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        m = self.machine
        device = f"GPU {m.gpu} ({m.gpu_memory_gb:g} GB free)" if m.gpu else f"CPU, {m.cores} cores"
        lines = [f"images:          {self.images} labelled ({self.sampled} read), modality {self.modality}",
                 f"machine:         {device}, {m.memory_gb:g} GB memory available",
                 f"target spacing:  {' x '.join(f'{s:g}' for s in self.target_spacing)} mm (z, y, x)",
                 f"median size:     {' x '.join(map(str, self.median_shape))} voxels on that grid",
                 f"crop:            {' x '.join(map(str, self.patch))}",
                 f"batch size:      {self.batch_size}",
                 f"intensity:       {_describe_intensity(self.intensity)}",
                 f"cache:           {self.cache_rate:.0%} of the images"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _describe_intensity(intensity: dict) -> str:
    if intensity.get("kind") == "window":
        return f"window {intensity['low']:g} .. {intensity['high']:g}"
    return f"each image's {intensity.get('low', 0.5):g}-{intensity.get('high', 99.5):g} percentiles"


def _round16(n: float) -> int:
    return max(16, int(math.ceil(n / 16) * 16))


def plan_cases(cases: list[tuple], total: int, machine: Machine | None = None) -> Plan:
    """The plan from ``(volume, label)`` pairs read from a data set of ``total`` labelled images."""
    if not cases:
        raise InputError("no labelled images to plan training from")
    machine = machine or Machine.here()
    spacings = np.array([v.array_spacing for v, _ in cases], float)
    target = np.median(spacings, axis=0)
    notes = []
    if target.max() > 3 * target.min():
        coarse = int(np.argmax(target))
        target[coarse] = np.percentile(spacings[:, coarse], 10)
        notes.append(f"anisotropic voxels: axis {'zyx'[coarse]} at its 10th percentile spacing")
    shapes = np.array([np.asarray(v.shape) * np.asarray(v.array_spacing) / target for v, _ in cases])
    median = [int(round(s)) for s in np.median(shapes, axis=0)]
    modalities = [v.modality for v, _ in cases]
    modality = max(set(modalities), key=modalities.count)
    if modality == "CT":
        inside = np.concatenate([v.array[lab > 0].ravel() for v, lab in cases if (lab > 0).any()] or [np.zeros(1)])
        low, high = np.percentile(inside, [0.5, 99.5])
        intensity = {"kind": "window", "low": round(float(low), 1), "high": round(float(high), 1)}
    else:
        intensity = dict(PERCENTILES)
    budget = machine.gpu_memory_gb * GPU_VOXELS_PER_GB if machine.gpu else CPU_VOXELS
    budget = max(budget, 16 ** 3)
    patch = [_round16(s) for s in median]
    while math.prod(patch) > budget and max(patch) > 16:
        i = int(np.argmax(patch))
        patch[i] -= 16
    if machine.gpu:
        batch = int(min(8, max(2, budget * 2 // math.prod(patch))))
    else:
        batch = 2
    per_case = math.prod(median) * 5  # float32 image + uint8 label
    allowed = machine.memory_gb * 2**30 * CACHE_SHARE
    cache_rate = float(min(1.0, allowed / max(per_case * total, 1)))
    if cache_rate < 1.0:
        notes.append(f"the prepared data (about {per_case * total / 2**30:.1f} GB) would not fit in memory: "
                     f"{cache_rate:.0%} of it is cached, the rest read as needed")
    return Plan(modality, total, len(cases), [round(float(t), 3) for t in target], median, patch, batch,
                intensity, round(cache_rate, 3), machine, notes)


def plan(places: list[str], split: str = "all", machine: Machine | None = None) -> Plan:
    """The plan for training on the labelled images of the datastores at ``places``."""
    from annotator.datastore.cases import no_labelled_images
    from annotator.datastore.factory import open_store

    cases = [(store, i) for store in (open_store(p) for p in places) for i in store.training_ids(split)]
    if not cases:
        raise no_labelled_images(places, "to plan training from")
    picks = sorted({int(round(k)) for k in np.linspace(0, len(cases) - 1, min(SAMPLE, len(cases)))})
    read = []
    for store, image_id in (cases[k] for k in picks):
        volume = store.open_image(image_id)
        label = store.label(image_id, volume)
        if label is not None:  # a label on a server that cannot be used for the image: not labelled after all
            read.append((volume, label))
    if not read:
        raise no_labelled_images(places, "to plan training from")
    return plan_cases(read, len(cases), machine)


def resolve(config, emit=None):
    """``config`` with what it leaves open (empty crop, spacing or intensity, batch size or
    cache rate 0) filled from :func:`plan`; what it sets stays."""
    open_ = not config.patch or not config.target_spacing or not config.intensity or not config.batch_size \
        or not config.cache_rate
    if not open_:
        return config
    found = plan(list(config.data), config.split)
    config.patch = list(config.patch) or list(found.patch)
    config.target_spacing = list(config.target_spacing) or list(found.target_spacing)
    config.intensity = dict(config.intensity) or dict(found.intensity)
    config.batch_size = config.batch_size or found.batch_size
    config.cache_rate = config.cache_rate or found.cache_rate
    if config.modality == "unknown":
        config.modality = found.modality
    if emit is not None:
        emit("message", text="planned: " + "; ".join(found.summary().splitlines()[2:]))
    return config
