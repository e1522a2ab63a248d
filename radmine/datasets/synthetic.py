"""A deterministic synthetic PACS: images, grammar-written reports and their ground truth.

:func:`make_synthetic_corpus` builds a small corpus that looks, to every
radmine pipeline, like a real PACS export -- CT, MR and CR studies of five
body regions with key images and free-text reports that cite those images the
way radiologists do ("(series 3, image 45)", "se 3 im 45", "images 45-47", ...)
-- and saves beside it the answers the generator knows:

``truth_links``
    one row per cited (series, instance) with the character spans of the
    citing sentence and of the mention in ``reports.text``; ``resolved`` says
    whether the cited image exists in ``images`` (``image_id`` is then set).
``truth_labels``
    ``report_id, finding, label, status``: 1 / 0 / -1 (positive / negated /
    uncertain) for every finding the grammar wrote (CheXpert-style names) and
    ``normal = 1`` for normal reports.
``truth_mentions``
    every finding term the grammar wrote, with its span and status.
``truth_sentences``
    every sentence the grammar wrote, with its section and span.
``truth_images``
    ``image_id, image_class, modality, region, has_lesion, lesion_type,
    lesion_x, lesion_y, lesion_radius, diffuse_findings`` (pixel units;
    ``diffuse_findings`` lists non-focal findings drawn, e.g. "cardiomegaly, edema").
``truth_topics``
    ``report_id, topic, image_class, theme, is_normal``: the latent theme the
    report was drawn from.
``dicom_files``
    the handful of images also written as real DICOM files (``dicom/``).

Everything is derived from ``random_state`` through
:func:`numpy.random.default_rng` seeded per study, so the same arguments give
identical tables and identical image bytes. Regenerate the committed corpus
with ``python -m radmine.datasets.synthetic corpora/synthetic-pacs``.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._io import atomic_write_bytes

logger = logging.getLogger(__name__)

EMBEDDED_NAME = "synthetic-pacs"

#: The image classes (modality x region) the generator draws, with their report themes.
CLASSES: dict[str, dict[str, Any]] = {
    "CT chest": dict(prior="CT of the chest", modality="CT", region="chest", body_part="CHEST", plane="axial", themes=("nodule", "effusion"),
                     title="CT CHEST WITH CONTRAST", series=(2, 3, 4, 5), n_slices=(90, 240), fov_mm=360.0),
    "CT abdomen": dict(prior="CT of the abdomen and pelvis", modality="CT", region="abdomen", body_part="ABDOMEN", plane="axial", themes=("liver", "renal"),
                       title="CT ABDOMEN AND PELVIS WITH CONTRAST", series=(2, 3, 4, 5), n_slices=(100, 260),
                       fov_mm=380.0),
    "MR brain": dict(prior="MRI of the brain", modality="MR", region="brain", body_part="HEAD", plane="axial", themes=("mass", "ischemia"),
                     title="MRI BRAIN WITH AND WITHOUT CONTRAST", series=(3, 4, 5, 6, 7, 8), n_slices=(22, 30),
                     fov_mm=230.0),
    "MR spine": dict(prior="MRI of the lumbar spine", modality="MR", region="spine", body_part="LSPINE", plane="sagittal",
                     themes=("degenerative", "fracture"), title="MRI LUMBAR SPINE WITHOUT CONTRAST",
                     series=(2, 3, 4, 5, 6), n_slices=(13, 17), fov_mm=300.0),
    "XR chest": dict(prior="chest radiograph", modality="CR", region="chest", body_part="CHEST", plane=None, themes=("cardiac", "pneumonia"),
                     title="XR CHEST FRONTAL", series=(1,), n_slices=(4, 4), fov_mm=400.0),
}
N_KEY_IMAGES = 4
NORMAL_FRACTION = 0.2


# ----------------------------------------------------------------------------------------------
# pixels (numpy only)
# ----------------------------------------------------------------------------------------------
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (2.0 * np.arange(size) + 1.0) / size - 1.0
    return np.meshgrid(c, c)  # xx (columns), yy (rows), both in [-1, 1]


def _soft(d: np.ndarray, width: float = 0.02) -> np.ndarray:
    """Soft inside-mask from a signed 'distance' d (inside where d < 1)."""
    return np.clip((1.0 - d) / width + 0.5, 0.0, 1.0)


def _ellipse(x, y, cx, cy, rx, ry, angle=0.0, width=0.03):
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * ca + (y - cy) * sa, -(x - cx) * sa + (y - cy) * ca
    d = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    return _soft(d, width / max(min(rx, ry), 1e-3))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise: a coarse random grid upsampled bilinearly."""
    coarse = rng.standard_normal((cells + 1, cells + 1))
    pos = np.linspace(0, cells, size)
    i0 = np.minimum(pos.astype(int), cells - 1)
    f = pos - i0
    rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


@dataclass
class _Lesion:
    kind: str  # finding name
    u: float  # anatomy coords
    v: float
    radius: float  # anatomy units, at the centre slice
    z0: int  # centre instance
    half: float  # half extent in instances
    value: float  # intensity (physical units)


@dataclass
class _Anatomy:
    cls: str
    scale: float
    angle: float
    tx: float
    ty: float
    params: dict = field(default_factory=dict)
    lesion: _Lesion | None = None
    diffuse: list = field(default_factory=list)  # diffuse (non-focal) findings drawn

    def to_pixels(self, u: float, v: float, size: int) -> tuple[float, float]:
        ca, sa = np.cos(self.angle), np.sin(self.angle)
        px = self.scale * (ca * u - sa * v) + self.tx
        py = self.scale * (sa * u + ca * v) + self.ty
        return ((px + 1.0) * size - 1.0) / 2.0, ((py + 1.0) * size - 1.0) / 2.0

    def grid(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        xx, yy = _grid(size)
        ca, sa = np.cos(self.angle), np.sin(self.angle)
        dx, dy = (xx - self.tx) / self.scale, (yy - self.ty) / self.scale
        return ca * dx + sa * dy, -sa * dx + ca * dy


def _lesion_radius_at(les: _Lesion, instance: int) -> float:
    t = (instance - les.z0) / les.half
    return les.radius * float(np.sqrt(max(0.0, 1.0 - t * t)))


def _draw_ct_chest(a: _Anatomy, x, y, z, rng, size):
    p = a.params
    img = np.full(x.shape, -1000.0)
    body = _ellipse(x, y, 0, 0.05, 0.9, 0.64)
    img = img + body * (-100 + 1000)
    inner = _ellipse(x, y, 0, 0.05, 0.83, 0.57)
    img = img + inner * (40 + 100)
    lung_ry = 0.40 + 0.05 * np.sin(np.pi * z)
    lungs = np.zeros_like(x)
    for side in (-1, 1):
        lungs = np.maximum(lungs, _ellipse(x, y, side * 0.38, -0.02, p["lung_rx"], lung_ry, side * 0.1))
    vessels = np.clip(_smooth_noise(rng, size, 24) - 1.2, 0, None) * 250
    img = img * (1 - lungs) + lungs * (-860 + vessels)
    if "pleural effusion" in a.diffuse:
        fluid = lungs * _soft(-(y - p["fluid_level"]) / 0.05 + 1.0, 0.5)
        img = img * (1 - fluid) + fluid * 15
    med = _ellipse(x, y, 0.04, 0.12, 0.2, 0.24)
    img = img * (1 - med) + med * 40
    aorta = _ellipse(x, y, 0.1, -0.16, 0.07, 0.07)
    img = img * (1 - aorta) + aorta * 170
    spine = _ellipse(x, y, 0, 0.5, 0.09, 0.09)
    img = img * (1 - spine) + spine * 700
    return img


def _draw_ct_abdomen(a: _Anatomy, x, y, z, rng, size):
    p = a.params
    img = np.full(x.shape, -1000.0)
    img += _ellipse(x, y, 0, 0.05, 0.86, 0.7) * (1000 - 100)
    img += _ellipse(x, y, 0, 0.05, 0.76, 0.6) * 130
    liver = _ellipse(x, y, -0.33, -0.12, 0.36 - 0.12 * z, 0.32 - 0.1 * z, 0.3)
    img = img * (1 - liver) + liver * 60
    spleen = _ellipse(x, y, 0.45, -0.15, 0.14, 0.2, -0.4)
    img = img * (1 - spleen) + spleen * 50
    for side in (-1, 1):
        k = _ellipse(x, y, side * 0.3, 0.25, 0.1, 0.14, side * 0.3)
        img = img * (1 - k) + k * 150
        if "hydronephrosis" in a.diffuse and side == p["side"]:
            pel = _ellipse(x, y, side * 0.27, 0.25, 0.05, 0.08)
            img = img * (1 - pel) + pel * 5
    aorta = _ellipse(x, y, 0.06, 0.2, 0.05, 0.05)
    img = img * (1 - aorta) + aorta * 180
    spine = _ellipse(x, y, 0, 0.42, 0.1, 0.1)
    img = img * (1 - spine) + spine * 700
    for bx, by, br, val in p["bowel"]:
        b = _ellipse(x, y, bx, by, br, br)
        img = img * (1 - b) + b * val
    return img


def _draw_mr_brain(a: _Anatomy, x, y, z, rng, size):
    p = a.params
    img = np.zeros(x.shape)
    s = 1.0 - 0.25 * abs(z - 0.5)
    img += _ellipse(x, y, 0, 0, 0.8 * s, 0.94 * s) * 0.65
    skull = _ellipse(x, y, 0, 0, 0.74 * s, 0.88 * s)
    img = img * (1 - skull) + skull * 0.08
    csf = _ellipse(x, y, 0, 0, 0.7 * s, 0.84 * s)
    img = img * (1 - csf) + csf * 0.85
    gyri = np.clip(_smooth_noise(rng, size, 14) * 0.08, -0.1, 0.1)
    gm = _ellipse(x, y, 0, 0, 0.67 * s, 0.81 * s)
    img = img * (1 - gm) + gm * (0.56 + gyri)
    wm = _ellipse(x, y, 0, 0, 0.5 * s, 0.66 * s)
    img = img * (1 - wm) + wm * 0.38
    for side in (-1, 1):
        v = _ellipse(x, y, side * 0.09, -0.05, 0.06, 0.22 * s, side * 0.25)
        img = img * (1 - v) + v * 0.9
    falx = np.exp(-(x / 0.012) ** 2) * (np.abs(y) < 0.8 * s) * (np.abs(y) > 0.3)
    img = img * (1 - 0.6 * falx) + 0.6 * falx * 0.8
    if "white matter disease" in a.diffuse:
        for bx, by in p["wm_spots"]:
            sp = _ellipse(x, y, bx, by, 0.035, 0.035)
            img = img * (1 - sp) + sp * 0.8
    bias = 1.0 + 0.08 * (x * p["bias"][0] + y * p["bias"][1])
    return img * bias


def _draw_mr_spine(a: _Anatomy, x, y, z, rng, size):
    p = a.params
    curve = p["lordosis"] * np.sin(np.pi * (y + 1) / 2)
    xs = x - curve
    img = np.zeros(x.shape)
    body = np.clip((0.8 - xs) / 0.03, 0, 1) * np.clip((xs + 0.95) / 0.03, 0, 1)
    img += body * 0.3
    fat = np.clip((0.8 - xs) / 0.03, 0, 1) * np.clip((xs - 0.62) / 0.03, 0, 1)
    img = img * (1 - fat) + fat * 0.75
    canal = np.clip((0.22 - xs) / 0.02, 0, 1) * np.clip((xs - 0.07) / 0.02, 0, 1)
    img = img * (1 - canal) + canal * 0.88
    cord = np.clip((0.165 - xs) / 0.015, 0, 1) * np.clip((xs - 0.125) / 0.015, 0, 1) * (y < -0.1)
    img = img * (1 - cord) + cord * 0.4
    h, gap = 0.22, 0.07
    for k in range(-4, 5):
        cy = k * (h + gap) + p["offset"]
        hh = h * (0.6 if p.get("fracture_level") == k else 1.0)
        top, bottom = cy - h / 2 + (h - hh), cy + h / 2
        vb = np.clip((y - top) / 0.02, 0, 1) * np.clip((bottom - y) / 0.02, 0, 1)
        vb = vb * np.clip((0.04 - xs) / 0.02, 0, 1) * np.clip((xs + 0.3) / 0.02, 0, 1)
        val = 0.78 if p.get("fracture_level") == k else 0.5
        img = img * (1 - vb) + vb * val
        dy = cy + (h + gap) / 2
        disc = np.clip((gap / 2 - np.abs(y - dy)) / 0.015, 0, 1)
        disc = disc * np.clip((0.03 - xs) / 0.02, 0, 1) * np.clip((xs + 0.29) / 0.02, 0, 1)
        img = img * (1 - disc) + disc * (0.3 if k in p["dark_discs"] else 0.8)
        sp = np.clip((0.09 - np.abs(y - cy)) / 0.02, 0, 1) * np.clip((0.55 - xs) / 0.02, 0, 1)
        sp = sp * np.clip((xs - 0.26) / 0.02, 0, 1)
        img = img * (1 - sp) + sp * 0.45
    return img


def _draw_xr_chest(a: _Anatomy, x, y, z, rng, size):
    p = a.params
    img = np.full(x.shape, 0.04)
    torso = _ellipse(x, y, 0, 0.3, 0.98, 1.15, width=0.08)
    img = img * (1 - torso) + torso * 0.62
    lungs = np.zeros_like(x)
    for side in (-1, 1):
        lungs = np.maximum(lungs, _ellipse(x, y, side * 0.4, -0.05, 0.29, 0.58, side * 0.08, width=0.06))
    haze = 0.12 if "edema" in a.diffuse else 0.0
    lung_val = 0.16 + 0.12 * (y + 0.6) + haze * np.exp(-((np.abs(x) - 0.25) ** 2 + y**2) / 0.08)
    img = img * (1 - lungs) + lungs * lung_val
    ribs = np.zeros_like(x)
    for k in range(8):
        y0 = -0.62 + 0.15 * k
        yc = y0 + 0.25 * (np.abs(x) - 0.1) ** 2
        ribs += np.exp(-((y - yc) / 0.018) ** 2) * (np.abs(x) < 0.72)
    img += lungs * 0.08 * np.clip(ribs, 0, 1)
    heart_rx = 0.36 if "cardiomegaly" in a.diffuse else 0.25
    heart = _ellipse(x, y, 0.08, 0.32, heart_rx, 0.22, width=0.06)
    img = img * (1 - heart) + heart * 0.66
    med = np.clip((0.11 - np.abs(x)) / 0.03, 0, 1) * (y < 0.25) * (y > -0.9)
    img = img * (1 - med) + med * 0.7
    diaph = np.clip((y - 0.55 - 0.2 * x**2) / 0.03, 0, 1) * torso
    img = img * (1 - diaph) + diaph * 0.66
    for side in (-1, 1):
        cl = np.exp(-((y + 0.66 + 0.12 * (np.abs(x) - 0.1) - 0.0) / 0.025) ** 2) * (np.abs(x) > 0.08)
        cl = cl * (np.abs(x) < 0.62) * (np.sign(x) == side)
        img += 0.15 * cl
    if "pleural effusion" in a.diffuse:
        eff = lungs * np.clip((y - p["fluid_level"] + 0.2 * np.abs(x)) / 0.04, 0, 1)
        img = img * (1 - eff) + eff * 0.6
    return img


_DRAW = {
    "CT chest": _draw_ct_chest,
    "CT abdomen": _draw_ct_abdomen,
    "MR brain": _draw_mr_brain,
    "MR spine": _draw_mr_spine,
    "XR chest": _draw_xr_chest,
}
#: Display windows (centre, width) used to turn physical values into PNG grey levels.
_DISPLAY = {"CT chest": (-350.0, 1300.0), "CT abdomen": (40.0, 400.0)}
_BACKGROUND = {"CT chest": -950.0, "CT abdomen": -950.0, "MR brain": 0.03, "MR spine": 0.03, "XR chest": 0.06}
_NOISE = {"CT chest": 10.0, "CT abdomen": 7.0, "MR brain": 0.009, "MR spine": 0.008, "XR chest": 0.005}


def _render(a: _Anatomy, instance: int, n_slices: int, size: int, rng: np.random.Generator):
    """Return (physical image, display image in [0, 1], lesion pixel truth or None)."""
    x, y = a.grid(size)
    z = (instance - 1) / max(n_slices - 1, 1)
    img = _DRAW[a.cls](a, x, y, z, rng, size)
    truth = _lesion_truth(a, instance, size)
    les = a.lesion
    if truth is not None:
        r = _lesion_radius_at(les, instance) if a.cls != "XR chest" else les.radius
        m = _ellipse(x, y, les.u, les.v, r, r * 0.9, 0.4, width=0.02)
        if les.kind in ("hemorrhage", "mass") and a.cls == "MR brain":
            halo = _ellipse(x, y, les.u, les.v, r * 1.8, r * 1.6, 0.4, width=0.05)
            img = img * (1 - halo) + halo * 0.78
        if les.kind == "consolidation" and a.cls == "XR chest":
            m = m * (0.75 + 0.25 * np.clip(_smooth_noise(rng, size, 10), -1, 1))
        img = img * (1 - m) + m * les.value
    sigma = _NOISE[a.cls]
    # noise inside the body only (a flat background keeps the committed PNGs small)
    inside = img > _BACKGROUND[a.cls]
    if a.cls.startswith("MR"):
        # Rician-like magnitude noise
        noisy = np.sqrt((img + sigma * rng.standard_normal(img.shape)) ** 2 + (sigma * rng.standard_normal(img.shape)) ** 2)
    else:
        noisy = img + sigma * rng.standard_normal(img.shape)
    img = np.where(inside, noisy, img)
    if a.cls in _DISPLAY:
        c, w = _DISPLAY[a.cls]
        disp = (img - (c - w / 2)) / w
    else:
        disp = img
    return img, np.clip(disp, 0.0, 1.0), truth


def _lesion_truth(a: _Anatomy, instance: int, size: int) -> dict | None:
    """Pixel position and radius of the lesion drawn on ``instance`` (None when none is drawn)."""
    les = a.lesion
    if les is None:
        return None
    r = _lesion_radius_at(les, instance) if a.cls != "XR chest" else les.radius
    if r <= 0.012:
        return None
    px, py = a.to_pixels(les.u, les.v, size)
    return dict(lesion_x=round(px, 2), lesion_y=round(py, 2), lesion_radius=round(r * a.scale * size / 2, 2))


def _to_uint8(disp: np.ndarray) -> np.ndarray:
    return np.round(disp * 255.0).astype(np.uint8)


def _png_bytes(u8: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(u8, mode="L").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _make_anatomy(cls: str, theme: str, rng: np.random.Generator, key_plan: dict) -> _Anatomy:
    a = _Anatomy(cls=cls, scale=float(rng.uniform(0.9, 1.06)), angle=float(rng.uniform(-0.07, 0.07)),
                 tx=float(rng.uniform(-0.06, 0.06)), ty=float(rng.uniform(-0.06, 0.06)))
    p = a.params
    les = key_plan.get("lesion")  # dict(kind, side, size_cm, z0, half)
    mm_per_unit = CLASSES[cls]["fov_mm"] / 2.0  # anatomy unit -> mm (scale ~1)
    r = None if les is None else les["size_cm"] * 10.0 / 2.0 / mm_per_unit
    if cls == "CT chest":
        p["lung_rx"] = float(rng.uniform(0.25, 0.29))
        if theme == "effusion":
            a.diffuse.append("pleural effusion")
            p["fluid_level"] = float(rng.uniform(0.12, 0.25))
        if les:
            side = -1 if les["side"] == "right" else 1  # patient's right is on the image left
            a.lesion = _Lesion(les["kind"], side * float(rng.uniform(0.32, 0.44)), float(rng.uniform(-0.25, 0.15)),
                               r, les["z0"], les["half"], 40.0)
    elif cls == "CT abdomen":
        bowel = []
        for _ in range(int(rng.integers(4, 8))):
            bowel.append((float(rng.uniform(-0.2, 0.5)), float(rng.uniform(0.0, 0.45)), float(rng.uniform(0.03, 0.07)),
                          float(rng.choice([-900.0, 200.0, 20.0]))))
        p["bowel"] = bowel
        p["side"] = -1 if key_plan.get("side", "right") == "right" else 1
        if theme == "renal":
            if key_plan.get("hydro"):
                a.diffuse.append("hydronephrosis")
        if les and les["kind"] == "kidney stone":
            a.lesion = _Lesion(les["kind"], p["side"] * 0.3, 0.25 + float(rng.uniform(-0.05, 0.05)), max(r, 0.025),
                               les["z0"], les["half"], 900.0)
        elif les:
            a.lesion = _Lesion(les["kind"], float(rng.uniform(-0.45, -0.25)), float(rng.uniform(-0.22, -0.02)), r,
                               les["z0"], les["half"], 5.0 if les["kind"] != "metastasis" else 25.0)
    elif cls == "MR brain":
        p["bias"] = (float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)))
        if theme == "ischemia":
            a.diffuse.append("white matter disease")
            p["wm_spots"] = [(float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.5, 0.5))) for _ in range(5)]
        if les:
            side = -1 if les["side"] == "right" else 1
            a.lesion = _Lesion(les["kind"], side * float(rng.uniform(0.2, 0.42)), float(rng.uniform(-0.4, 0.35)), r,
                               les["z0"], les["half"], 0.97 if les["kind"] != "hemorrhage" else 0.12)
    elif cls == "MR spine":
        p["lordosis"] = float(rng.uniform(0.04, 0.1))
        p["offset"] = float(rng.uniform(-0.1, 0.1))
        p["dark_discs"] = [int(k) for k in rng.choice(np.arange(-4, 5), size=int(rng.integers(0, 3)), replace=False)]
        if les:
            level = les["level"]  # vertebral index -4..4
            cy = level * 0.29 + p["offset"]

            def shift(v):
                return p["lordosis"] * float(np.sin(np.pi * (v + 1) / 2))

            if les["kind"] == "fracture":
                p["fracture_level"] = level
                v = cy + 0.045
                a.lesion = _Lesion("fracture", -0.13 + shift(v), v, 0.08, les["z0"], les["half"], 0.78)
            else:
                v = cy + 0.145
                a.lesion = _Lesion("disc herniation", 0.09 + shift(v), v, r, les["z0"], les["half"], 0.3)
    elif cls == "XR chest":
        if theme == "cardiac":
            a.diffuse.append("cardiomegaly")
            if key_plan.get("edema"):
                a.diffuse.append("edema")
        if key_plan.get("effusion"):
            a.diffuse.append("pleural effusion")
            p["fluid_level"] = float(rng.uniform(0.25, 0.4))
        if les:
            side = -1 if les["side"] == "right" else 1
            a.lesion = _Lesion(les["kind"], side * float(rng.uniform(0.3, 0.45)), float(rng.uniform(-0.2, 0.3)), r,
                               1, 1.0, 0.5)
    return a


# ----------------------------------------------------------------------------------------------
# report grammar
# ----------------------------------------------------------------------------------------------
@dataclass
class _Mark:
    kind: str  # "finding" | "cite"
    text: str
    finding: str | None = None
    status: str | None = None
    series: int | None = None
    instances: tuple = ()
    form: str | None = None
    carried: bool = False


_TOKEN = re.compile(r"(\{\w+\}|\[|\]|<C\d?>)")


class _Writer:
    """Renders templates into pieces (plain strings and marks)."""

    def __init__(self, rng: np.random.Generator, slots: dict[str, Any]):
        self.rng = rng
        self.slots = slots

    def pick(self, options):
        if isinstance(options, (list, tuple)):
            return options[int(self.rng.integers(len(options)))]
        return options

    def slot(self, name: str) -> str:
        if name not in self.slots:
            raise KeyError(f"template slot {name!r} has no value")
        return str(self.pick(self.slots[name]))

    def sentence(self, template, findings=(), cites=()) -> list:
        """``template``: text with ``{slot}``, ``[finding term]`` and ``<C>``/``<C2>`` citation slots."""
        template = self.pick(template)
        n_slots = len(re.findall(r"<C\d?>", template))
        if len(cites) > n_slots and cites[n_slots] and template.endswith("."):
            template = template[:-1] + ", also seen<C2>."
        pieces: list = []
        buf: list[str] = []
        fi = iter(findings)
        ci = iter(cites)
        term: list[str] | None = None
        for tok in _TOKEN.split(template):
            if not tok:
                continue
            if tok.startswith("{"):
                text = self.slot(tok[1:-1])
            elif tok == "[":
                if buf:
                    pieces.append("".join(buf))
                buf, term = [], []
                continue
            elif tok == "]":
                name, status = next(fi)
                pieces.append(_Mark("finding", "".join(term), finding=name, status=status))
                term = None
                continue
            elif tok.startswith("<C"):
                if buf:
                    pieces.append("".join(buf))
                buf = []
                cite = next(ci, None)
                if cite:
                    pieces.extend(cite)
                continue
            else:
                text = tok
            (term if term is not None else buf).append(text)
        if buf:
            pieces.append("".join(buf))
        # capitalise the first character of the sentence
        for k, pc in enumerate(pieces):
            if isinstance(pc, str) and pc:
                pieces[k] = pc[0].upper() + pc[1:]
                break
            if isinstance(pc, _Mark) and pc.text:
                pc.text = pc.text[0].upper() + pc.text[1:]
                break
        return pieces


def _cite(rng: np.random.Generator, series: int, instances, *, carried: bool = False, form: str | None = None) -> list:
    """Pieces for one citation of ``instances`` (consecutive -> range) of ``series``."""
    inst = sorted(int(i) for i in instances)
    s = series
    if carried:
        if len(inst) == 1:
            options = [(" on ", "image {i}", ""), (" (", "image {i}", ")"), (" on ", "im {i}", "")]
            pre, mention, post = options[int(rng.integers(len(options)))]
            return [pre, _mark(mention.format(i=inst[0]), s, inst, "carried", True), post]
        if inst == list(range(inst[0], inst[-1] + 1)):
            return [" on ", _mark(f"images {inst[0]}-{inst[-1]}", s, inst, "carried_range", True), ""]
        return [" on ", _mark(f"images {_and_list(inst)}", s, inst, "carried_list", True), ""]
    if len(inst) == 1:
        i = inst[0]
        forms = {
            "paren": ("(", f"series {s}, image {i}", ")"),
            "paren_caps": ("(", f"Series {s}, Image {i}", ")"),
            "inline": ("on ", f"series {s} image {i}", ""),
            "abbrev": ("(", f"se {s} im {i}", ")"),
            "abbrev_comma": ("(", f"se {s}, im {i}", ")"),
            "of": ("on ", f"image {i} of series {s}", ""),
            "colon": ("(", f"{s}:{i}", ")"),
        }
        names = list(forms)
        form = form or names[int(rng.integers(len(names)))]
        pre, mention, post = forms[form]
        return [" " + pre, _mark(mention, s, inst, form), post]
    if inst == list(range(inst[0], inst[-1] + 1)):
        forms = {
            "range": ("(", f"series {s}, images {inst[0]}-{inst[-1]}", ")"),
            "range_abbrev": ("(", f"se {s} im {inst[0]}-{inst[-1]}", ")"),
            "range_inline": ("on ", f"series {s}, images {inst[0]} through {inst[-1]}", ""),
        }
    else:
        forms = {
            "list": ("(", f"series {s}, images {_and_list(inst)}", ")"),
            "list_inline": ("on ", f"series {s} images {_and_list(inst)}", ""),
        }
    names = list(forms)
    form = form or names[int(rng.integers(len(names)))]
    pre, mention, post = forms[form]
    return [" " + pre, _mark(mention, s, inst, form), post]


def _mark(text, series, inst, form, carried=False):
    return _Mark("cite", text, series=series, instances=tuple(inst), form=form, carried=carried)


def _and_list(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_LOBES = ["right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe", "lingula"]
_AGES = ["XXXX", "45", "52", "58", "61", "64", "67", "70", "73", "79", "XXXX"]

_INDICATIONS = {
    ("CT chest", "nodule"): ["pulmonary nodule on prior imaging", "weight loss and smoking history", "lung cancer screening",
                             "follow-up of lung nodule"],
    ("CT chest", "effusion"): ["dyspnea and pleuritic chest pain", "shortness of breath", "fever and cough",
                               "evaluate pleural effusion"],
    ("CT chest", "normal"): ["chest pain", "cough", "shortness of breath", "smoking history"],
    ("CT abdomen", "liver"): ["abnormal liver function tests", "right upper quadrant pain", "history of colon cancer",
                              "staging"],
    ("CT abdomen", "renal"): ["flank pain", "hematuria", "left flank pain", "right flank pain and hematuria"],
    ("CT abdomen", "normal"): ["abdominal pain", "nausea and vomiting", "abdominal pain"],
    ("MR brain", "mass"): ["headache", "seizure", "new headache and confusion", "known brain lesion"],
    ("MR brain", "ischemia"): ["acute stroke symptoms", "right-sided weakness", "aphasia", "dizziness and weakness"],
    ("MR brain", "normal"): ["headache", "dizziness", "headache"],
    ("MR spine", "degenerative"): ["low back pain radiating to the leg", "sciatica", "lumbar radiculopathy",
                                   "chronic low back pain"],
    ("MR spine", "fracture"): ["fall with back pain", "osteoporosis and acute back pain", "trauma", "back pain after fall"],
    ("MR spine", "normal"): ["low back pain", "back pain"],
    ("XR chest", "cardiac"): ["shortness of breath and leg swelling", "congestive heart failure", "dyspnea",
                              "orthopnea"],
    ("XR chest", "pneumonia"): ["fever and cough", "productive cough", "fever", "cough and chest pain"],
    ("XR chest", "normal"): ["chest pain", "preoperative evaluation", "cough"],
}

_TECHNIQUE = {
    "CT chest": ["Axial CT images of the chest were obtained after the administration of intravenous contrast.",
                 "Contiguous axial images of the chest were acquired with intravenous contrast. Coronal and sagittal "
                 "reformats were reviewed."],
    "CT abdomen": ["Axial CT images of the abdomen and pelvis were obtained with oral and intravenous contrast.",
                   "Helical CT of the abdomen and pelvis was performed after intravenous contrast. Coronal reformats "
                   "were obtained."],
    "MR brain": ["Multiplanar multisequence MR imaging of the brain was performed before and after gadolinium.",
                 "Sagittal T1, axial T2, FLAIR, diffusion and postcontrast T1 images of the brain were obtained."],
    "MR spine": ["Sagittal T1, T2 and STIR and axial T2 images of the lumbar spine were obtained without contrast.",
                 "Multiplanar MR imaging of the lumbar spine was performed without contrast."],
    "XR chest": ["Frontal views of the chest.", "Portable AP view of the chest.", "PA view of the chest."],
}


def _finding_templates(cls: str):
    """(positive-normal statements, negatable findings) background per class."""
    if cls in ("CT chest", "XR chest"):
        neg = [
            ("No [{eff}].", [("pleural effusion", "negated")]),
            ("No [pneumothorax].", [("pneumothorax", "negated")]),
            ("There is no [{eff}] or [pneumothorax].", [("pleural effusion", "negated"), ("pneumothorax", "negated")]),
            ("No focal [consolidation].", [("consolidation", "negated")]),
            ("No evidence of [pneumothorax].", [("pneumothorax", "negated")]),
            ("Negative for [pneumothorax].", [("pneumothorax", "negated")]),
            ("No [pulmonary edema].", [("edema", "negated")]),
        ]
        if cls == "CT chest":
            neg += [("No mediastinal or hilar [lymphadenopathy].", [("lymphadenopathy", "negated")]),
                    ("No suspicious pulmonary [nodule] or [mass].", [("nodule", "negated"), ("mass", "negated")])]
            norm = ["The heart is normal in size.", "The thoracic aorta is normal in caliber.",
                    "The central airways are patent.", "Visualized upper abdomen is unremarkable.",
                    "No acute osseous abnormality."]
        else:
            neg += [("No acute [fracture].", [("fracture", "negated")])]
            norm = ["The cardiomediastinal silhouette is within normal limits.",
                    "The osseous structures are intact.", "The costophrenic angles are sharp.",
                    "Visualized upper abdomen is unremarkable."]
    elif cls == "CT abdomen":
        neg = [("No [free fluid] or free air.", [("ascites", "negated")]),
               ("No [hydronephrosis].", [("hydronephrosis", "negated")]),
               ("No [bowel obstruction].", [("bowel obstruction", "negated")]),
               ("No retroperitoneal or mesenteric [lymphadenopathy].", [("lymphadenopathy", "negated")]),
               ("The appendix is normal without evidence of [appendicitis].", [("appendicitis", "negated")])]
        norm = ["The spleen, pancreas and adrenal glands are unremarkable.", "The gallbladder is unremarkable.",
                "The urinary bladder is normal.", "The abdominal aorta is normal in caliber.",
                "Bowel loops are normal in caliber."]
    elif cls == "MR brain":
        neg = [("No intracranial [hemorrhage].", [("hemorrhage", "negated")]),
               ("There is no [hydrocephalus].", [("hydrocephalus", "negated")]),
               ("No restricted diffusion to suggest acute [infarct].", [("infarct", "negated")]),
               ("No abnormal enhancement or [mass] effect.", [("mass", "negated")]),
               ("No extra-axial fluid collection or [midline shift].", [("midline shift", "negated")])]
        norm = ["The ventricles and sulci are normal in size for age.", "The major intracranial flow voids are preserved.",
                "The orbits and paranasal sinuses are clear.", "Gray-white matter differentiation is preserved."]
    else:  # MR spine
        neg = [("No acute [fracture].", [("fracture", "negated")]),
               ("No significant [spinal canal stenosis].", [("stenosis", "negated")]),
               ("No [disc herniation].", [("disc herniation", "negated")]),
               ("There is no [marrow edema].", [("edema", "negated")])]
        norm = ["Vertebral body heights are maintained.", "The conus medullaris terminates normally at L1.",
                "Alignment is normal.", "The paraspinal soft tissues are unremarkable."]
    return norm, neg


#: Theme-specific descriptive sentences (no finding terms): they make the latent themes lexically distinct.
_THEME_COLOR = {
    ("CT chest", "nodule"): ["The margins are irregular and spiculated.", "No internal calcification or fat is seen.",
                             "There is retraction of the adjacent pleura.", "Centrilobular emphysema in the upper lobes.",
                             "Bronchovascular bundles converge toward the opacity."],
    ("CT chest", "effusion"): ["The fluid layers dependently without loculation.", "Fluid tracks into the major fissure.",
                               "No pleural enhancement to suggest empyema.",
                               "Diagnostic thoracentesis may be considered.", "The hemidiaphragm is elevated."],
    ("CT abdomen", "liver"): ["The lesion shows peripheral enhancement in the portal venous phase.",
                              "The biliary tree is not dilated.", "The portal vein is patent without thrombus.",
                              "The hepatic contour is smooth.", "Diffuse hepatic steatosis."],
    ("CT abdomen", "renal"): ["The ureter is dilated to the level of the obstruction.",
                              "Delayed excretion of contrast from the affected kidney.",
                              "Punctate calcifications in the renal papillae.", "The bladder is decompressed.",
                              "Renal cortical thickness is preserved."],
    ("MR brain", "mass"): ["Heterogeneous enhancement after gadolinium administration.",
                           "Effacement of the adjacent sulci and lateral ventricle.",
                           "Susceptibility artifact within the lesion suggests blood products.",
                           "No uncal or subfalcine herniation.", "Perfusion is elevated within the enhancing rim."],
    ("MR brain", "ischemia"): ["Corresponding low ADC values confirm restricted diffusion.",
                               "FLAIR signal in the same territory is subtle, suggesting a hyperacute stroke.",
                               "Old lacunes in the basal ganglia.", "Flow voids of the circle of Willis are maintained.",
                               "Cortical swelling in the affected gyri."],
    ("MR spine", "degenerative"): ["Facet arthropathy and ligamentum flavum thickening.",
                                   "Loss of disc height with disc desiccation.", "Modic type 1 endplate changes.",
                                   "The traversing nerve root is compressed in the lateral recess.",
                                   "Annular fissure in the posterior disc."],
    ("MR spine", "fracture"): ["STIR hyperintense marrow signal in the vertebral body.",
                               "The posterior elements are intact.",
                               "Diffusely reduced bone mineral density, compatible with osteoporosis.",
                               "Vertebroplasty or kyphoplasty could be considered.",
                               "The superior endplate is depressed."],
    ("XR chest", "cardiac"): ["The pulmonary vasculature is indistinct and cephalized.", "Kerley B lines at the bases.",
                              "The cardiothoracic ratio is increased.", "Sternotomy wires and a pacemaker are present.",
                              "Peribronchial cuffing is noted."],
    ("XR chest", "pneumonia"): ["Air bronchograms within the opacity.",
                                "The opacity silhouettes the adjacent hemidiaphragm.",
                                "A follow-up radiograph after treatment is recommended to document resolution.",
                                "Peribronchial thickening in the lower zones.", "The lateral view confirms the opacity."],
}

_IMPRESSION_NORMAL = {
    "CT chest": ["No acute cardiopulmonary abnormality.", "Normal CT of the chest.", "No CT evidence of acute "
                 "intrathoracic abnormality."],
    "CT abdomen": ["No acute abnormality in the abdomen or pelvis.", "Normal CT of the abdomen and pelvis."],
    "MR brain": ["No acute intracranial abnormality.", "Normal MRI of the brain."],
    "MR spine": ["Normal MRI of the lumbar spine.", "No significant degenerative disease or acute abnormality."],
    "XR chest": ["No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.", "Normal chest."],
}

_SLOTS = dict(
    eff=["pleural effusion", "pleural effusion", "effusion"],
    keyimg=["Key images", "Representative images", "Key images saved"],
    size_word=["small", "moderate", "large"],
    side=["right", "left"],
    shape=["spiculated", "solid", "lobulated", "noncalcified", "part-solid"],
    recommend=["Recommend follow-up CT in 3 months.", "Recommend PET-CT and tissue sampling.",
               "Recommend comparison with prior outside imaging if available.",
               "Follow-up CT in 6 to 12 months is recommended per Fleischner Society guidelines."],
    segment=["segment 4a", "segment 6", "segment 7", "segment 8", "segment 5", "the caudate lobe"],
    level=["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"],
)


@dataclass
class _Study:
    index: int
    patient_id: str
    study_id: str
    report_id: str
    cls: str
    theme: str
    series: int
    n_slices: int
    key: list
    lesion: dict | None
    plan: dict
    prior: str | None


def _theme_sentences(w: _Writer, st: _Study) -> tuple[list, list]:
    """Findings and impression sentences for the study's theme; cites key images."""
    rng, cls, th = w.rng, st.cls, st.theme
    s = st.series
    key = list(st.key)
    les = st.lesion
    les_inst = list(les["instances"]) if les else []
    others = [k for k in key if k not in les_inst]
    missing = _missing_instances(rng, st)
    findings: list = []
    impression: list = []
    cited_other = []

    def cite_other(n=1, allow_missing=True):
        nonlocal others
        if others and (not allow_missing or rng.random() > 0.3):
            chosen, others = others[:n], others[n:]
            cited_other.extend(chosen)
            return _cite(rng, s, chosen)
        if allow_missing and missing:
            return _cite(rng, s, [missing.pop()])
        return []

    def lesion_cite():
        if rng.random() < 0.35 and len(les_inst) > 1:
            # cite the first lesion image explicitly and the rest with the series carried over,
            # later in the same sentence or in the next one
            c2 = _cite(rng, s, les_inst[1:], carried=True)
            return (_cite(rng, s, les_inst[:1]), None, c2) if rng.random() < 0.5 else \
                (_cite(rng, s, les_inst[:1]), c2, None)
        extra = []
        if rng.random() < 0.25 and missing:  # range running past the saved key images
            extra = [max(les_inst) + 1] if max(les_inst) + 1 not in key and max(les_inst) + 1 <= st.n_slices else []
        return _cite(rng, s, les_inst + extra), None, None

    if cls == "CT chest" and th == "nodule":
        size = les["size_cm"]
        kind = les["kind"]
        lobe = les["lobe"]
        w.slots.update(lobe=lobe, size=f"{size:.1f}", size2=f"{size * rng.uniform(0.6, 0.9):.1f}")
        c1, c2, c2s = lesion_cite()
        findings.append(w.sentence(["There is a {size} cm {shape} [%s] in the {lobe}<C>." % kind,
                                    "A {shape} [%s] in the {lobe} measures {size} x {size2} cm<C>." % kind,
                                    "{shape} {lobe} [%s] measuring {size} cm<C>." % kind],
                                   [(kind, "positive")], [c1, c2s]))
        if c2 is not None:
            findings.append(w.sentence(["It is also seen<C>.", "The %s is also visible<C>." % kind], (), [c2]))
        if rng.random() < 0.5:
            findings.append(w.sentence(["Additional tiny [nodules] are scattered in both lungs<C>.",
                                        "A second {size2} cm [nodule] is present in the {lobe2}<C>."],
                                       [("nodule", "positive")], [cite_other()]))
        if rng.random() < 0.5:
            findings.append(w.sentence(["Mildly enlarged mediastinal lymph nodes may represent reactive "
                                        "[lymphadenopathy].", "Cannot exclude hilar [lymphadenopathy]."],
                                       [("lymphadenopathy", "uncertain")]))
        impression.append(w.sentence(["{size} cm {lobe} [%s], suspicious for malignancy." % kind,
                                      "{shape} {lobe} [%s] concerning for primary lung neoplasm." % kind,
                                      "{lobe} [%s], indeterminate." % kind], [(kind, "positive")]))
        impression.append(w.sentence("{recommend}"))
    elif cls == "CT chest":  # effusion theme
        side = st.plan["side"]
        w.slots.update(eside=[side, "bilateral" if rng.random() < 0.3 else side], lobe=st.plan["lobe"])
        findings.append(w.sentence(["There is a {size_word} {eside} [{eff}]<C>.",
                                    "{size_word} {eside} [pleural fluid] is present<C>."],
                                   [("pleural effusion", "positive")], [cite_other(2, False)]))
        findings.append(w.sentence(["Adjacent compressive [atelectasis] of the {lobe}<C>.",
                                    "Associated passive [atelectasis] in the {lobe}<C>."],
                                   [("atelectasis", "positive")], [cite_other()]))
        if rng.random() < 0.6:
            if rng.random() < 0.5:
                findings.append(w.sentence("Patchy opacity in the {lobe2} may represent [atelectasis] or [pneumonia].",
                                           [("atelectasis", "uncertain"), ("pneumonia", "uncertain")]))
            else:
                findings.append(w.sentence("Superimposed [pneumonia] cannot be excluded.", [("pneumonia", "uncertain")]))
        findings.append(w.sentence("Smooth pleural thickening without loculation<C>.", (), [cite_other()]))
        impression.append(w.sentence(["{size_word} {eside} [{eff}] with adjacent [atelectasis].",
                                      "{eside} [pleural effusion] with compressive [atelectasis]."],
                                     [("pleural effusion", "positive"), ("atelectasis", "positive")]))
        if rng.random() < 0.5:
            impression.append(w.sentence("Possible superimposed [pneumonia].", [("pneumonia", "uncertain")]))
    elif cls == "CT abdomen" and th == "liver":
        kind = les["kind"]
        w.slots.update(size=f"{les['size_cm']:.1f}")
        term = {"liver lesion": "{hypo} [lesion]", "cyst": "[simple cyst]", "metastasis": "[metastasis]"}[kind]
        w.slots.update(hypo=["hypodense", "hypoattenuating", "low-attenuation"])
        c1, c2, c2s = lesion_cite()
        findings.append(w.sentence(["There is a {size} cm %s in hepatic {segment}<C>." % term,
                                    "A %s in the liver, {segment}, measures {size} cm<C>." % term],
                                   [(kind, "positive")], [c1, c2s]))
        if c2 is not None:
            findings.append(w.sentence("It is also seen<C>.", (), [c2]))
        if rng.random() < 0.6:
            findings.append(w.sentence(["Additional subcentimeter hypodensities are too small to characterize<C>.",
                                        "Several smaller hepatic lesions may represent [metastases]<C>."],
                                       [("metastasis", "uncertain")], [cite_other()]))
        findings.append(w.sentence("The portal and hepatic veins are patent<C>.", (), [cite_other()]))
        impression.append(w.sentence({"liver lesion": ["{size} cm hepatic [lesion], indeterminate. MRI is recommended "
                                                       "for further characterization."],
                                      "cyst": ["{size} cm hepatic [cyst], likely benign."],
                                      "metastasis": ["Hepatic [metastasis] measuring {size} cm.",
                                                     "{size} cm liver lesion compatible with [metastasis]."]}[kind],
                                     [(kind if kind != "liver lesion" else "liver lesion", "positive")]))
    elif cls == "CT abdomen":  # renal
        side = st.plan["side"]
        w.slots.update(kside=side, size=f"{les['size_cm'] * 10:.0f}")
        c1, c2, c2s = lesion_cite()
        findings.append(w.sentence(["There is a {size} mm [calculus] in the {kside} renal pelvis<C>.",
                                    "{size} mm obstructing [stone] at the {kside} ureteropelvic junction<C>."],
                                   [("kidney stone", "positive")], [c1, c2s]))
        if c2 is not None:
            findings.append(w.sentence("The calculus is also seen<C>.", (), [c2]))
        if st.plan.get("hydro"):
            findings.append(w.sentence("Moderate {kside} [hydronephrosis] and perinephric stranding<C>.",
                                       [("hydronephrosis", "positive")], [cite_other()]))
            impression.append(w.sentence("Obstructing {kside} renal [calculus] with moderate [hydronephrosis].",
                                         [("kidney stone", "positive"), ("hydronephrosis", "positive")]))
        else:
            findings.append(w.sentence("No [hydronephrosis]<C>.", [("hydronephrosis", "negated")], [cite_other()]))
            impression.append(w.sentence("Nonobstructing {kside} [nephrolithiasis].", [("kidney stone", "positive")]))
        if rng.random() < 0.4:
            impression.append(w.sentence("Mild bladder wall thickening may represent [cystitis].",
                                         [("cystitis", "uncertain")]))
    elif cls == "MR brain" and th == "mass":
        kind = les["kind"]
        w.slots.update(size=f"{les['size_cm']:.1f}", lobe=les["lobe"])
        c1, c2, c2s = lesion_cite()
        if kind == "mass":
            findings.append(w.sentence(["There is a {size} cm heterogeneously enhancing [mass] in the {lobe}<C>.",
                                        "A rim-enhancing [mass] measuring {size} cm is present in the {lobe}<C>."],
                                       [("mass", "positive")], [c1, c2s]))
        else:
            findings.append(w.sentence(["There is a {size} cm intraparenchymal [hemorrhage] in the {lobe}<C>.",
                                        "Acute [hemorrhage] in the {lobe} measures {size} cm<C>."],
                                       [("hemorrhage", "positive")], [c1, c2s]))
        if c2 is not None:
            findings.append(w.sentence("It extends inferiorly<C>.", (), [c2]))
        findings.append(w.sentence(["Surrounding vasogenic [edema] with mild local mass effect<C>.",
                                    "There is surrounding [edema]<C>."], [("edema", "positive")], [cite_other()]))
        if rng.random() < 0.5:
            findings.append(w.sentence("Possible 2 mm leftward [midline shift].", [("midline shift", "uncertain")]))
        impression.append(w.sentence({"mass": ["{size} cm enhancing {lobe} [mass] with surrounding edema, likely "
                                               "high-grade glioma or metastasis.", "{lobe} [mass], neoplasm favored."],
                                      "hemorrhage": ["Acute {lobe} [hemorrhage] measuring {size} cm.",
                                                     "{lobe} intraparenchymal [hemorrhage]; an underlying lesion "
                                                     "cannot be excluded."]}[kind], [(kind, "positive")]))
    elif cls == "MR brain":  # ischemia
        lobe = les["lobe"]
        territory = "posterior cerebral artery" if "occipital" in lobe else (
            "anterior cerebral artery" if "frontal" in lobe and rng.random() < 0.3 else "middle cerebral artery")
        w.slots.update(lobe=lobe, territory=territory)
        c1, c2, c2s = lesion_cite()
        findings.append(w.sentence(["Restricted diffusion in the {lobe} consistent with acute [infarct]<C>.",
                                    "Acute [infarct] in the {territory} territory involving the {lobe}<C>."],
                                   [("infarct", "positive")], [c1, c2s]))
        if c2 is not None:
            findings.append(w.sentence("It is also seen<C>.", (), [c2]))
        findings.append(w.sentence(["Scattered periventricular [white matter hyperintensities]<C>.",
                                    "Patchy T2 hyperintense foci in the deep [white matter]<C>."],
                                   [("white matter disease", "positive")], [cite_other()]))
        findings.append(w.sentence("No hemorrhagic transformation.", ()))
        impression.append(w.sentence("Acute {lobe} [infarct] in the {territory} territory.", [("infarct", "positive")]))
        impression.append(w.sentence("Chronic small vessel ischemic [white matter disease].",
                                     [("white matter disease", "positive")]))
    elif cls == "MR spine" and th == "degenerative":
        w.slots.update(lvl=les["level_name"], fside=["right", "left", "bilateral"])
        c1, c2, c2s = lesion_cite()
        findings.append(w.sentence(["At {lvl}, there is a broad-based [disc herniation] with an extruded fragment<C>.",
                                    "{lvl}: Central [disc protrusion] contacting the traversing nerve roots<C>."],
                                   [("disc herniation", "positive")], [c1, c2s]))
        if c2 is not None:
            findings.append(w.sentence("The extrusion is also seen<C>.", (), [c2]))
        if rng.random() < 0.5:
            findings.append(w.sentence("Moderate [spinal canal stenosis] and {fside} [foraminal narrowing] at {lvl}<C>.",
                                       [("stenosis", "positive"), ("foraminal narrowing", "positive")], [cite_other()]))
        else:
            findings.append(w.sentence("Mild [spinal canal stenosis] at {lvl}<C>.", [("stenosis", "positive")],
                                       [cite_other()]))
        findings.append(w.sentence("Disc desiccation at multiple levels<C>.", (), [cite_other()]))
        impression.append(w.sentence("{lvl} [disc herniation] with [spinal canal stenosis].",
                                     [("disc herniation", "positive"), ("stenosis", "positive")]))
        if rng.random() < 0.5:
            impression.append(w.sentence("Findings may represent a source of radiculopathy.", ()))
    elif cls == "MR spine":  # fracture
        w.slots.update(vert=les["vert"], pct=["20", "30", "40", "50"])
        c1, c2, c2s = lesion_cite()
        findings.append(w.sentence(["Acute [compression fracture] of the {vert} vertebral body with {pct}% height "
                                    "loss<C>.", "There is an acute {vert} [compression fracture]<C>."],
                                   [("fracture", "positive")], [c1, c2s]))
        if c2 is not None:
            findings.append(w.sentence("The fracture line is also seen<C>.", (), [c2]))
        findings.append(w.sentence("Associated [marrow edema] on STIR images<C>.", [("edema", "positive")],
                                   [cite_other()]))
        if rng.random() < 0.5:
            findings.append(w.sentence(["No [retropulsion].", "There is no [retropulsion]."], [("retropulsion", "negated")]))
        else:
            findings.append(w.sentence("Possible minimal [retropulsion] of the posterior cortex.",
                                       [("retropulsion", "uncertain")]))
        impression.append(w.sentence("Acute {vert} [compression fracture] with {pct}% height loss.",
                                     [("fracture", "positive")]))
        if rng.random() < 0.5:
            impression.append(w.sentence("An underlying pathologic [fracture] cannot be excluded.",
                                         [("fracture", "uncertain")]))
    elif cls == "XR chest" and th == "cardiac":
        findings.append(w.sentence(["The heart is enlarged, consistent with [cardiomegaly]<C>.",
                                    "[Cardiomegaly] is present<C>.", "There is [cardiomegaly]<C>."],
                                   [("cardiomegaly", "positive")], [cite_other(2, False)]))
        if st.plan.get("edema"):
            findings.append(w.sentence(["Pulmonary vascular congestion and interstitial [edema]<C>.",
                                        "Perihilar haziness and Kerley B lines compatible with [pulmonary edema]<C>."],
                                       [("edema", "positive")], [cite_other()]))
        if st.plan.get("effusion"):
            findings.append(w.sentence("Small bilateral [pleural effusions]<C>.", [("pleural effusion", "positive")],
                                       [cite_other()]))
        else:
            findings.append(w.sentence("Blunting of the costophrenic angles may represent small [{eff}].",
                                       [("pleural effusion", "uncertain")]))
        impression.append(w.sentence(["[Cardiomegaly] with findings of congestive heart failure.",
                                      "[Cardiomegaly]; vascular congestion."], [("cardiomegaly", "positive")]))
    elif cls == "XR chest":  # pneumonia
        w.slots.update(zone=["right lower lobe", "left lower lobe", "right middle lobe", "lingula", "left base"])
        c1, c2, c2s = lesion_cite()
        findings.append(w.sentence(["Focal airspace [consolidation] in the {zone}<C>.",
                                    "There is a patchy airspace [opacity] in the {zone}<C>."],
                                   [("consolidation", "positive")], [c1, c2s]))
        if c2 is not None:
            findings.append(w.sentence("The opacity is also seen<C>.", (), [c2]))
        findings.append(w.sentence(["No [pneumothorax].", "Negative for [pneumothorax]."], [("pneumothorax", "negated")]))
        k = int(rng.integers(3))
        if k == 0:
            impression.append(w.sentence("{zone} [consolidation] concerning for [pneumonia].",
                                         [("consolidation", "positive"), ("pneumonia", "uncertain")]))
        elif k == 1:
            impression.append(w.sentence("Findings suspicious for {zone} [pneumonia].", [("pneumonia", "uncertain")]))
        else:
            impression.append(w.sentence("{zone} airspace disease compatible with [pneumonia].",
                                         [("pneumonia", "positive")]))
        if rng.random() < 0.4:
            impression.append(w.sentence("Cannot exclude small [pleural effusion].", [("pleural effusion", "uncertain")]))
    # cite the remaining key images (some images stay uncited) and, sometimes, a missing one
    rest = [k for k in others]
    if rest and rng.random() < 0.7:
        findings.append(_key_images(w, s, rest))
    if missing and rng.random() < 0.35:
        findings.append(w.sentence(["Incidental note is made of a small calcified granuloma<C>.",
                                    "Degenerative changes are noted<C>.", "Minor motion artifact is present<C>."],
                                   (), [_cite(rng, s, [missing.pop()])]))
    return findings, impression


def _key_images(w: _Writer, series, instances) -> list:
    head = w.pick(["Key images", "Representative images", "Additional key images"])
    inst = sorted(instances)
    form = "list_inline" if len(inst) > 1 and inst != list(range(inst[0], inst[-1] + 1)) else None
    if len(inst) == 1:
        form = "inline"
    pieces = _cite(w.rng, series, inst, form=form or "range_inline")
    return [f"{head}: "] + [pieces[1]] + ["."]


def _missing_instances(rng: np.random.Generator, st: _Study) -> list[int]:
    pool = [i for i in range(1, st.n_slices + 3) if i not in st.key and (i - 1) not in st.key]
    if not pool:
        return []
    return [int(i) for i in rng.choice(pool, size=min(2, len(pool)), replace=False)]


def _normal_sentences(w: _Writer, st: _Study) -> tuple[list, list]:
    rng = w.rng
    norm, neg = _finding_templates(st.cls)
    findings = []
    order = rng.permutation(len(norm))[: 3]
    for k in order:
        findings.append(w.sentence(norm[k]))
    for k in rng.permutation(len(neg))[:3]:
        t, f = neg[k]
        findings.append(w.sentence(t, f))
    if rng.random() < 0.6:
        findings.append(_key_images(w, st.series, st.key[: int(rng.integers(1, len(st.key) + 1))]))
    impression = [w.sentence(_IMPRESSION_NORMAL[st.cls])]
    return findings, impression


def _background(w: _Writer, st: _Study, used: set[str]) -> list:
    norm, neg = _finding_templates(st.cls)
    out = []
    for k in w.rng.permutation(len(neg))[:2]:
        t, f = neg[k]
        if any(name in used for name, _ in f):
            continue
        out.append(w.sentence(t, f))
    out.append(w.sentence(norm[int(w.rng.integers(len(norm)))]))
    return out


def _write_report(st: _Study, rng: np.random.Generator, age: str, sex: str, prior_date: str | None) -> dict:
    w = _Writer(rng, dict(_SLOTS))
    w.slots["lobe2"] = _LOBES
    sections: list[tuple[str, str, list]] = []
    ind = _INDICATIONS[(st.cls, st.theme)]
    w.slots.update(age=age, sex=sex, why=ind)
    head = w.pick([("INDICATION", "indication"), ("HISTORY", "history"), ("CLINICAL HISTORY", "history"),
                   ("REASON FOR EXAM", "indication")])
    k = int(rng.integers(3))
    if k == 0:
        ind_sents = [w.sentence("{age}-year-old {sex} with {why}.")]
    elif k == 1:
        ind_sents = [w.sentence("{why}.")]
    else:
        ind_sents = [w.sentence("{age}-year-old {sex}."), w.sentence("{why}.")]
    sections.append((head[0], head[1], ind_sents))
    tech = w.pick(_TECHNIQUE[st.cls])
    sections.append(("TECHNIQUE", "technique", [w.sentence(t + ".") for t in tech.rstrip(".").split(". ")]))
    if st.prior:
        w.slots.update(prior=st.prior, prior_date=[prior_date, "XXXX"])
        comp = w.sentence(["{prior} from {prior_date}.", "Prior {prior} dated {prior_date}."])
    else:
        comp = w.sentence(["None.", "XXXX.", "None available."])
    sections.append(("COMPARISON", "comparison", [comp]))
    if st.theme == "normal":
        findings, impression = _normal_sentences(w, st)
    else:
        findings, impression = _theme_sentences(w, st)
        pool = _THEME_COLOR[(st.cls, st.theme)]
        for k in sorted(rng.choice(len(pool), size=2, replace=False)):
            findings.insert(1 + int(k) % 2, w.sentence(pool[int(k)]))
        used = {m.finding for sent in findings + impression for m in sent if isinstance(m, _Mark) and m.finding}
        findings = findings + _background(w, st, used)
    if rng.random() < 0.15:
        impression.append(w.sentence("Findings were discussed with XXXX at the time of dictation."))
    sections.append(("FINDINGS", "findings", findings))
    numbered = len(impression) > 1 and rng.random() < 0.35
    sections.append(("IMPRESSION", "impression", impression))
    return _assemble(st, sections, numbered)


def _assemble(st: _Study, sections, numbered: bool) -> dict:
    parts: list[str] = []
    pos = 0
    cols: dict[str, str] = {}
    sent_rows, mention_rows, cite_rows = [], [], []

    def put(s: str):
        nonlocal pos
        parts.append(s)
        pos += len(s)

    sent_idx = 0
    for k, (heading, col, sentences) in enumerate(sections):
        if k:
            put("\n\n")
        put(f"{heading}: ")
        body_start = pos
        for j, pieces in enumerate(sentences):
            if j:
                put("\n" if (numbered and col == "impression") else " ")
            if numbered and col == "impression":
                put(f"{j + 1}. ")
            s_start = pos
            local_marks = []
            for pc in pieces:
                if isinstance(pc, _Mark):
                    local_marks.append((pos, pos + len(pc.text), pc))
                    put(pc.text)
                else:
                    put(pc)
            s_end = pos
            sent_rows.append(dict(report_id=st.report_id, section=col, sentence_index=sent_idx, start=s_start,
                                  end=s_end))
            seen_series = False
            for a, b, m in local_marks:
                if m.kind == "cite":
                    series_from = "previous_sentence" if (m.carried and not seen_series) else (
                        "sentence" if m.carried else "mention")
                    seen_series = True
                if m.kind == "finding":
                    mention_rows.append(dict(report_id=st.report_id, finding=m.finding, status=m.status,
                                             start=a, end=b, sentence_index=sent_idx, section=col))
                else:
                    for inst in m.instances:
                        cite_rows.append(dict(report_id=st.report_id, series=m.series, instance=int(inst),
                                              form=m.form, series_from=series_from, mention_start=a, mention_end=b,
                                              sentence_index=sent_idx, sentence_start=s_start, sentence_end=s_end,
                                              section=col))
            sent_idx += 1
        cols[col] = (body_start, pos)
    text = "".join(parts)
    out = {c: text[a:b] for c, (a, b) in cols.items()}
    for r in sent_rows:
        r["text"] = text[r["start"]:r["end"]]
    for r in mention_rows:
        r["mention"] = text[r["start"]:r["end"]]
    for r in cite_rows:
        r["mention"] = text[r["mention_start"]:r["mention_end"]]
        r["sentence"] = text[r["sentence_start"]:r["sentence_end"]]
    return dict(text=text, sections=out, sentences=sent_rows, mentions=mention_rows, cites=cite_rows)


# ----------------------------------------------------------------------------------------------
# study planning
# ----------------------------------------------------------------------------------------------
_BRAIN_LOBES = ["right frontal lobe", "left frontal lobe", "right parietal lobe", "left parietal lobe",
                "right temporal lobe", "left temporal lobe", "right occipital lobe", "left occipital lobe"]
_VERTS = {-2: "L1", -1: "L2", 0: "L3", 1: "L4", 2: "L5"}


def _plan_study(index, patient_id, cls, theme, rng, prior) -> _Study:
    info = CLASSES[cls]
    series = int(rng.choice(info["series"]))
    lo, hi = info["n_slices"]
    n = int(rng.integers(lo, hi + 1))
    plan: dict[str, Any] = {"side": str(rng.choice(["right", "left"])), "lobe": str(rng.choice(_LOBES))}
    lesion = None
    lesion_kind = {
        ("CT chest", "nodule"): None, ("CT abdomen", "liver"): None, ("CT abdomen", "renal"): "kidney stone",
        ("MR brain", "mass"): None, ("MR brain", "ischemia"): "infarct", ("MR spine", "degenerative"): "disc herniation",
        ("MR spine", "fracture"): "fracture", ("XR chest", "pneumonia"): "consolidation",
    }
    if (cls, theme) in lesion_kind:
        kind = lesion_kind[(cls, theme)]
        if kind is None:
            kind = str(rng.choice({"CT chest": ["nodule", "nodule", "mass"],
                                   "CT abdomen": ["liver lesion", "cyst", "metastasis"],
                                   "MR brain": ["mass", "hemorrhage"]}[cls]))
        size = {"nodule": (0.6, 2.8), "mass": (3.2, 5.5), "liver lesion": (1.2, 4.0), "cyst": (1.0, 3.5),
                "metastasis": (1.5, 4.5), "kidney stone": (0.3, 0.9), "hemorrhage": (1.5, 4.0),
                "infarct": (1.5, 3.5), "disc herniation": (0.8, 1.4), "fracture": (2.0, 3.0),
                "consolidation": (4.0, 7.0)}[kind]
        size_cm = float(np.round(rng.uniform(*size), 1))
        if cls == "XR chest":
            key = list(range(1, N_KEY_IMAGES + 1))
            first = int(rng.integers(1, N_KEY_IMAGES))
            inst = [first, first + 1]  # the cited ones; the lesion shows on every frontal image
        else:
            n_les = int(rng.integers(2, 4))
            margin = 3
            z0 = int(rng.integers(margin + 1, n - margin - n_les))
            inst = list(range(z0, z0 + n_les))
            others = [i for i in range(1, n + 1) if abs(i - z0) > n_les + 1 and abs(i - inst[-1]) > 1]
            key = sorted(inst + [int(i) for i in rng.choice(others, N_KEY_IMAGES - n_les, replace=False)])
        lesion = dict(kind=kind, size_cm=size_cm, instances=inst, z0=inst[len(inst) // 2] if cls != "XR chest" else 1,
                      half=len(inst) / 2 + 0.75, side=plan["side"])
        if cls == "CT chest":
            lesion["lobe"] = plan["lobe"]
            lesion["side"] = "right" if plan["lobe"].startswith("right") else "left"
        if cls == "MR brain":
            lesion["lobe"] = str(rng.choice(_BRAIN_LOBES))
            lesion["side"] = lesion["lobe"].split()[0]
        if cls == "MR spine":
            lv = int(rng.integers(-2, 3))
            lesion["level"] = lv
            lesion["vert"] = _VERTS[lv]
            names = {-2: "L1-L2", -1: "L2-L3", 0: "L3-L4", 1: "L4-L5", 2: "L5-S1"}
            lesion["level_name"] = names[lv]
    else:
        if cls == "XR chest":
            key = list(range(1, N_KEY_IMAGES + 1))
        else:
            key = sorted(int(i) for i in rng.choice(np.arange(1, n + 1), N_KEY_IMAGES, replace=False))
    if theme == "renal":
        plan["hydro"] = bool(rng.random() < 0.6)
    if theme == "cardiac":
        plan["edema"] = bool(rng.random() < 0.5)
        plan["effusion"] = bool(rng.random() < 0.4)
    n_idx = index + 1
    return _Study(index, patient_id, f"S{n_idx:04d}", f"R{n_idx:04d}", cls, theme, series, n, key, lesion, plan, prior)


def _check_args(n_patients, image_size, n_dicom):
    from radmine._validation import check_int

    check_int(n_patients, "n_patients", "make_synthetic_corpus", min_value=1)
    check_int(image_size, "image_size", "make_synthetic_corpus", min_value=32)
    check_int(n_dicom, "n_dicom", "make_synthetic_corpus", min_value=0)


def _seed_of(random_state) -> int:
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31))
    if random_state is None:
        return 0
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(f"The 'random_state' parameter of make_synthetic_corpus must be an int, None or a numpy "
                        f"Generator. Got {type(random_state).__name__} instead.")
    if random_state < 0:
        raise ValueError(f"The 'random_state' parameter of make_synthetic_corpus must be >= 0. Got {random_state}.")
    return int(random_state)


def make_synthetic_corpus(n_patients: int = 120, *, random_state=0, image_size: int = 128, out_dir=None,
                          n_dicom: int = 5, progress: bool = False):
    """Generate a deterministic synthetic PACS corpus with ground truth.

    Patients get CT, MR and CR studies of five image classes (``CT chest``,
    ``CT abdomen``, ``MR brain``, ``MR spine``, ``XR chest``; balanced) with
    four key images each and a report written by a grammar whose sentences
    cite the key images in the forms real reports use. Some citations point
    to images that were never saved (see ``truth_links.resolved``).

    Parameters
    ----------
    n_patients : int, default 120
        Number of patients; the corpus has ``n_patients + n_patients // 4``
        studies (one report each) and four key images per study.
    random_state : int, default 0
        Seed; the same seed gives identical tables and identical PNG bytes.
    image_size : int, default 128
        Side of the square grayscale key images, in pixels.
    out_dir : str or Path, optional
        Folder to write the corpus to (``images/*.png``, ``dicom/*.dcm`` and
        the saved tables, see :meth:`radmine.Corpus.save`). Default: a cache
        folder under ``$RADMINE_CACHE`` or ``~/.cache/radmine`` keyed by the
        arguments and the radmine version (reused when already complete).
        Generator-named PNG/DICOM files of an earlier generation in
        ``out_dir`` are removed; nothing else there is touched.
    n_dicom : int, default 5
        How many images (the first of each class, in class order; at most
        five) are also written as DICOM files; the CR one is MONOCHROME1.
    progress : bool, default False
        Show a tqdm progress bar over studies.

    Returns
    -------
    Corpus
        With ``root`` set to ``out_dir`` and the extra tables ``truth_links``,
        ``truth_labels``, ``truth_mentions``, ``truth_sentences``,
        ``truth_images``, ``truth_topics`` and ``dicom_files``.

    Raises
    ------
    TypeError
        If ``n_patients``, ``image_size`` or ``n_dicom`` is not an int, or
        ``random_state`` is not an int, None or a numpy Generator.
    ValueError
        If ``n_patients < 1``, ``image_size < 32``, ``n_dicom < 0`` or
        ``random_state < 0``.

    Examples
    --------
    >>> import radmine, tempfile
    >>> c = radmine.make_synthetic_corpus(10, out_dir=tempfile.mkdtemp())
    >>> c.n_reports, c.n_images
    (12, 48)
    """
    from radmine.corpus import Corpus

    _check_args(n_patients, image_size, n_dicom)
    seed = _seed_of(random_state)
    if out_dir is None:
        from radmine import __version__

        out_dir = _cache_dir() / f"synthetic-v{__version__}-n{n_patients}-s{seed}-px{image_size}-d{n_dicom}"
        if (out_dir / "corpus.json").is_file():
            try:
                c = Corpus.load(out_dir)
                c.root = str(out_dir)
                if c.image_paths().map(lambda p: Path(p).is_file()).all():
                    return c
            except (ValueError, OSError) as err:  # pragma: no cover - damaged cache
                logger.warning("Regenerating damaged synthetic corpus cache at %s (%s).", out_dir, err)
    return _build(n_patients, seed, image_size, Path(out_dir), n_dicom, progress)


def _build(n_patients, seed, image_size, out_dir: Path, n_dicom, progress, render=None):
    from radmine.corpus import Corpus

    tables = _generate(n_patients, seed, image_size, out_dir, n_dicom, progress, render=render)
    reports = tables.pop("reports")
    images = tables.pop("images")
    default = (n_patients, seed, image_size, n_dicom) == (120, 0, 128, 5)
    corpus = Corpus(reports, images, name=EMBEDDED_NAME if default else f"synthetic-n{n_patients}-s{seed}", **tables)
    _prune_stale(out_dir, set(images["path"]) | set(tables["dicom_files"]["path"]))
    corpus.save(out_dir)  # root stays None in the manifest: load_embedded sets it
    # return what was saved, so a fresh corpus and a loaded one have the same dtypes
    corpus = Corpus.load(out_dir)
    corpus.root = str(out_dir)
    return corpus


_OWN_FILE = re.compile(r"^S\d{4}_\d+_\d{3}\.(png|dcm)$")


def _prune_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete generator-named image/DICOM files left by an earlier, different generation."""
    for sub in ("images", "dicom"):
        folder = out_dir / sub
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            rel = f"{sub}/{f.name}"
            if _OWN_FILE.match(f.name) and rel not in keep:
                f.unlink()


def _cache_dir() -> Path:
    import os

    base = os.environ.get("RADMINE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "radmine"


def _generate(n_patients: int, seed: int, image_size: int, out_dir: Path, n_dicom: int, progress: bool,
              render=None):
    """All tables; writes PNG/DICOM files. ``render(i) -> bool`` limits which studies get pixels (tests)."""
    rng = np.random.default_rng([seed, 0])
    n_studies = n_patients + n_patients // 4
    cls_names = list(CLASSES)
    cls_of = np.array([cls_names[i % len(cls_names)] for i in range(n_studies)], dtype=object)
    cls_of = cls_of[rng.permutation(n_studies)]
    themes_of = np.empty(n_studies, dtype=object)
    for c in cls_names:
        idx = np.flatnonzero(cls_of == c)
        m = len(idx)
        n_norm = int(round(NORMAL_FRACTION * m))
        t1, t2 = CLASSES[c]["themes"]
        labels = ["normal"] * n_norm + [t1 if k % 2 == 0 else t2 for k in range(m - n_norm)]
        themes_of[idx] = np.array(labels, dtype=object)[rng.permutation(m)]
    patient_of = [f"P{i + 1:03d}" for i in range(n_patients)] + [f"P{i + 1:03d}" for i in range(n_studies - n_patients)]
    ages = {p: str(rng.choice(_AGES)) for p in dict.fromkeys(patient_of)}
    sexes = {p: str(rng.choice(["male", "female"])) for p in dict.fromkeys(patient_of)}
    base_day = np.datetime64("2014-01-06")
    # splits by patient
    pids = list(dict.fromkeys(patient_of))
    order = rng.permutation(len(pids))
    n_tr, n_dev = int(round(0.7 * len(pids))), int(round(0.15 * len(pids)))
    split_of = {}
    for rank, k in enumerate(order):
        split_of[pids[k]] = "train" if rank < n_tr else ("dev" if rank < n_tr + n_dev else "test")

    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    reports, images, t_links, t_labels, t_mentions, t_sent, t_img, t_topics = [], [], [], [], [], [], [], []
    studies: list[_Study] = []
    first_of_patient: dict[str, _Study] = {}
    iterator = range(n_studies)
    if progress:
        from radmine._progress import tqdm

        iterator = tqdm(iterator, desc="synthetic studies")
    dicom_todo = {c: None for c in cls_names[:max(0, n_dicom)]}
    for i in iterator:
        pid = patient_of[i]
        srng = np.random.default_rng([seed, 1, i])
        prior_st = first_of_patient.get(pid)
        prior = None
        if prior_st is not None and prior_st.cls == cls_of[i]:
            prior = CLASSES[cls_of[i]]["prior"]
        st = _plan_study(i, pid, str(cls_of[i]), str(themes_of[i]), srng, prior)
        first_of_patient.setdefault(pid, st)
        studies.append(st)
        date = base_day + np.timedelta64(int(i * 3 + srng.integers(0, 3)), "D")
        prior_date = "XXXX" if prior_st is None else str(base_day + np.timedelta64(int(prior_st.index * 3), "D"))
        rep = _write_report(st, np.random.default_rng([seed, 2, i]), ages[pid], sexes[pid], prior_date)
        info = CLASSES[st.cls]
        row = dict(report_id=st.report_id, patient_id=pid, study_id=st.study_id, modality=info["modality"],
                   text=rep["text"])
        for col in ("indication", "history", "comparison", "technique", "findings", "impression"):
            row[col] = rep["sections"].get(col)
        row.update(title=info["title"], date=str(date), body_part=info["body_part"],
                   age=None if ages[pid] == "XXXX" else int(ages[pid]), sex=sexes[pid][0].upper(),
                   split=split_of[pid])
        reports.append(row)
        # images
        irng = np.random.default_rng([seed, 3, i])
        anat = _make_anatomy(st.cls, st.theme, irng, dict(st.plan, lesion=st.lesion))
        spacing = round(info["fov_mm"] / image_size, 4)
        key_ids = {}
        for inst in st.key:
            image_id = f"{st.study_id}_{st.series}_{inst:03d}"
            key_ids[inst] = image_id
            rel = f"images/{image_id}.png"
            want_dicom = st.cls in dicom_todo and dicom_todo[st.cls] is None
            if render is None or render(i) or want_dicom:
                phys, disp, les = _render(anat, inst, st.n_slices, image_size,
                                          np.random.default_rng([seed, 4, i, inst]))
                (out_dir / rel).write_bytes(_png_bytes(_to_uint8(disp)))
            else:
                les = _lesion_truth(anat, inst, image_size)
            view = None
            if st.cls == "XR chest":
                view = "PA" if inst % 2 else "AP"
            images.append(dict(image_id=image_id, report_id=st.report_id, patient_id=pid, study_id=st.study_id,
                               path=rel, modality=info["modality"], view=view, plane=info["plane"],
                               series_number=st.series, instance_number=int(inst), caption=None,
                               body_part=info["body_part"], rows=image_size, columns=image_size,
                               pixel_spacing=spacing))
            t_img.append(dict(image_id=image_id, report_id=st.report_id, image_class=st.cls, modality=info["modality"],
                              region=info["region"], theme=st.theme, has_lesion=les is not None,
                              lesion_type=(st.lesion["kind"] if les is not None else None),
                              lesion_x=(les or {}).get("lesion_x", np.nan), lesion_y=(les or {}).get("lesion_y", np.nan),
                              lesion_radius=(les or {}).get("lesion_radius", np.nan),
                              diffuse_findings=", ".join(anat.diffuse) or None))
            if st.cls in dicom_todo and dicom_todo[st.cls] is None:
                dicom_todo[st.cls] = (image_id, phys, disp, st, inst, spacing)
        for r in rep["cites"]:
            img_id = key_ids.get(r["instance"]) if r["series"] == st.series else None
            t_links.append(dict(image_id=img_id, report_id=st.report_id, series=r["series"], instance=r["instance"],
                                resolved=img_id is not None, sentence_index=r["sentence_index"],
                                section=r["section"], sentence_start=r["sentence_start"],
                                sentence_end=r["sentence_end"], mention_start=r["mention_start"],
                                mention_end=r["mention_end"], sentence=r["sentence"], mention=r["mention"],
                                form=r["form"], series_from=r["series_from"]))
        for r in rep["sentences"]:
            t_sent.append(r)
        for r in rep["mentions"]:
            t_mentions.append(r)
        agg: dict[str, int] = {}
        for r in rep["mentions"]:
            v = {"positive": 1, "uncertain": -1, "negated": 0}[r["status"]]
            prev = agg.get(r["finding"])
            rank = {1: 2, -1: 1, 0: 0}
            if prev is None or rank[v] > rank[prev]:
                agg[r["finding"]] = v
        if st.theme == "normal":
            agg["normal"] = 1
        for f, v in sorted(agg.items()):
            t_labels.append(dict(report_id=st.report_id, finding=f, label=v,
                                 status={1: "positive", 0: "negated", -1: "uncertain"}[v]))
        t_topics.append(dict(report_id=st.report_id, topic=f"{st.cls} / {st.theme}", image_class=st.cls,
                             theme=st.theme, is_normal=st.theme == "normal"))

    dicom_rows = _write_dicoms(out_dir, dicom_todo, seed)
    reports_df = pd.DataFrame(reports)
    images_df = pd.DataFrame(images)
    for c in ("view", "plane", "caption", "indication", "history", "comparison", "technique", "findings",
              "impression"):
        for df in (reports_df, images_df):
            if c in df.columns:
                df[c] = df[c].astype(object)
    reports_df["age"] = reports_df["age"].astype("Int64")
    return dict(
        reports=reports_df,
        images=images_df,
        truth_links=pd.DataFrame(t_links),
        truth_labels=pd.DataFrame(t_labels),
        truth_mentions=pd.DataFrame(t_mentions)[["report_id", "sentence_index", "section", "finding", "status",
                                                 "start", "end", "mention"]],
        truth_sentences=pd.DataFrame(t_sent)[["report_id", "sentence_index", "section", "start", "end", "text"]],
        truth_images=pd.DataFrame(t_img),
        truth_topics=pd.DataFrame(t_topics),
        dicom_files=pd.DataFrame(dicom_rows, columns=["image_id", "path", "modality", "photometric_interpretation",
                                                      "rescale_slope", "rescale_intercept"]),
    )


# ----------------------------------------------------------------------------------------------
# DICOM examples
# ----------------------------------------------------------------------------------------------
def _write_dicoms(out_dir: Path, todo: dict, seed: int) -> list[dict]:
    rows = []
    if not any(v is not None for v in todo.values()):
        return rows
    try:
        import pydicom  # noqa: F401
    except ImportError:  # pragma: no cover - pydicom is a dependency
        logger.warning("pydicom not installed: no DICOM examples written.")
        return rows
    (out_dir / "dicom").mkdir(parents=True, exist_ok=True)
    for cls, item in todo.items():
        if item is None:
            continue
        image_id, phys, disp, st, inst, spacing = item
        data, meta = _dicom_bytes(cls, image_id, phys, disp, st, inst, spacing, seed)
        rel = f"dicom/{image_id}.dcm"
        atomic_write_bytes(out_dir / rel, data)
        rows.append(dict(image_id=image_id, path=rel, **meta))
    return rows


def _dicom_bytes(cls, image_id, phys, disp, st: _Study, inst, spacing, seed):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    info = CLASSES[cls]
    modality = info["modality"]
    sop_class = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
                 "CR": "1.2.840.10008.5.1.4.1.1.1"}[modality]

    def uid(*parts):
        return generate_uid(entropy_srcs=["radmine-synthetic", str(seed), *map(str, parts)])

    slope, intercept = 1.0, 0.0
    photometric = "MONOCHROME2"
    if modality == "CT":
        intercept = -1024.0
        stored = np.clip(np.round(phys + 1024.0), 0, 4095).astype(np.uint16)
        wc, ww = _DISPLAY[cls]
    elif modality == "MR":
        stored = np.clip(np.round(phys * 1000.0), 0, 4095).astype(np.uint16)
        wc, ww = 500.0, 1000.0
    else:
        photometric = "MONOCHROME1"  # high values are dark
        stored = np.clip(np.round((1.0 - disp) * 4095.0), 0, 4095).astype(np.uint16)
        wc, ww = 2048.0, 4096.0
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid(image_id, "sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.ImplementationVersionName = "RADMINE_SYN"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid(st.study_id, "study")
    ds.SeriesInstanceUID = uid(st.study_id, st.series, "series")
    ds.FrameOfReferenceUID = uid(st.study_id, "for")
    ds.PatientID = st.patient_id
    ds.PatientName = "SYNTHETIC^" + st.patient_id
    ds.StudyID = st.study_id
    ds.AccessionNumber = st.report_id
    ds.StudyDate = "20140106"
    ds.StudyDescription = info["title"]
    ds.SeriesDescription = f"{info['plane'] or 'frontal'} {cls}"
    ds.Modality = modality
    ds.BodyPartExamined = info["body_part"]
    ds.SeriesNumber = st.series
    ds.InstanceNumber = int(inst)
    ds.Manufacturer = "radmine synthetic PACS"
    if modality == "CR":
        ds.ViewPosition = "PA" if inst % 2 else "AP"
        ds.ImagerPixelSpacing = [spacing, spacing]
    ds.PixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    if modality == "CT":
        ds.RescaleType = "HU"
    ds.WindowCenter = wc
    ds.WindowWidth = ww
    ds.PixelData = stored.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), dict(modality=modality, photometric_interpretation=photometric, rescale_slope=slope,
                                rescale_intercept=intercept)


def regenerate_embedded(path=None) -> Path:
    """(Re)write the embedded corpus folder from scratch; returns its path."""
    from radmine import _paths

    path = Path(path) if path is not None else _paths.embedded_dir() / EMBEDDED_NAME
    if path.exists():
        if not (path / "corpus.json").is_file() and any(path.iterdir()):
            raise FileExistsError(f"{path} exists and is not a saved corpus; refusing to overwrite it.")
        shutil.rmtree(path)
    make_synthetic_corpus(out_dir=path)
    return path


def _stats(corpus, random_state: int = 0) -> dict[str, Any]:
    """Sanity numbers for the docs: sizes, truth counts and how recoverable the latent classes are."""
    import time

    from PIL import Image
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA, LatentDirichletAllocation
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    out: dict[str, Any] = {}
    root = Path(corpus.root)
    out["files_mb"] = round(sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6, 2)
    out["reports"], out["images"] = corpus.n_reports, corpus.n_images
    tl = corpus["truth_links"]
    out["cited_images"] = len(tl)
    out["unresolved_fraction"] = round(float((~tl["resolved"]).mean()), 3)
    out["citation_forms"] = tl["form"].value_counts().to_dict()
    out["image_classes"] = corpus["truth_images"]["image_class"].value_counts().to_dict()
    out["lesion_images"] = int(corpus["truth_images"]["has_lesion"].sum())
    out["labels"] = corpus["truth_labels"]["status"].value_counts().to_dict()
    t0 = time.perf_counter()
    x = np.stack([np.asarray(Image.open(p).resize((32, 32)), dtype=float).ravel() / 255 for p in corpus.image_paths()])
    truth = corpus["truth_images"].set_index("image_id").loc[corpus.images["image_id"], "image_class"]
    z = PCA(20, random_state=random_state).fit_transform(x)
    km = KMeans(5, n_init=10, random_state=random_state).fit(z)
    out["kmeans_raw_pixels_ari"] = round(float(adjusted_rand_score(truth, km.labels_)), 3)
    tt = corpus["truth_topics"].set_index("report_id").loc[corpus.reports["report_id"]]
    counts = CountVectorizer(stop_words="english", min_df=2).fit_transform(corpus.reports["text"])
    for k, col in ((5, "image_class"), (15, "topic")):
        lda = LatentDirichletAllocation(k, random_state=random_state, max_iter=50).fit(counts)
        nmi = normalized_mutual_info_score(tt[col], lda.transform(counts).argmax(1))
        out[f"lda{k}_nmi_vs_{col}"] = round(float(nmi), 3)
    out["stats_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv=None) -> int:
    import argparse
    import json
    import time

    ap = argparse.ArgumentParser(prog="python -m radmine.datasets.synthetic",
                                 description="Regenerate the embedded synthetic PACS corpus (deterministic).")
    ap.add_argument("path", nargs="?", default=None, help="output folder (default: corpora/synthetic-pacs)")
    ap.add_argument("--stats", action="store_true",
                    help="also print sizes, truth counts, raw-pixel k-means ARI and LDA NMI against the truth")
    args = ap.parse_args(argv)
    t0, c0 = time.perf_counter(), time.process_time()
    out = regenerate_embedded(args.path)
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s ({time.process_time() - c0:.1f} s CPU)")
    if args.stats:
        from radmine.corpus import Corpus

        corpus = Corpus.load(out)
        corpus.root = str(out)
        print(json.dumps(_stats(corpus), indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
