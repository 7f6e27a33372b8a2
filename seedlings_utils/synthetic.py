"""A synthetic "mini seedlings" data set in exactly the layout of Kaggle's Plant Seedlings Classification.

The course's default, offline data: ``root/train/<species>/<9 hex digits>.png`` and
``root/test/<9 hex digits>.png``, drawn with Pillow and NumPy. Each picture is a young plant on brown
soil with pebbles, seen from above. The 12 species differ by the *shape* of the plant (leaf outlines,
number and arrangement of leaves); soil, light, plant colour, plant size and position come from the same
distributions for every species, so a model has to learn shape, not colour.

Everything is deterministic from ``seed``: each image's random generator is derived from
``(seed, split, species, index)``, so the files are byte-identical whatever the number of worker
processes.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from .config import KAGGLE_TEST_COUNT, KAGGLE_TRAIN_COUNTS, SPECIES

__all__ = [
    "default_test_count",
    "draw_seedling",
    "make_synthetic_seedlings",
    "synthetic_class_counts",
]

MIN_SIDE, MAX_SIDE = 50, 500
SQUARE_FRACTION = 0.6
RGBA_FRACTION = 0.04
PNG_COMPRESS_LEVEL = 1
_NAME_DIGITS = 9
_SPLIT_TRAIN, _SPLIT_TEST, _SPLIT_TEST_SPECIES, _SPLIT_NAMES = 0, 1, 2, 3


# --------------------------------------------------------------------------------------------------------
# Counts
# --------------------------------------------------------------------------------------------------------
def synthetic_class_counts(per_class: int) -> dict[str, int]:
    """Images per species for a synthetic set with ``per_class`` images per species on average.

    Proportional to ``KAGGLE_TRAIN_COUNTS`` (largest-remainder rounding, ties broken in ``SPECIES``
    order), each at least 2, and summing to exactly ``per_class * 12``. A species with more real images
    never gets fewer synthetic ones than a species with fewer real images.
    """
    if per_class < 2:
        raise ValueError(f"per_class must be at least 2, got {per_class}")
    n = len(SPECIES)
    total = per_class * n
    real = np.array([KAGGLE_TRAIN_COUNTS[s] for s in SPECIES], dtype=np.int64)
    # Exact integer arithmetic: quota_i = total * real_i / sum(real).
    numer = total * real
    denom = int(real.sum())
    counts = numer // denom
    remainders = numer % denom
    left = total - int(counts.sum())
    order = sorted(range(n), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        counts[i] += 1
    # At least 2 each; take the surplus from the largest species (among equals: fewest real images).
    counts = np.maximum(counts, 2)
    while counts.sum() > total:
        i = max(range(n), key=lambda j: (counts[j], -real[j], -j))
        counts[i] -= 1
    return {s: int(c) for s, c in zip(SPECIES, counts, strict=True)}


def default_test_count(train_total: int) -> int:
    """Size of ``test/`` for ``train_total`` training images, in Kaggle's ratio (794 : 4,750), at least 1."""
    return max(1, round(train_total * KAGGLE_TEST_COUNT / sum(KAGGLE_TRAIN_COUNTS.values())))


# --------------------------------------------------------------------------------------------------------
# Plant geometry: each species is a list of primitives in a frame where the plant has radius about 1.
# A primitive is (kind, points (N, 2), line width in plant radii, shade 0-255):
#   "poly": a filled leaf outline; "line": a stem or thin blade; "mark" / "mark_poly": a line / a filled
#   outline on the shade layer only (midribs, veins, gloss), which shows only where there is plant.
# --------------------------------------------------------------------------------------------------------
Prim = tuple[str, np.ndarray, float, int]

_PROFILES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # half-width along the leaf axis, t in [0, 1] from base to tip
    "blade": lambda t: 0.55 + 0.45 * np.sqrt(np.clip(1 - t**2.5, 0, 1)) - 0.55 * t**6,
    "strap": lambda t: np.sqrt(np.clip(1 - t**5, 0, 1)) * (0.55 + 0.45 * np.minimum(1, t / 0.12)),
    "oval": lambda t: np.sin(np.pi * t) ** 0.75,
    "lance": lambda t: np.sin(np.pi * t**0.75) ** 0.9,
    "oblance": lambda t: np.sin(np.pi * t**1.6) ** 0.8,
    "diamond": lambda t: np.where(t < 0.4, t / 0.4, (1 - t) / 0.6) ** 0.9,
}


def _axis(base: np.ndarray, angle: float, length: float, curve: float, n: int) -> tuple[np.ndarray, ...]:
    t = np.linspace(0.0, 1.0, n)
    theta = angle + curve * t
    step = length / (n - 1)
    d = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    pts = np.empty((n, 2))
    pts[0] = base
    pts[1:] = base + np.cumsum(d[:-1] * step, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    return t, pts, normal


def _leaf(
    base: np.ndarray,
    angle: float,
    length: float,
    width: float,
    profile: str,
    curve: float = 0.0,
    teeth: int = 0,
    tooth_depth: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Outline of a leaf along a (possibly curved) axis; returns (polygon, axis points)."""
    n = max(14, 8 * teeth + 2)
    t, pts, normal = _axis(base, angle, length, curve, n)
    hw = 0.5 * width * _PROFILES[profile](t)
    if teeth:
        saw = (t * teeth + 0.5) % 1.0
        hw = hw * (1.0 - tooth_depth * (1.0 - saw) * (t > 0.12))
    left = pts + normal * hw[:, None]
    right = pts - normal * hw[:, None]
    return np.concatenate([left, right[::-1]]), pts


def _polar_leaf(
    center: np.ndarray, angle: float, radius: float, aspect: float, rfunc: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Outline r(theta) around ``center``, theta measured from ``angle``; ``aspect`` squeezes sideways."""
    th = np.linspace(0.0, 2 * np.pi, 72, endpoint=False)
    r = radius * rfunc(th)
    x, y = r * np.cos(th), r * np.sin(th) * aspect
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([center[0] + ca * x - sa * y, center[1] + sa * x + ca * y], axis=1)


def _dir(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def _spread(rng: np.random.Generator, k: int, jitter: float = 0.25) -> np.ndarray:
    """``k`` directions roughly evenly spread around the circle."""
    return rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k + rng.uniform(-jitter, jitter, k)


def _grass(
    rng: np.random.Generator,
    shade: Callable[[], int],
    k: int,
    length: tuple[float, float],
    width: tuple[float, float],
    curve: float,
    jitter: float,
    profile: str = "blade",
) -> list[Prim]:
    prims: list[Prim] = []
    for a in rng.uniform(0, 2 * np.pi, k):
        base = rng.normal(0, jitter, 2)
        poly, _ = _leaf(
            base, a, rng.uniform(*length), rng.uniform(*width), profile, rng.uniform(-curve, curve)
        )
        prims.append(("poly", poly, 0.0, shade()))
    return prims


def _black_grass(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    return _grass(rng, shade, int(rng.integers(2, 5)), (0.7, 1.0), (0.06, 0.085), 0.8, 0.04)


def _silky_bent(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    for a in rng.uniform(0, 2 * np.pi, int(rng.integers(16, 30))):
        _, pts, _ = _axis(rng.normal(0, 0.04, 2), a, rng.uniform(0.3, 0.62), rng.uniform(-1.4, 1.4), 8)
        prims.append(("line", pts, rng.uniform(0.025, 0.04), shade()))
    return prims


def _wheat(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    a = rng.uniform(0, 2 * np.pi)
    base = -0.85 * _dir(a) + rng.normal(0, 0.05, 2)
    prims: list[Prim] = []
    poly, pts = _leaf(
        base, a, rng.uniform(1.55, 1.85), rng.uniform(0.11, 0.15), "blade", rng.uniform(-0.15, 0.15)
    )
    prims.append(("poly", poly, 0.0, s := shade()))
    prims.append(("mark", pts[1:-3], 0.02, min(255, s + 25)))
    if rng.random() < 0.55:
        b = a + rng.choice([-1, 1]) * rng.uniform(0.25, 0.8)
        poly, pts = _leaf(
            base, b, rng.uniform(0.9, 1.4), rng.uniform(0.09, 0.12), "blade", rng.uniform(-0.2, 0.2)
        )
        prims.append(("poly", poly, 0.0, s := shade()))
        prims.append(("mark", pts[1:-3], 0.02, min(255, s + 25)))
    return prims


def _maize(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    k = int(rng.integers(2, 5))
    prims: list[Prim] = []
    for a in _spread(rng, k, 0.35):
        w = rng.uniform(0.24, 0.32)
        poly, pts = _leaf(
            rng.normal(0, 0.03, 2), a, rng.uniform(0.7, 1.0), w, "strap", rng.uniform(-0.3, 0.3)
        )
        prims.append(("poly", poly, 0.0, s := shade()))
        prims.append(("mark", pts[:-2], 0.22 * w, min(255, s + 50)))
    return prims


def _charlock(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    a = rng.uniform(0, 2 * np.pi)
    for ang in (a, a + np.pi + rng.uniform(-0.3, 0.3)):  # two kidney-shaped cotyledons
        rad = rng.uniform(0.3, 0.38)
        c = (0.1 + rad) * _dir(ang)
        notch = rng.uniform(0.15, 0.3)
        lobes = int(rng.integers(5, 9))

        def kidney(th: np.ndarray, notch: float = notch, lobes: int = lobes) -> np.ndarray:
            return (1 - notch * np.maximum(0, np.cos(th)) ** 6) * (1 + 0.04 * np.cos(lobes * th))

        prims.append(("line", np.stack([np.zeros(2), c]), 0.05, shade()))
        prims.append(("poly", _polar_leaf(c, ang + np.pi, rad, rng.uniform(1.05, 1.3), kidney), 0.0, shade()))
    for ang in a + np.pi / 2 + np.pi * np.arange(int(rng.integers(0, 3))) + rng.uniform(-0.3, 0.3):
        rad = rng.uniform(0.24, 0.32)
        c = (0.12 + rad) * _dir(ang)
        lobes = int(rng.integers(5, 8))
        prims.append(
            (
                "poly",
                _polar_leaf(
                    c,
                    ang,
                    rad,
                    rng.uniform(0.75, 0.95),
                    lambda th, lobes=lobes: 1 + 0.06 * np.cos(lobes * th),
                ),
                0.0,
                shade(),
            )
        )
    return prims


def _cleavers(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    whorls = [(np.zeros(2), 1.0)]
    if rng.random() < 0.6:
        d = _dir(rng.uniform(0, 2 * np.pi)) * rng.uniform(0.45, 0.6)
        prims.append(("line", np.stack([np.zeros(2), d]), 0.035, shade()))
        whorls.append((d, rng.uniform(0.45, 0.6)))
    for center, scale in whorls:
        k = int(rng.integers(6, 9))
        length = rng.uniform(0.42, 0.55) * scale
        for a in _spread(rng, k, 0.15):
            poly, pts = _leaf(
                center, a, length, rng.uniform(0.09, 0.12) * scale, "lance", rng.uniform(-0.2, 0.2)
            )
            prims.append(("poly", poly, 0.0, s := shade()))
            prims.append(("mark", pts[1:-4], 0.015, min(255, s + 25)))
    return prims


def _chickweed(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    size = rng.uniform(0.85, 1.15)

    def pair(at: np.ndarray, direction: float) -> None:
        for side in (-1, 1):
            ang = direction + side * rng.uniform(1.0, 1.5)
            poly, _ = _leaf(at, ang, rng.uniform(0.15, 0.2) * size, rng.uniform(0.1, 0.13) * size, "oval")
            prims.append(("poly", poly, 0.0, shade()))

    pair(np.zeros(2), rng.uniform(0, 2 * np.pi))
    for a in _spread(rng, int(rng.integers(2, 5)), 0.4):
        _, pts, _ = _axis(np.zeros(2), a, rng.uniform(0.5, 0.85), rng.uniform(-0.8, 0.8), 12)
        prims.append(("line", pts, 0.025, shade()))
        for i in range(3, 12, 3):
            d = pts[min(i, 11)] - pts[i - 1]
            pair(pts[min(i, 11)], math.atan2(d[1], d[0]))
    return prims


def _fat_hen(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    a = rng.uniform(0, 2 * np.pi)
    angles = [a, a + np.pi, a + np.pi / 2, a + 3 * np.pi / 2, a + np.pi / 4, a + 5 * np.pi / 4]
    k = int(rng.integers(3, 7))
    for i, ang in enumerate(angles[:k]):
        ang += rng.uniform(-0.25, 0.25)
        scale = 1.0 if i < 2 else rng.uniform(0.7, 0.95)
        base = 0.08 * _dir(ang)
        prims.append(("line", np.stack([np.zeros(2), base]), 0.04, shade()))
        poly, pts = _leaf(
            base,
            ang,
            rng.uniform(0.5, 0.65) * scale,
            rng.uniform(0.42, 0.52) * scale,
            "diamond",
            rng.uniform(-0.1, 0.1),
            teeth=int(rng.integers(0, 4)),
            tooth_depth=0.12,
        )
        prims.append(("poly", poly, 0.0, s := shade()))
        prims.append(("mark", pts[1:-3], 0.018, min(255, s + 25)))
    return prims


def _mayweed(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    for a in _spread(rng, int(rng.integers(4, 7)), 0.4):
        length = rng.uniform(0.45, 0.85)
        _, pts, normal = _axis(np.zeros(2), a, length, rng.uniform(-0.6, 0.6), 16)
        s = shade()
        prims.append(("line", pts, 0.035, s))
        twig = rng.uniform(0.12, 0.18)
        for i in range(2, 16, 1):
            side = 1 if i % 2 else -1
            d = pts[i] - pts[i - 1]
            d = d / (np.linalg.norm(d) + 1e-9)
            br = pts[i] + (0.6 * d + side * 0.8 * normal[i]) * twig * (1 - 0.5 * i / 16)
            prims.append(("line", np.stack([pts[i], br]), 0.028, s))
    return prims


def _shepherds_purse(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    k = int(rng.integers(5, 10))
    for a in _spread(rng, k, 0.3):
        poly, pts = _leaf(
            rng.normal(0, 0.02, 2),
            a,
            rng.uniform(0.55, 0.85),
            rng.uniform(0.2, 0.27),
            "oblance",
            rng.uniform(-0.3, 0.3),
            teeth=int(rng.integers(3, 6)),
            tooth_depth=0.55,
        )
        prims.append(("poly", poly, 0.0, s := shade()))
        prims.append(("mark", pts[1:-2], 0.02, min(255, s + 30)))
    return prims


def _cranesbill(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    for a in _spread(rng, int(rng.integers(3, 6)), 0.35):
        stalk = rng.uniform(0.35, 0.55)
        rad = rng.uniform(0.2, 0.27)
        c = (stalk + 0.5 * rad) * _dir(a)
        lobes = int(rng.choice([5, 7]))

        def palmate(th: np.ndarray, lobes: int = lobes) -> np.ndarray:
            return 1 - 0.62 * np.abs(np.cos(lobes * (th + np.pi) / 2)) ** 14

        prims.append(("line", np.stack([np.zeros(2), c]), 0.03, shade()))
        prims.append(("poly", _polar_leaf(c, a, rad, 1.0, palmate), 0.0, shade()))
    return prims


def _sugar_beet(rng: np.random.Generator, shade: Callable[[], int]) -> list[Prim]:
    prims: list[Prim] = []
    a = rng.uniform(0, 2 * np.pi)
    k = int(rng.integers(2, 5))
    angles = [a, a + np.pi, a + np.pi / 2, a - np.pi / 2][:k]
    for i, ang in enumerate(angles):
        ang += rng.uniform(-0.3, 0.3)
        scale = 1.0 if i < 2 else rng.uniform(0.6, 0.85)
        length, w = rng.uniform(0.7, 0.9) * scale, rng.uniform(0.3, 0.37) * scale
        base = rng.uniform(0.12, 0.2) * _dir(ang)
        prims.append(("line", np.stack([np.zeros(2), base]), 0.06, shade()))
        poly, pts = _leaf(base, ang, length, w, "oval", rng.uniform(-0.15, 0.15))
        prims.append(("poly", poly, 0.0, s := shade()))
        prims.append(("mark", pts[1:-2], 0.025, min(255, s + 30)))
        _, _, normal = _axis(base, ang, length, 0.0, 2)
        for j in (3, 5, 7, 9):  # veins, pointing forward from the midrib
            for side in (-1, 1):
                tip = (
                    pts[j]
                    + (
                        0.35 * (pts[j + 1] - pts[j]) / (np.linalg.norm(pts[j + 1] - pts[j]) + 1e-9)
                        + side * 0.7 * normal[0]
                    )
                    * 0.42
                    * w
                )
                prims.append(("mark", np.stack([pts[j], tip]), 0.014, max(0, s - 40)))
        hl = pts[5] + normal[0] * rng.uniform(-0.15, 0.15) * w
        gloss = _polar_leaf(hl, ang, 0.12 * length, 0.5, np.ones_like)  # a glossy highlight
        prims.append(("mark_poly", gloss, 0.0, min(255, s + 30)))
    return prims


_SPECIES_DRAWERS: dict[str, Callable[[np.random.Generator, Callable[[], int]], list[Prim]]] = {
    "Black-grass": _black_grass,
    "Charlock": _charlock,
    "Cleavers": _cleavers,
    "Common Chickweed": _chickweed,
    "Common wheat": _wheat,
    "Fat Hen": _fat_hen,
    "Loose Silky-bent": _silky_bent,
    "Maize": _maize,
    "Scentless Mayweed": _mayweed,
    "Shepherds Purse": _shepherds_purse,
    "Small-flowered Cranesbill": _cranesbill,
    "Sugar beet": _sugar_beet,
}
if set(_SPECIES_DRAWERS) != set(SPECIES):  # pragma: no cover - guards edits of config.SPECIES
    raise RuntimeError("every species in config.SPECIES needs a drawing function")


def _render(
    prims: list[Prim],
    size: tuple[int, int],
    center: tuple[float, float],
    radius: float,
    rotation: float,
    mirror: bool,
    with_shade: bool = True,
) -> tuple[Image.Image, Image.Image | None]:
    """Draw the primitives into an alpha (coverage) layer and a shade layer of ``size`` pixels."""
    alpha = Image.new("L", size, 0)
    da = ImageDraw.Draw(alpha)
    shade = Image.new("L", size, 0) if with_shade else None
    ds = ImageDraw.Draw(shade) if shade is not None else None
    c, s = math.cos(rotation) * radius, math.sin(rotation) * radius
    flip = -1.0 if mirror else 1.0
    for kind, pts, width, value in prims:
        # rotate, mirror, scale and place (element-wise: no BLAS call in worker processes)
        out = np.empty_like(pts)
        out[:, 0] = pts[:, 0] * c - pts[:, 1] * s + center[0]
        out[:, 1] = flip * (pts[:, 0] * s + pts[:, 1] * c) + center[1]
        xy = out.ravel().tolist()
        if kind == "poly":
            da.polygon(xy, fill=255)
            if ds is not None:
                ds.polygon(xy, fill=value, outline=max(0, value - 35))
        elif kind == "line":
            w = max(1, round(width * radius))
            da.line(xy, fill=255, width=w, joint="curve")
            if ds is not None:
                ds.line(xy, fill=value, width=w, joint="curve")
        elif ds is not None and kind == "mark":
            ds.line(xy, fill=value, width=max(1, round(width * radius)))
        elif ds is not None and kind == "mark_poly":
            ds.polygon(xy, fill=value)
    return alpha, shade


# --------------------------------------------------------------------------------------------------------
# The picture
# --------------------------------------------------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV (h in degrees) to an RGB float array in [0, 1]."""
    h = (h % 360) / 60
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    return np.array([r, g, b]) + (v - c)


def _noise(rng: np.random.Generator, width: int, height: int, cell: float) -> np.ndarray:
    """Smooth noise, std about 1: random values on a grid of ``cell`` pixels, upscaled bilinearly."""
    gw, gh = max(2, round(width / cell) + 2), max(2, round(height / cell) + 2)
    grid = Image.fromarray(rng.standard_normal((gh, gw), dtype=np.float32))  # mode "F"
    return np.asarray(grid.resize((width, height), Image.Resampling.BILINEAR))


def _soil(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Brown soil with clods, gravel and, sometimes, a tray edge or a marker stick."""
    m = min(width, height)
    base = _hsv(rng.uniform(18, 38), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.42))
    shade = (
        1
        + 0.18 * _noise(rng, width, height, m / 5)
        + 0.12 * _noise(rng, width, height, max(2.0, m / 30))
        + 0.07 * rng.standard_normal((height, width), dtype=np.float32)
    )
    warm = 0.06 * _noise(rng, width, height, m / 4)  # patches of redder / greyer soil
    rgb = base[None, None, :] * shade[..., None]
    rgb[..., 0] *= 1 + warm
    rgb[..., 2] *= 1 - warm
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    # gravel: from a few stones to a dense layer
    density = rng.choice([rng.uniform(0.0, 0.05), rng.uniform(0.05, 0.35)], p=[0.35, 0.65])
    mean_r = rng.uniform(0.012, 0.035) * m + 0.8
    n = int(density * width * height / (math.pi * mean_r**2))
    if n:
        xs, ys = rng.uniform(0, width, n), rng.uniform(0, height, n)
        rs = mean_r * rng.lognormal(0, 0.35, n)
        asp = rng.uniform(0.6, 1.0, n)
        tone = rng.uniform(0.42, 0.78, n)
        tint = rng.uniform(0.0, 0.07, n)  # grey to beige
        cols = np.clip(np.stack([tone + tint, tone + 0.3 * tint, tone - 1.2 * tint], axis=1) * 255, 0, 255)
        cols = cols.astype(int).tolist()
        lights = np.minimum(255, np.array(cols) + 22).tolist()
        dark = tuple(int(c) for c in base * 255 * 0.45)
        dx, dy = rng.uniform(-1, 1, 2) * 0.3
        for x, y, r, a, col, lit in zip(
            xs.tolist(), ys.tolist(), rs.tolist(), asp.tolist(), cols, lights, strict=True
        ):
            rx, ry = r, r * a
            draw.ellipse([x - rx + dx * r, y - ry + dy * r, x + rx + dx * r, y + ry + dy * r], fill=dark)
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=tuple(col))
            if r > 2.5:
                draw.ellipse(
                    [x - 0.55 * rx - dx * r * 0.4, y - 0.55 * ry - dy * r * 0.4, x + 0.3 * rx, y + 0.3 * ry],
                    fill=tuple(lit),
                )
    if rng.random() < 0.12:  # the edge of the black or white tray
        side = int(rng.integers(4))
        band = rng.uniform(0.04, 0.14) * m
        v = int(rng.choice([rng.integers(10, 45), rng.integers(190, 245)]))
        box = [
            (0, 0, band, height),
            (width - band, 0, width, height),
            (0, 0, width, band),
            (0, height - band, width, height),
        ][side]
        draw.rectangle(box, fill=(v, v, v))
    if rng.random() < 0.06:  # a marker stick poking into the picture
        a = rng.uniform(0, 2 * np.pi)
        p0 = np.array([width / 2, height / 2]) - 0.75 * m * _dir(a) + rng.normal(0, 0.2 * m, 2)
        p1 = p0 + rng.uniform(0.3, 0.6) * m * _dir(a)
        v = int(rng.integers(200, 250))
        draw.line([*p0, *p1], fill=(v, v, int(v * rng.uniform(0.75, 1.0))), width=max(2, round(0.05 * m)))
    return img


def draw_seedling(species: str, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """One RGB picture, ``width`` x ``height``, of a seedling of ``species`` on soil/gravel, seen from above.

    Only the plant's shape depends on ``species``; soil, light, plant colour, size and position are drawn
    from the same distributions for every species.
    """
    if species not in _SPECIES_DRAWERS:
        raise ValueError(f"unknown species {species!r}; expected one of {SPECIES}")
    m = min(width, height)
    # Appearance first (same draws for every species), then the shape.
    soil = _soil(rng, width, height)
    green = _hsv(rng.uniform(70, 130), rng.uniform(0.4, 0.8), rng.uniform(0.42, 0.78))
    base_shade = rng.uniform(170, 215)
    coverage = math.exp(rng.uniform(math.log(0.07), math.log(0.45)))
    rotation, mirror = rng.uniform(0, 2 * np.pi), bool(rng.random() < 0.5)
    center = (width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65))
    light = rng.uniform(-1, 1, 2)
    gain = rng.uniform(0.75, 1.25)
    slope = rng.uniform(0.0, 0.35)
    shadow_off = rng.uniform(0.005, 0.025) * m

    def shade() -> int:
        return int(np.clip(base_shade + rng.normal(0, 10), 0, 255))

    prims = _SPECIES_DRAWERS[species](rng, shade)
    # Scale the plant so that it covers about `coverage` of the picture (within sensible bounds).
    probe, _ = _render(prims, (96, 96), (48.0, 48.0), 40.0, 0.0, False, with_shade=False)
    area = max(1e-3, np.asarray(probe, dtype=np.float32).sum() / 255 / 40.0**2)  # in plant radii squared
    radius = float(np.clip(math.sqrt(coverage * width * height / area), 0.25 * m, 0.6 * m))
    ss = 2 if max(width, height) <= 300 else 1  # supersample small pictures for smooth edges
    alpha, shade_img = _render(
        prims, (width * ss, height * ss), (center[0] * ss, center[1] * ss), radius * ss, rotation, mirror
    )
    if ss > 1:
        alpha, shade_img = alpha.reduce(ss), shade_img.reduce(ss)
    shadow = alpha.transform(
        alpha.size, Image.Transform.AFFINE, (1, 0, -light[0] * shadow_off, 0, 1, -light[1] * shadow_off)
    )
    shadow = shadow.filter(ImageFilter.BoxBlur(max(1.0, 0.012 * m)))

    a = np.asarray(alpha, dtype=np.float32)[..., None] / 255
    sh = np.asarray(shadow, dtype=np.float32)[..., None] / 255
    plant = green[None, None, :] * (np.asarray(shade_img, dtype=np.float32)[..., None] / 200)
    out = np.asarray(soil, dtype=np.float32) / 255 * (1 - 0.45 * sh)
    out = out * (1 - a) + plant * a
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = gain * (1 + slope * (light[0] * (xx / width - 0.5) + light[1] * (yy / height - 0.5)))
    out = out * ramp[..., None]
    return Image.fromarray(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8))


def _random_size(rng: np.random.Generator) -> tuple[int, int]:
    side = math.exp(rng.uniform(math.log(MIN_SIDE), math.log(MAX_SIDE)))
    if rng.random() < SQUARE_FRACTION:
        w = h = round(side)
    else:
        ratio = math.exp(rng.uniform(math.log(0.75), math.log(4 / 3)))
        w, h = round(side), round(side * ratio)
        if rng.random() < 0.5:
            w, h = h, w
    return int(np.clip(w, MIN_SIDE, MAX_SIDE)), int(np.clip(h, MIN_SIDE, MAX_SIDE))


# --------------------------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------------------------
Job = tuple[str, str, tuple[int, ...]]  # (path, species, entropy for the image's generator)


def _write_one(job: Job) -> None:
    path, species, entropy = job
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    width, height = _random_size(rng)
    rgba = rng.random() < RGBA_FRACTION
    img = draw_seedling(species, rng, width, height)
    if rgba:
        img = img.convert("RGBA")
    img.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def _unique_names(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_NAMES]))
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        for v in rng.integers(0, 16**_NAME_DIGITS, size=n - len(names)).tolist():
            name = f"{v:0{_NAME_DIGITS}x}"
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def _mp_context() -> multiprocessing.context.BaseContext:
    """Processes by "fork" on Linux (works in scripts without a ``__main__`` guard; the workers use only
    NumPy and Pillow), by the platform's default ("spawn") elsewhere."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def make_synthetic_seedlings(
    root: str | Path,
    per_class: int = 40,
    test_count: int | None = None,
    seed: int = 42,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Write a synthetic Plant Seedlings set: ``root/train/<species>/<id>.png`` and ``root/test/<id>.png``.

    ``per_class`` is the average number of images per species (the counts follow the real set's
    proportions, see :func:`synthetic_class_counts`); ``test_count`` defaults to Kaggle's test : train
    ratio. File names are 9 random lower-case hex digits, unique over the whole set. Nothing else is
    written. Raises ``FileExistsError`` if ``root/train`` or ``root/test`` already holds files.

    The same arguments give byte-identical files, whatever ``workers`` is. ``workers > 1`` runs that many
    processes ("fork" on Linux; on macOS and Windows, "spawn": in a script, call this under
    ``if __name__ == "__main__":``).

    Speed: about 85 images/s per core on a 2-core laptop CPU (pictures 50-500 px, PNG compress level 1,
    about 75 kB each); 100,000 images take about 10 minutes with ``workers=2`` and about 7.5 GB of disk.

    Returns a summary: ``{"root", "seed", "per_class", "train": {species: count}, "test": int,
    "test_labels": {file name: species}}`` (the test labels are returned, never written).
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    root = Path(root)
    counts = synthetic_class_counts(per_class)
    n_train = sum(counts.values())
    n_test = default_test_count(n_train) if test_count is None else int(test_count)
    if n_test < 0:
        raise ValueError(f"test_count must be non-negative, got {test_count}")
    for sub in ("train", "test"):
        if _has_files(root / sub):
            raise FileExistsError(f"{root / sub} already contains files; remove it or choose another root")

    names = iter(_unique_names(seed, n_train + n_test))
    jobs: list[Job] = []
    for si, species in enumerate(SPECIES):
        folder = root / "train" / species
        folder.mkdir(parents=True, exist_ok=True)
        jobs += [
            (str(folder / f"{next(names)}.png"), species, (seed, _SPLIT_TRAIN, si, i))
            for i in range(counts[species])
        ]
    (root / "test").mkdir(parents=True, exist_ok=True)
    p = np.array([counts[s] for s in SPECIES], dtype=np.float64)
    test_rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_TEST_SPECIES]))
    test_species = test_rng.choice(len(SPECIES), size=n_test, p=p / p.sum()).tolist()
    test_labels: dict[str, str] = {}
    for i, si in enumerate(test_species):
        name = f"{next(names)}.png"
        test_labels[name] = SPECIES[si]
        jobs.append((str(root / "test" / name), SPECIES[si], (seed, _SPLIT_TEST, si, i)))

    bar = tqdm(total=len(jobs), disable=not progress, unit="img", desc="synthetic seedlings")
    if workers > 1 and len(jobs) > 1:
        chunk = max(1, min(64, len(jobs) // (workers * 8)))
        with ProcessPoolExecutor(workers, mp_context=_mp_context()) as pool:
            for _ in pool.map(_write_one, jobs, chunksize=chunk):
                bar.update()
    else:
        for job in jobs:
            _write_one(job)
            bar.update()
    bar.close()
    return {
        "root": str(root),
        "seed": seed,
        "per_class": per_class,
        "train": counts,
        "test": n_test,
        "test_labels": test_labels,
    }
