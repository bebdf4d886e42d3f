"""A synthetic CT-like volume with known organs: seeded, for demos, tests and benchmarks."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from annotator.io.volume import Source, Volume

#: (label, name, centre as fraction of (z, y, x), radii as fraction, HU)
ORGANS = [
    (1, "liver", (0.5, 0.45, 0.35), (0.30, 0.22, 0.18), 105.0),
    (2, "spleen", (0.5, 0.45, 0.72), (0.18, 0.10, 0.08), 125.0),
    (3, "kidney", (0.55, 0.62, 0.62), (0.15, 0.07, 0.06), 180.0),
]


def ct_phantom(shape: tuple[int, int, int] = (128, 256, 256),
               spacing_zyx: tuple[float, float, float] = (2.0, 0.8, 0.8),
               seed: int = 0) -> tuple[Volume, np.ndarray]:
    """A body-shaped, contrast-enhanced CT phantom (HU, int16) and its organ label map.

    Air outside an elliptic body of fat and soft tissue, three ellipsoidal organs with
    their own attenuation, a spine of bone, smooth texture and scanner-like noise.
    """
    rng = np.random.default_rng(seed)
    z, y, x = (np.linspace(0.0, 1.0, n, dtype=np.float32) for n in shape)
    zz, yy, xx = z[:, None, None], y[None, :, None], x[None, None, :]
    hu = np.full(shape, -1000.0, np.float32)
    body = ((yy - 0.5) / 0.38) ** 2 + ((xx - 0.5) / 0.45) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    hu[body] = -90.0
    inner = np.broadcast_to(((yy - 0.5) / 0.33) ** 2 + ((xx - 0.5) / 0.40) ** 2 <= 1.0, shape)
    hu[inner] = 50.0
    label = np.zeros(shape, np.uint8)
    for value, _name, centre, radii, level in ORGANS:
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), centre, radii)) <= 1.0
        label[inside] = value
        hu[inside] = level
    spine = np.broadcast_to(((yy - 0.78) / 0.05) ** 2 + ((xx - 0.5) / 0.05) ** 2 <= 1.0, shape)
    hu[spine] = 500.0
    texture = gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2.0) * 40.0
    hu += np.where(body, texture, 0.0) + rng.normal(0.0, 12.0, shape).astype(np.float32)
    volume = Volume(
        array=np.clip(hu, -1024, 3071).astype(np.int16),
        spacing=tuple(reversed(spacing_zyx)),
        origin=(0.0, 0.0, 0.0),
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        modality="CT",
        source=Source(path=f"phantom:{shape}:{seed}"),
        name=f"CT phantom {seed}",
    )
    return volume, label
