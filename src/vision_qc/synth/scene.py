"""Synthetic windshield scenes with exact ground truth.

A scene is built in two steps. :func:`sample_scene` draws every random choice (part shape,
bead, defects, nuisances) from ``rng`` into a :class:`SceneSpec`, plain data. A
:class:`SceneRenderer` turns the spec into layers once (the part without the bead, the bead
with its coverage and shading, the arc length of every bead pixel) and composes frames from
them: a whole scene, or the bead dispensed up to some arc length (the dispensing clip).

Truth. The bead's footprint is defined per station of the recipe path, as an interval
``[left, right]`` along the station normal: the union of a band (centre offset and half
width per station) and discs (the rounded ends at a gap, an excess blob, the end caps of an
open path). Rendering gives every pixel the fraction of its area inside that footprint (from
the signed distance and direction of the nearest edge), so integrating the rendered coverage
across the path gives the footprint width back (tested to ≤ 0.02 px). Truth defects are the
stretches where the true width or offset breaks the recipe's limits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property

import cv2
import numpy as np
from scipy.special import ndtri

from ..geometry import Stations, build_stations, rigid_transform
from ..recipe import Recipe, recipe_from_dict
from ..results import Defect
from .coords import band_coords, station_curvature

__all__ = ["SceneSpec", "DefectSpec", "Nuisances", "SceneRenderer", "Scene", "PRESETS",
           "DEFECT_KINDS", "sample_scene", "sample_shape", "render_scene", "windshield_path",
           "bead_footprint", "truth_defects"]

PRESETS = ("clean", "normal", "hard")
DEFECT_KINDS = ("gap", "thin", "wide", "blob", "offset", "overlap_gap")


@dataclass(frozen=True)
class DefectSpec:
    """One inserted defect, centred at ``center_mm`` along the path.

    kind : gap | thin | wide | blob | offset | overlap_gap (a gap across the path's start).
    length_mm : length of the plateau (the gap itself, for gaps; the blob's diameter).
    ramp_mm : length of the linear transition on each side (thin, wide, offset).
    value : width factor (thin, wide), offset in mm (offset), unused for gaps and blobs.
    """

    kind: str
    center_mm: float
    length_mm: float
    ramp_mm: float = 0.0
    value: float = 0.0


@dataclass(frozen=True)
class Nuisances:
    """Optics and sensor effects of a scene (see :meth:`SceneRenderer.sensor`); zero: none."""

    noise_sigma: float = 0.0          # grey levels, read noise (shot noise added on top)
    shot_gain: float = 0.0            # variance per grey level of signal
    blur_sigma_px: float = 0.0
    gradient: tuple[float, float] = (0.0, 0.0)   # relative change per image width, x and y
    vignetting: float = 0.0           # relative fall-off at the corners
    glare: tuple[tuple[float, float, float, float, float], ...] = ()  # (x, y, angle_deg, width_px, gain)
    dust: int = 0                     # number of specks
    jpeg_quality: int = 0             # 0: lossless
    bubbles: int = 0                  # voids inside the bead (not defects)


@dataclass(frozen=True)
class SceneSpec:
    """Every choice that makes a scene. Plain data; :func:`sample_scene` fills it from an rng."""

    size_wh: tuple[int, int] = (2048, 1536)
    preset: str = "clean"
    mm_per_px: float = 0.8
    shape: tuple[float, float, float, float, float] = (0.41, 0.40, 0.18, 4.5, 0.05)
    start_angle_deg: float = 90.0
    span_deg: float = 360.0           # 360: the closed loop; less: an open stretch of it
    width_mm: float = 10.0
    width_tol_mm: float = 2.5
    max_offset_mm: float = 4.0
    min_defect_mm: float = 3.0
    search_mm: float = 14.0
    polarity: str = "bright"
    levels: tuple[float, float, float, float] = (110.0, 70.0, 38.0, 150.0)  # fixture, glass, frit, bead
    contact_angle_deg: float = 50.0
    specular: float = 40.0
    light_tilt_deg: float = 20.0
    light_dir_deg: float = -60.0
    inset_mm: float = 16.0
    frit_mm: float = 30.0
    fade_mm: float = 8.0
    wobble_width: float = 0.02
    wobble_offset_mm: float = 0.15
    overlap_mm: float = 20.0
    defects: tuple[DefectSpec, ...] = ()
    nuisances: Nuisances = field(default_factory=Nuisances)
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)   # dx_px, dy_px, angle_deg
    color: bool = False
    seed: int = 0

    @property
    def closed(self) -> bool:
        """Whether the bead runs round the whole part (``span_deg`` 360) or along a stretch."""
        return self.span_deg >= 360.0

    def recipe(self) -> Recipe:
        """The recipe for this scene in the contract format (nominal path, no pose)."""
        pts = windshield_path(self.size_wh, self.shape, self.start_angle_deg, span_deg=self.span_deg)
        kind = "windshield" if self.closed else "windshield-open"
        return recipe_from_dict({
            "name": f"synthetic-{kind}-{self.size_wh[0]}x{self.size_wh[1]}",
            "image_size": list(self.size_wh), "mm_per_px": self.mm_per_px,
            "polarity": self.polarity,
            "path": {"closed": self.closed, "points": pts.round(3).tolist()},
            "bead": {"width_mm": self.width_mm, "width_tol_mm": self.width_tol_mm,
                     "max_offset_mm": self.max_offset_mm, "min_defect_mm": self.min_defect_mm,
                     "search_mm": self.search_mm},
            "align": False,
        }, source="<generated>")


def windshield_path(size_wh, shape, start_angle_deg: float = 90.0, *, step_px: float = 8.0,
                    span_deg: float = 360.0) -> np.ndarray:
    """The nominal bead centre line of a windshield, as points about ``step_px`` apart.

    A superellipse (rounded corners) made narrower towards the top (the trapezoid of a
    windshield) whose top and bottom edges bow downwards (a bent glass seen from above).

    Parameters
    ----------
    size_wh : (int, int)
        Image width and height, px; the part is centred in the image.
    shape : (half_width_frac, half_height_frac, taper, exponent, bow)
        Half axes as fractions of the image size, the narrowing towards the top, the
        superellipse exponent (corner roundness) and the bow of the long edges.
    start_angle_deg : float
        Where the path starts, as the superellipse's parameter angle (image coordinates,
        y down: 0° right, 90° bottom middle). The path runs clockwise on screen from there,
        so the normals point into the part.
    step_px : float, keyword-only
        Approximate spacing of the returned points, px.
    span_deg : float, keyword-only
        Parameter angle the path covers: 360 gives the closed loop (its first point is not
        repeated at the end); less gives an open stretch, both end points included.

    Returns
    -------
    (N, 2) float64
        Points x, y in px, in dispensing order.
    """
    if not 0 < span_deg <= 360:
        raise ValueError(f"span_deg must be in (0, 360]; got {span_deg!r}")
    w, h = size_wh
    fa, fb, taper, expo, bow = shape
    a, b = fa * w, fb * h
    cx, cy = w / 2.0, h / 2.0
    closed = span_deg >= 360
    n_dense = 20000 if closed else int(20000 * span_deg / 360) + 1
    th = np.deg2rad(start_angle_deg) + np.linspace(0, np.deg2rad(span_deg), n_dense, endpoint=not closed)
    c, s = np.cos(th), np.sin(th)
    x0 = a * np.sign(c) * np.abs(c) ** (2 / expo)
    y0 = b * np.sign(s) * np.abs(s) ** (2 / expo)
    x = x0 * (1 - taper * (1 - y0 / b) / 2)
    y = y0 + bow * b * (1 - (x0 / a) ** 2) - bow * b / 2
    dense = np.stack([cx + x, cy + y], axis=1)
    if closed:
        dense = np.vstack([dense, dense[:1]])
    seg = np.hypot(*np.diff(dense, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(arc[-1] // step_px), 1 if not closed else 3)
    at = np.arange(n) * (arc[-1] / n) if closed else np.linspace(0.0, arc[-1], n + 1)
    return np.stack([np.interp(at, arc, dense[:, 0]), np.interp(at, arc, dense[:, 1])], axis=1)


# ----------------------------------------------------------------------------------------
# Sampling


def _preset_nuisances(preset: str, size_wh, rng: np.random.Generator) -> tuple[Nuisances, dict]:
    w, h = size_wh
    u = rng.uniform
    if preset == "clean":
        return Nuisances(noise_sigma=1.0, blur_sigma_px=0.6), {}
    def glare(n, gain_range):
        return tuple((float(u(0.1, 0.9) * w), float(u(0.1, 0.9) * h), float(u(0, 180)),
                      float(u(20, 90)), float(u(*gain_range))) for _ in range(n))
    if preset == "normal":
        nz = Nuisances(noise_sigma=float(u(1.5, 3.0)), shot_gain=0.05,
                       blur_sigma_px=float(u(0.7, 1.2)),
                       gradient=(float(u(-0.15, 0.15)), float(u(-0.15, 0.15))),
                       vignetting=float(u(0.05, 0.2)), glare=glare(int(rng.integers(0, 3)), (15, 45)),
                       dust=int(rng.integers(20, 80)),
                       jpeg_quality=int(rng.choice([0, 92])), bubbles=int(rng.integers(0, 3)))
        return nz, {}
    if preset == "hard":
        nz = Nuisances(noise_sigma=float(u(3.0, 5.0)), shot_gain=0.1,
                       blur_sigma_px=float(u(1.0, 1.7)),
                       gradient=(float(u(-0.3, 0.3)), float(u(-0.3, 0.3))),
                       vignetting=float(u(0.15, 0.35)), glare=glare(int(rng.integers(1, 4)), (30, 90)),
                       dust=int(rng.integers(80, 250)),
                       jpeg_quality=int(rng.choice([0, 80, 88])), bubbles=int(rng.integers(2, 8)))
        return nz, {"low_contrast": bool(rng.random() < 0.5)}
    raise ValueError(f"preset must be one of {PRESETS}; got {preset!r}")


def _sample_defects(rng, length_mm: float, spec_kw: dict, kinds, n_defects: int) -> tuple[DefectSpec, ...]:
    w = spec_kw["width_mm"]
    max_off = spec_kw["max_offset_mm"]
    defects: list[DefectSpec] = []
    taken: list[tuple[float, float]] = []
    for _ in range(n_defects):
        kind = str(rng.choice(kinds))
        for _attempt in range(50):
            if kind == "gap":
                d = DefectSpec("gap", 0, float(rng.uniform(6, 40)))
            elif kind == "overlap_gap":
                d = DefectSpec("overlap_gap", 0, float(rng.uniform(6, 25)))
            elif kind == "thin":
                d = DefectSpec("thin", 0, float(rng.uniform(8, 50)), float(rng.uniform(3, 15)),
                               float(rng.uniform(0.4, 0.6)))
            elif kind == "wide":
                d = DefectSpec("wide", 0, float(rng.uniform(8, 50)), float(rng.uniform(3, 15)),
                               float(rng.uniform(1.45, 1.8)))
            elif kind == "blob":
                d = DefectSpec("blob", 0, float(rng.uniform(1.6, 2.4) * w))
            elif kind == "offset":
                d = DefectSpec("offset", 0, float(rng.uniform(10, 60)), float(rng.uniform(5, 20)),
                               float(rng.choice([-1, 1]) * rng.uniform(1.6, 2.2) * max_off))
            else:
                raise ValueError(f"unknown defect kind {kind!r}; expected one of {DEFECT_KINDS}")
            half = d.length_mm / 2 + d.ramp_mm + w
            if kind == "overlap_gap":
                center = float(rng.uniform(-d.length_mm / 3, d.length_mm / 3)) % length_mm
            else:
                # keep ordinary defects clear of the start/stop overlap zone
                center = float(rng.uniform(half + 40, length_mm - half - 40))
            lo, hi = center - half - 25, center + half + 25
            def clash(a, b):
                for t0, t1 in taken:
                    for shift in (-length_mm, 0.0, length_mm):
                        if a < t1 + shift and b > t0 + shift:
                            return True
                return False
            if not clash(lo, hi):
                taken.append((lo, hi))
                defects.append(DefectSpec(d.kind, center, d.length_mm, d.ramp_mm, d.value))
                break
    return tuple(defects)


# Where an open path (``open_path=True``) runs: from low on the right side, round the
# bottom-right corner, along the bottom edge, round the bottom-left corner (parameter angles).
OPEN_START_DEG = 20.0
OPEN_SPAN_DEG = 140.0
# Width of the part in mm: the scale follows from how wide the part is drawn.
PART_WIDTH_MM = 1400.0


def sample_shape(rng=None) -> tuple[float, float, float, float, float]:
    """Draw a windshield outline ``(half_width_frac, half_height_frac, taper, exponent, bow)``.

    See :func:`windshield_path`. Scenes that share a shape, an image size, a polarity, a bead
    width and ``open_path`` share one recipe.
    """
    rng = np.random.default_rng(rng)
    return (float(rng.uniform(0.39, 0.42)), float(rng.uniform(0.37, 0.40)),
            float(rng.uniform(0.12, 0.22)), float(rng.uniform(3.8, 5.5)), float(rng.uniform(0.02, 0.07)))


def sample_scene(rng=None, *, preset: str = "normal", size_wh=(2048, 1536), ng_fraction: float = 0.6,
                 defect_kinds=("gap", "thin", "wide", "blob", "offset", "overlap_gap"),
                 max_defects: int = 2, pose: bool = False, max_shift_px: float = 40.0,
                 max_angle_deg: float = 3.0, polarity: str | None = None, color: bool = False,
                 width_mm: float = 10.0, open_path: bool = False,
                 shape: tuple[float, float, float, float, float] | None = None) -> SceneSpec:
    """Draw a random scene specification.

    Parameters
    ----------
    rng : int or numpy.random.Generator or None
        The only source of randomness (``np.random.default_rng(rng)``).
    preset : {"clean", "normal", "hard"}
        Difficulty: how much noise, blur, glare, dust, compression and contrast loss.
    size_wh : (int, int)
        Image width and height, px. The part is always 1400 mm wide, so the scale
        (``mm_per_px``, about 1400 / (0.8 × width)) follows from the width.
    ng_fraction : float
        Probability that the part carries at least one defect.
    defect_kinds : sequence of str
        Kinds to draw defects from (:data:`DEFECT_KINDS`); ``overlap_gap`` is ignored on an
        open path, which has no start/stop overlap.
    max_defects : int
        An NG part carries 1 to ``max_defects`` defects.
    pose : bool
        Shift (up to ``max_shift_px``) and turn (up to ``max_angle_deg``) the part on its fixture.
    polarity : {"bright", "dark"} or None
        None draws one (the hard preset draws low-contrast dark beads on dark frit too).
    color : bool
        Render a BGR colour image (tinted glass) instead of mono8.
    width_mm : float
        Nominal bead width; the recipe's tolerances scale with it.
    open_path : bool
        False: the bead runs round the whole part (a windshield, ``path.closed: true``).
        True: it runs along an open stretch, the bottom edge and both bottom corners (a body
        panel's sealer run, ``path.closed: false``), with rounded ends that are not defects.
    shape : tuple of 5 floats or None
        The part's outline (see :func:`sample_shape`); None draws one. Fix it, with
        ``size_wh``, ``polarity``, ``width_mm`` and ``open_path``, for scenes that must share
        one recipe.

    Returns
    -------
    SceneSpec
    """
    rng = np.random.default_rng(rng)
    seed = int(rng.integers(0, 2**31 - 1))
    w, h = (int(v) for v in size_wh)
    if polarity not in (None, "bright", "dark"):
        raise ValueError(f"polarity must be 'bright', 'dark' or None; got {polarity!r}")
    kinds = [str(k) for k in defect_kinds if not (open_path and k == "overlap_gap")]
    unknown = sorted(set(kinds) - set(DEFECT_KINDS))
    if unknown:
        raise ValueError(f"defect_kinds: unknown kind(s) {unknown}; expected some of {DEFECT_KINDS}")
    if not kinds and ng_fraction > 0:
        raise ValueError(f"defect_kinds leaves no kind to draw from (open path: {open_path}); "
                         f"got {tuple(defect_kinds)!r}")
    nz, extra = _preset_nuisances(preset, (w, h), rng)
    shape = sample_shape(rng) if shape is None else tuple(float(v) for v in shape)
    if len(shape) != 5:
        raise ValueError(f"shape must hold 5 numbers; got {shape!r}")
    mm_per_px = round(PART_WIDTH_MM / (2 * shape[0] * w), 4)
    start_deg, span_deg = (OPEN_START_DEG, OPEN_SPAN_DEG) if open_path else (90.0, 360.0)
    pol = polarity or str(rng.choice(["bright", "dark"]))
    fixture = float(rng.uniform(95, 130))
    glass = float(rng.uniform(55, 85))
    if pol == "bright":
        frit = float(rng.uniform(30, 45))
        bead = frit + float(rng.uniform(70, 120))
        spec = float(rng.uniform(20, 50))
    else:
        frit = float(rng.uniform(55, 75))
        bead = frit - float(rng.uniform(35, 50))
        spec = float(rng.uniform(10, 25))
    if extra.get("low_contrast"):
        frit = float(rng.uniform(28, 40))
        if pol == "bright":
            bead, spec = frit + float(rng.uniform(14, 22)), float(rng.uniform(5, 12))
        else:
            bead, spec = frit - float(rng.uniform(14, 20)), float(rng.uniform(3, 8))
    elif preset == "normal" and rng.random() < 0.3:
        # reduced contrast, well above the noise
        bead = frit + 0.55 * (bead - frit)
    kw = dict(width_mm=float(width_mm), width_tol_mm=round(0.25 * width_mm, 3),
              max_offset_mm=round(0.4 * width_mm, 3), min_defect_mm=3.0)
    kw["search_mm"] = round(kw["width_mm"] / 2 + kw["width_tol_mm"] / 2 + 2.6 * kw["max_offset_mm"], 3)
    pts = windshield_path((w, h), shape, start_deg, span_deg=span_deg)
    if not open_path:
        pts = np.vstack([pts, pts[:1]])
    length_mm = float(np.sum(np.hypot(*np.diff(pts, axis=0).T))) * mm_per_px
    n_def = int(rng.integers(1, max_defects + 1)) if rng.random() < ng_fraction else 0
    defects = _sample_defects(rng, length_mm, kw, kinds, n_def) if n_def else ()
    part = dict(
        contact_angle_deg=float(rng.uniform(40, 65)),
        specular=spec, light_tilt_deg=float(rng.uniform(5, 30)),
        light_dir_deg=float(rng.uniform(0, 360)), inset_mm=float(rng.uniform(14, 18)),
        frit_mm=float(rng.uniform(26, 40)), fade_mm=float(rng.uniform(5, 12)),
        wobble_width=float(rng.uniform(0.01, 0.03)), wobble_offset_mm=float(rng.uniform(0.05, 0.25)),
        overlap_mm=float(rng.uniform(10, 30)))
    # the pose is drawn last, so that the same seed with and without ``pose`` gives the same
    # part, light and defects, only moved: "as good as without pose" compares like with like
    pose_t = (0.0, 0.0, 0.0)
    if pose:
        pose_t = (float(rng.uniform(-max_shift_px, max_shift_px)),
                  float(rng.uniform(-max_shift_px, max_shift_px)),
                  float(rng.uniform(-max_angle_deg, max_angle_deg)))
    return SceneSpec(
        size_wh=(w, h), preset=preset, mm_per_px=mm_per_px, shape=shape,
        start_angle_deg=start_deg, span_deg=span_deg, polarity=pol,
        levels=(fixture, glass, frit, bead), defects=defects, nuisances=nz, pose=pose_t,
        color=bool(color), seed=seed, **part, **kw)


# ----------------------------------------------------------------------------------------
# Truth: the bead footprint per station


def _ramp(delta: np.ndarray, half_plateau: float, ramp: float) -> np.ndarray:
    """1 on the plateau, linear to 0 over ``ramp`` on each side."""
    a = np.abs(delta)
    if ramp <= 0:
        return (a <= half_plateau).astype(np.float64)
    return np.clip((half_plateau + ramp - a) / ramp, 0.0, 1.0)


def _smooth_noise(rng, n: int, corr: float) -> np.ndarray:
    """Periodic smooth noise of unit standard deviation, correlation length ``corr`` samples."""
    k = max(int(n / max(corr, 1.0)), 4)
    coarse = rng.standard_normal(k)
    x = np.arange(n) * (k / n)
    xp = np.arange(k + 1)
    fine = np.interp(x, xp, np.append(coarse, coarse[0]))
    ker = int(max(corr / 2, 1))
    fine = np.convolve(np.concatenate([fine[-ker:], fine, fine[:ker]]), np.ones(ker) / ker, "same")[ker:-ker]
    return (fine - fine.mean()) / (fine.std() + 1e-12)


@dataclass(frozen=True, eq=False)
class Footprint:
    """The bead's footprint in path coordinates, px.

    Band: centre ``center_px`` and half width ``half_px`` per station (NaN half width where
    the band is cut: gaps and their rounded ends). Discs: rows ``(s, t, r)``.
    Truth per station: ``left_px``/``right_px`` (NaN where no bead crosses the station).
    """

    center_px: np.ndarray
    half_px: np.ndarray
    discs: np.ndarray
    cut: np.ndarray           # rows (s0, s1): arc intervals where the band is cut
    left_px: np.ndarray
    right_px: np.ndarray

    @property
    def width_px(self) -> np.ndarray:
        return np.nan_to_num(self.right_px - self.left_px, nan=0.0)

    @property
    def offset_px(self) -> np.ndarray:
        return 0.5 * (self.left_px + self.right_px)


def _wrap(delta, length, closed):
    return (delta + length / 2) % length - length / 2 if closed else delta


def bead_footprint(spec: SceneSpec, stations: Stations) -> Footprint:
    """The true footprint of the bead of ``spec`` at the given (nominal, part-frame) stations.

    Parameters
    ----------
    spec : SceneSpec
        The scene; its seed fixes the slow wobble of the bead's width and centre.
    stations : Stations
        The recipe path's stations (closed or open), part frame, px.

    Returns
    -------
    Footprint
        Per station (length N arrays, px): band centre and half width, and the truth
        ``left_px``/``right_px``; plus the discs (gap ends, blobs, an open path's end caps)
        and the arc intervals where the band is cut.
    """
    rng = np.random.default_rng(spec.seed)
    closed = stations.closed
    k = 1.0 / spec.mm_per_px
    s = stations.arc_px
    length = stations.length_px
    n = len(s)
    corr = 60.0 * k / stations.spacing_px
    half = 0.5 * spec.width_mm * k * (1 + spec.wobble_width * _smooth_noise(rng, n, corr))
    center = spec.wobble_offset_mm * k * _smooth_noise(rng, n, corr * 1.5)
    if closed:
        # the good start/stop overlap: a little more material where the loop closes
        ov = _ramp(_wrap(s, length, True), spec.overlap_mm * k / 2, 5 * k)
        half = half * (1 + 0.08 * ov)
    discs, cuts = [], []
    for d in spec.defects:
        delta = _wrap(s - d.center_mm * k, length, closed)
        hp, rp = d.length_mm * k / 2, d.ramp_mm * k
        if d.kind == "thin":
            half = half * (1 - (1 - d.value) * _ramp(delta, hp, rp))
        elif d.kind == "wide":
            half = half * (1 + (d.value - 1) * _ramp(delta, hp, rp))
        elif d.kind == "offset":
            center = center + d.value * k * _ramp(delta, hp, rp)

    def on_path(arc):
        return arc % length if closed else arc

    def at(arc, values):
        return float(_interp_path(arc, s, values, length, closed))

    for d in spec.defects:
        c_arc = d.center_mm * k
        if d.kind in ("gap", "overlap_gap"):
            hp = d.length_mm * k / 2
            for sign in (-1, 1):
                # a rounded end: a disc of the local half width whose tip is the gap's end
                end = c_arc + sign * hp
                r = at(end + sign * at(end, half), half)
                sc = on_path(end + sign * r)
                discs.append((sc, at(sc, center), r))
            r0, r1 = discs[-2][2], discs[-1][2]
            cuts.append((on_path(c_arc - hp - r0), on_path(c_arc + hp + r1)))
        elif d.kind == "blob":
            sc = on_path(c_arc)
            discs.append((sc, at(sc, center), d.length_mm * k / 2))
    if not closed:
        # rounded end caps beyond both ends of an open path: good bead, not defects
        discs += [(0.0, float(center[0]), float(half[0])), (length, float(center[-1]), float(half[-1]))]
    discs_a = np.array(discs, dtype=np.float64).reshape(-1, 3)
    cuts_a = np.array(cuts, dtype=np.float64).reshape(-1, 2)

    band_on = ~_in_cuts(s, cuts_a, length)
    left = np.where(band_on, center - half, np.inf)
    right = np.where(band_on, center + half, -np.inf)
    for sc, tc, r in discs_a:
        dd = _wrap(s - sc, length, closed)
        inside = np.abs(dd) < r
        chord = np.sqrt(np.clip(r * r - dd * dd, 0, None))
        left = np.where(inside, np.minimum(left, tc - chord), left)
        right = np.where(inside, np.maximum(right, tc + chord), right)
    has = np.isfinite(left) & (right > left)
    left = np.where(has, left, np.nan)
    right = np.where(has, right, np.nan)
    half_band = np.where(band_on, half, np.nan)
    return Footprint(center_px=center, half_px=half_band, discs=discs_a, cut=cuts_a,
                     left_px=left, right_px=right)


def _interp_path(x, xp, fp, length, closed):
    """Values ``fp`` at stations ``xp`` interpolated at arc lengths ``x`` (periodic when closed)."""
    if not closed:
        return np.interp(x, xp, fp)
    return np.interp(np.mod(x, length), np.append(xp, length), np.append(fp, fp[0]))


def _in_cuts(s: np.ndarray, cuts: np.ndarray, length: float) -> np.ndarray:
    out = np.zeros(s.shape, bool)
    for s0, s1 in cuts:
        out |= ((s >= s0) & (s <= s1)) if s0 <= s1 else ((s >= s0) | (s <= s1))
    return out


# ----------------------------------------------------------------------------------------
# Truth: defects as stretches that break the recipe's limits


def _runs(mask: np.ndarray, closed: bool) -> list[tuple[int, int]]:
    """Inclusive (start, end) index runs of True; on a closed path a run may wrap (start > end)."""
    n = len(mask)
    if not mask.any():
        return []
    if mask.all():
        return [(0, n - 1)]
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    runs = list(zip(starts.tolist(), ends.tolist()))
    if closed and len(runs) > 1 and runs[0][0] == 0 and runs[-1][1] == n - 1:
        runs = [(runs[-1][0], runs[0][1])] + runs[1:-1]
    return runs


def truth_defects(spec: SceneSpec, stations: Stations, fp: Footprint, pose_matrix) -> list[Defect]:
    """Defects of the true footprint: each inserted defect's stretch beyond the limit.

    Parameters
    ----------
    spec : SceneSpec
    stations : Stations
        The recipe path's stations, part frame, px.
    fp : Footprint
        :func:`bead_footprint` of ``spec`` at ``stations``.
    pose_matrix : (2, 3) array_like
        The part's pose, for the defects' ``center_px`` in the image.

    Returns
    -------
    list of Defect
        In the order the defects were inserted; a gap runs between the tips of its rounded
        ends, a thin, wide or offset defect between the (linearly interpolated) arc lengths
        where the true width or offset crosses the recipe's limit. On a closed path a defect
        across the start has ``start_mm > end_mm``.
    """
    k = 1.0 / spec.mm_per_px
    mm = spec.mm_per_px
    s = stations.arc_px
    length = stations.length_px
    width = fp.width_px
    offset = fp.offset_px
    posed = stations.transformed(pose_matrix)
    out = []
    for d in spec.defects:
        delta = _wrap(s - d.center_mm * k, length, stations.closed)
        zone = np.abs(delta) <= d.length_mm * k / 2 + d.ramp_mm * k + spec.width_mm * k
        if d.kind in ("gap", "overlap_gap"):
            typ, bad = "gap", zone & (width <= 0)
            limit = spec.width_mm - spec.width_tol_mm
            worst = 0.0
        elif d.kind == "thin":
            typ, limit = "thin", spec.width_mm - spec.width_tol_mm
            bad = zone & (width * mm < limit)
            worst = float(np.min(width[bad]) * mm) if bad.any() else 0.0
        elif d.kind in ("wide", "blob"):
            typ, limit = "wide", spec.width_mm + spec.width_tol_mm
            bad = zone & (width * mm > limit)
            worst = float(np.max(width[bad]) * mm) if bad.any() else 0.0
        else:
            typ, limit = "offset", spec.max_offset_mm
            bad = zone & (np.abs(offset) * mm > limit)
            worst = float(np.max(np.abs(offset[bad])) * mm) if bad.any() else 0.0
        if not bad.any():
            continue
        (i0, i1), = _runs(bad, stations.closed)[:1] or [(None, None)]
        if d.kind in ("gap", "overlap_gap"):
            # exact ends: the tips of the rounded ends
            a0 = d.center_mm * k - d.length_mm * k / 2
            a1 = d.center_mm * k + d.length_mm * k / 2
            if stations.closed:
                a0, a1 = a0 % length, a1 % length
        else:
            vals = {"thin": width * mm - limit, "wide": limit - width * mm,
                    "offset": limit - np.abs(offset) * mm}[typ]
            a0 = _crossing(s, vals, i0 - 1, i0, length, stations.closed)
            a1 = _crossing(s, vals, i1, i1 + 1, length, stations.closed)
        seg_len = (a1 - a0) % length if stations.closed else a1 - a0
        mid = posed.at_arc(a0 + seg_len / 2)
        out.append(Defect(type=typ, start_mm=a0 * mm, end_mm=a1 * mm, length_mm=seg_len * mm,
                          center_px=(float(mid[0]), float(mid[1])), worst_mm=worst, limit_mm=limit))
    return out


def _crossing(s, vals, i_out, i_in, length, closed=True):
    """Arc length where ``vals`` crosses zero between stations ``i_out`` and ``i_in`` (linear).

    On an open path a run that reaches an end (``i_out`` beyond the stations) ends there.
    """
    n = len(s)
    if not closed:
        if not 0 <= i_out < n:
            return float(s[i_in])
        vo, vi = vals[i_out], vals[i_in]
        f = vo / (vo - vi) if vo != vi else 0.5
        return float(s[i_out] + f * (s[i_in] - s[i_out]))
    io, ii = i_out % n, i_in % n
    so, si = s[io], s[ii]
    if abs(si - so) > length / 2:
        so = so + length if si > so else so - length
    vo, vi = vals[io], vals[ii]
    f = vo / (vo - vi) if vo != vi else 0.5
    return (so + f * (si - so)) % length


# ----------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True, eq=False)
class Scene:
    """A rendered scene: the image, its truth record and its recipe."""

    image: np.ndarray
    truth: dict
    recipe: Recipe


class SceneRenderer:
    """Layers of one scene, built once; frames composed from them cheaply.

    ``compose(dispensed_mm)`` gives the radiance (float32, H×W) with the bead laid up to
    that arc length (None: all of it); ``sensor(radiance, rng)`` adds the optics and
    sensor (illumination, glare, blur, noise, quantisation, colour, compression).

    Attributes
    ----------
    spec : SceneSpec
    recipe : Recipe
        ``spec.recipe()``.
    stations : Stations
        The recipe path's stations (spacing ≤ 1 px), part frame.
    posed : Stations
        The same stations moved by the part's pose: where they lie in the image.
    pose_matrix : (2, 3) float64
        The pose ``[R | t]``, px.
    footprint : Footprint
        The true bead footprint at ``stations``.
    base : (H, W) float32
        Radiance of the part without the bead.
    bead_idx : (M,) int64
        Flat indices (row-major, H×W) of every pixel the bead touches.
    bead_s : (M,) float64
        Arc length of those pixels' feet on the path, px (what dispensing follows).
    bead_alpha : (M,) float32
        The fraction of each pixel's area the bead covers, 0..1.
    bead_radiance : (M,) float32
        The bead's shaded radiance at each pixel, grey levels.
    """

    def __init__(self, spec: SceneSpec):
        self.spec = spec
        self.recipe = spec.recipe()
        w, h = spec.size_wh
        self.stations = build_stations(self.recipe.points_xy, closed=self.recipe.closed, spacing_px=1.0)
        cx, cy = w / 2.0, h / 2.0
        dx, dy, ang = spec.pose
        self.pose_matrix = rigid_transform(shift_xy=(dx, dy), angle_deg=ang, center_xy=(cx, cy))
        self.posed = self.stations.transformed(self.pose_matrix)
        if spec.closed:
            self.part_posed = self.posed
        else:
            # the part is the whole windshield even when the bead runs along a stretch of it
            loop = build_stations(windshield_path(spec.size_wh, spec.shape), closed=True, spacing_px=1.0)
            self.part_posed = loop.transformed(self.pose_matrix)
        self.footprint = bead_footprint(spec, self.stations)
        self._rng = np.random.default_rng(spec.seed + 1)
        self._build_base()
        self._build_bead()

    # -- the part without the bead
    def _build_base(self):
        sp = self.spec
        w, h = sp.size_wh
        k = 1.0 / sp.mm_per_px
        fixture, glass, frit, _ = sp.levels
        rng = self._rng
        # fixture: low-frequency texture; glass: what lies under it, darker with a gradient
        tex = cv2.resize(rng.normal(0, 1, (h // 64 + 2, w // 64 + 2)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_CUBIC)
        fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
        base_fixture = fixture + 8 * tex + 3 * fine
        yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        base_glass = glass + 6 * yy + 4 * tex
        inside = np.zeros((h, w), np.uint8)
        cv2.fillPoly(inside, [np.round(self.part_posed.xy * 16).astype(np.int32)], 1,
                     lineType=cv2.LINE_8, shift=4)
        img = np.where(inside > 0, base_glass, base_fixture).astype(np.float32)

        t_glass = -sp.inset_mm * k
        t_frit = (sp.frit_mm - sp.inset_mm) * k
        t_fade = t_frit + sp.fade_mm * k
        reach = max(abs(t_glass), t_fade) + 3
        bc = band_coords(self.part_posed, (w, h), reach)
        self.region_band = bc
        t, s = bc.t_px, bc.s_px
        flat = img.reshape(-1)
        gl = flat[bc.flat_idx]
        fx = base_fixture.reshape(-1)[bc.flat_idx]
        on_glass = np.clip(t - t_glass + 0.5, 0, 1)          # glass edge, anti-aliased
        on_frit = np.clip(t_frit - t + 0.5, 0, 1)
        frit_v = frit + 2.0 * fine.reshape(-1)[bc.flat_idx]
        # halftone dots fading from full frit to clear glass
        pitch = max(2.5 * k, 2.2)
        row = np.round((t - t_frit) / pitch)
        col = np.round((s / pitch) - 0.5 * (row % 2)) + 0.5 * (row % 2)
        dist = np.hypot(s - col * pitch, t - t_frit - row * pitch)
        frac = np.clip(1 - (t - t_frit) / max(t_fade - t_frit, 1e-6), 0, 1)
        radius = 0.62 * pitch * np.sqrt(frac)
        dots = np.clip(radius - dist + 0.5, 0, 1) * (t > t_frit)
        cover = np.maximum(on_frit, dots)
        glass_v = np.where(t > t_glass, gl, base_glass.reshape(-1)[bc.flat_idx])
        inner = cover * frit_v + (1 - cover) * glass_v
        flat[bc.flat_idx] = on_glass * inner + (1 - on_glass) * fx
        self.base = img
        # the glass (where glare is strongest and the tint lies) ends at the glass edge, an
        # inset outside the bead's path, not at the path: a mask cut at the path put a glare
        # step along the bead's centre line
        glass = inside.astype(np.float32)
        glass.reshape(-1)[bc.flat_idx] = on_glass
        self.glass_mask = glass

    # -- the bead: coverage, shading and arc length of every pixel it may touch
    def _build_bead(self):
        sp = self.spec
        w, h = sp.size_wh
        fp = self.footprint
        st = self.stations
        closed = st.closed
        length = st.length_px
        max_half = np.nanmax(np.abs(np.concatenate([fp.left_px, fp.right_px]))) + 3
        bc = band_coords(self.posed, (w, h), max_half)
        s, t = bc.s_px, bc.t_px

        def at(values):
            return _interp_path(s, st.arc_px, values, length, closed)

        def slope_of(values):
            if closed:
                return np.gradient(np.append(values, values[0]), np.append(st.arc_px, length))[:-1]
            return np.gradient(values, st.arc_px)

        station = np.round(s / st.spacing_px).astype(np.int64)
        station = np.mod(station, len(st)) if closed else np.clip(station, 0, len(st) - 1)
        # arc length at offset t runs (1 - κt) times as fast as on the path (straight beyond
        # an open path's ends): turns s-derivatives into image-space ones
        metric = np.clip(1.0 - station_curvature(st)[station] * t, 0.2, None)
        if not closed:
            metric = np.where((s < 0) | (s > length), 1.0, metric)

        # The footprint is the union of a band |t - c(s)| <= hw(s) and discs in (s, t). Each
        # shape gives F (< 0 inside) and its gradient (g_s, g_t) in image units; F / |g| is
        # the signed distance of the pixel centre from the edge and g / |g| the edge normal.
        half = np.nan_to_num(fp.half_px, nan=0.0)
        c = at(fp.center_px)
        hw = at(half)
        side = np.where(t >= c, 1.0, -1.0)
        slope = at(slope_of(fp.center_px)) + side * at(slope_of(half))   # of the edge on this side
        g_s, g_t = -side * slope / metric, side
        norm = np.hypot(g_s, g_t)
        d = (np.abs(t - c) - hw) / norm
        n_s, n_t = g_s / norm, g_t / norm
        scale = hw.copy()
        cut = _in_cuts(s, fp.cut, length)
        if not closed:
            cut |= (s < 0) | (s > length)       # beyond the ends only the end caps (discs) lie
        d = np.where(cut, np.inf, d)
        for sc, tc, r in fp.discs:
            ds, dt = _wrap(s - sc, length, closed), t - tc
            rho = np.maximum(np.hypot(ds, dt), 1e-9)
            g_s, g_t = ds / rho / metric, dt / rho
            norm = np.hypot(g_s, g_t)
            dd = (rho - r) / norm
            closer = dd < d
            d = np.where(closer, dd, d)
            n_s = np.where(closer, g_s / norm, n_s)
            n_t = np.where(closer, g_t / norm, n_t)
            scale = np.where(closer, r, scale)
        # the part of each (unit, square) pixel the bead covers, as a camera pixel integrates it
        tangent, normal = self.posed.tangent_xy[station], self.posed.normal_xy[station]
        alpha = _box_coverage(d, n_s * tangent[:, 0] + n_t * normal[:, 0],
                              n_s * tangent[:, 1] + n_t * normal[:, 1])
        keep = alpha > 0
        self.bead_idx = bc.flat_idx[keep]
        self.bead_s = s[keep]
        alpha = alpha[keep]
        d, scale, side, t_in = d[keep], np.maximum(scale[keep], 0.5), side[keep], t[keep]
        normal_img = normal[keep]
        # rounded cross-section: a circular cap meeting the surface at the contact angle
        depth = np.clip(-d / scale, 0.0, 1.0)             # 0 at the edge, 1 on the crest
        u = 1.0 - depth
        sin_phi = u * np.sin(np.deg2rad(sp.contact_angle_deg))
        cos_phi = np.sqrt(1 - sin_phi**2)
        ld = np.deg2rad(sp.light_dir_deg)
        lam = np.deg2rad(sp.light_tilt_deg) * (normal_img @ np.array([np.cos(ld), np.sin(ld)]))
        diffuse = np.clip(side * sin_phi * np.sin(lam) + cos_phi * np.cos(lam), 0, 1)
        albedo = sp.levels[3]
        radiance = albedo * (0.35 + 0.65 * diffuse)
        radiance += sp.specular * np.exp(-((side * sin_phi - np.sin(lam / 2)) / 0.12) ** 2)
        # bubbles: small voids in the bead that show the surface through it
        rng = np.random.default_rng(sp.seed + 2)
        nb = sp.nuisances.bubbles
        if nb:
            bs = rng.uniform(0, length, nb)
            bt = _interp_path(bs, st.arc_px, fp.center_px, length, closed) + rng.uniform(-2, 2, nb)
            br = rng.uniform(0.8, 1.8, nb)
            for b_s, b_t, b_r in zip(bs, bt, br):
                dist = np.hypot(_wrap(self.bead_s - b_s, length, closed), t_in - b_t)
                radiance = np.where(dist < b_r, radiance * 0.6 + 0.4 * sp.levels[2], radiance)
        self.bead_alpha = alpha.astype(np.float32)
        self.bead_radiance = radiance.astype(np.float32)

    def compose(self, dispensed_mm: float | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
        """Radiance with the bead laid from the start up to ``dispensed_mm``.

        Parameters
        ----------
        dispensed_mm : float or None
            Arc length dispensed so far, mm; None or the path's length or more: the whole bead.
        out : (H, W) float32 array, optional, keyword-only
            Buffer to write into (saves allocating a frame per call).

        Returns
        -------
        (H, W) float32
            Radiance in grey levels, before optics and sensor.
        """
        if out is None:
            img = self.base.copy()
        else:
            np.copyto(out, self.base)
            img = out
        flat = img.reshape(-1)
        idx, a, r = self.bead_idx, self.bead_alpha, self.bead_radiance
        if dispensed_mm is not None:
            lim = dispensed_mm / self.spec.mm_per_px
            if lim < self.stations.length_px:
                on = self.bead_s <= lim
                idx, a, r = idx[on], a[on], r[on]
        flat[idx] = (1 - a) * flat[idx] + a * r
        return img

    def _dust(self, seed: int) -> np.ndarray | None:
        """Dust specks on the optics (H×W float32, grey levels added), or None without dust."""
        sp = self.spec
        n = sp.nuisances.dust
        if not n:
            return None
        w, h = sp.size_wh
        drng = np.random.default_rng(seed)
        dust = np.zeros((h, w), np.float32)
        xs = drng.uniform(0, w, n)
        ys = drng.uniform(0, h, n)
        rs = drng.uniform(0.6, 2.5, n)
        vs = drng.choice([-1.0, 1.0], n) * drng.uniform(15, 60, n)
        for x, y, r, v in zip(xs, ys, rs, vs):
            cv2.circle(dust, (int(x * 16), int(y * 16)), int(r * 16), float(v), -1, cv2.LINE_AA, 4)
        return dust

    @cached_property
    def _glare(self) -> np.ndarray | None:
        """Glare stripes (H×W float32, grey levels added; brighter on the glass), or None."""
        sp = self.spec
        if not sp.nuisances.glare:
            return None
        w, h = sp.size_wh
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        g = np.zeros((h, w), np.float32)
        for x0, y0, ang, width, gain in sp.nuisances.glare:
            a = np.deg2rad(ang)
            dist = (xx - x0) * np.sin(a) - (yy - y0) * np.cos(a)
            g += gain * np.exp(-0.5 * (dist / (width / 2)) ** 2)
        g *= 0.4 + 0.6 * self.glass_mask
        return g

    @cached_property
    def _added(self) -> np.ndarray | None:
        """The scene's own dust plus glare (H×W float32, grey levels), or None: built once."""
        return _sum_layers(self._dust(self.spec.seed + 3), self._glare)

    @cached_property
    def _light(self) -> np.ndarray | None:
        """Illumination gradient times vignetting (H×W float32, relative), or None."""
        sp = self.spec
        nz = sp.nuisances
        if nz.gradient == (0.0, 0.0) and not nz.vignetting:
            return None
        w, h = sp.size_wh
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        gx, gy = nz.gradient
        light = 1 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        light *= 1 - nz.vignetting * r2
        return light

    def sensor(self, radiance: np.ndarray, rng=None, *, dust_rng_seed: int | None = None) -> np.ndarray:
        """Optics and sensor: dust, glare, illumination, blur, noise, uint8, colour, JPEG.

        Parameters
        ----------
        radiance : (H, W) float32
            From :meth:`compose`; not modified.
        rng : int or numpy.random.Generator or None
            Source of the noise (fresh per call).
        dust_rng_seed : int or None, keyword-only
            Draw other dust specks than the scene's own (None: the scene's, built once).

        Returns
        -------
        (H, W) uint8, or (H, W, 3) uint8 BGR when ``spec.color``
        """
        sp = self.spec
        nz = sp.nuisances
        rng = np.random.default_rng(rng)
        h, w = radiance.shape
        if dust_rng_seed is None:
            add = self._added
        else:
            add = _sum_layers(self._dust(dust_rng_seed), self._glare)
        img = radiance if add is None else radiance + add
        if self._light is not None:
            img = img * self._light
        if nz.blur_sigma_px > 0:
            img = cv2.GaussianBlur(img.astype(np.float32, copy=False), (0, 0), nz.blur_sigma_px)
        elif img is radiance:
            img = radiance.copy()
        if nz.noise_sigma > 0 or nz.shot_gain > 0:
            noise = _gaussian_noise(rng, (h, w))
            if nz.shot_gain > 0:
                noise *= np.sqrt(nz.noise_sigma**2 + nz.shot_gain * np.maximum(img, 0))
            else:
                noise *= nz.noise_sigma
            img += noise
        if sp.color:
            tint_glass = np.array([1.04, 1.06, 0.9], np.float32)   # B, G, R: green-blue glass
            tint = 1 + self.glass_mask[..., None] * (tint_glass - 1)
            img = img[..., None] * tint
        out = np.clip(np.round(img), 0, 255).astype(np.uint8)
        if nz.jpeg_quality:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(nz.jpeg_quality)])
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return out
    def truth(self, *, dispensed_mm: float | None = None, file: str | None = None) -> dict:
        """The truth record: DESIGN §5 layout plus per-station truth, pose and the spec.

        Parameters
        ----------
        dispensed_mm : float or None, keyword-only
            Truth of the part with the bead laid up to this arc length (mm): stations beyond
            it have width 0 and offset 0, and defects are cut there (one that crosses the
            start of a closed path is only its head, ``0..end_mm``, until the loop is laid).
            None: the finished part.
        file : str or None, keyword-only
            Stored as ``"file"``.

        Returns
        -------
        dict
            JSON-ready: ``file``, ``verdict`` (OK/NG), ``defects`` (records as in §5),
            ``preset``, ``mm_per_px``, ``pose``, ``dispensed_mm``, ``stations``
            (``spacing_mm`` and per-station ``width_mm``/``offset_mm`` lists, one per recipe
            station) and ``spec`` (every choice of the scene).
        """
        sp = self.spec
        mm = sp.mm_per_px
        fp = self.footprint
        defects = truth_defects(sp, self.stations, fp, self.pose_matrix)
        width = fp.width_px
        offset = np.nan_to_num(fp.offset_px, nan=0.0)
        if dispensed_mm is not None and dispensed_mm < self.stations.length_px * mm:
            not_yet = self.stations.arc_px * mm > dispensed_mm
            width = np.where(not_yet, 0.0, width)
            offset = np.where(not_yet, 0.0, offset)
            defects = self._clip_defects(defects, float(dispensed_mm), width, offset)
        return {
            "file": file,
            "verdict": "NG" if defects else "OK",
            "defects": [d.to_dict() for d in defects],
            "preset": sp.preset,
            "mm_per_px": mm,
            "pose": {"dx_px": sp.pose[0], "dy_px": sp.pose[1], "angle_deg": sp.pose[2],
                     "center_px": [sp.size_wh[0] / 2.0, sp.size_wh[1] / 2.0]},
            "dispensed_mm": dispensed_mm,
            "stations": {
                "spacing_mm": round(self.stations.spacing_px * mm, 6),
                "width_mm": np.round(width * mm, 4).tolist(),
                "offset_mm": np.round(offset * mm, 4).tolist(),
            },
            "spec": _spec_summary(sp),
        }

    def _clip_defects(self, defects: list[Defect], dispensed_mm: float, width_px: np.ndarray,
                      offset_px: np.ndarray) -> list[Defect]:
        """The defects, or the parts of them, laid by ``dispensed_mm`` (< the path's length).

        A defect across the start of a closed path splits into its head (``0..end``), laid
        first, and its tail (``start..``), laid last. Lengths, centres and worst values are
        those of the part laid so far.
        """
        mm = self.spec.mm_per_px
        length_mm = self.stations.length_px * mm
        arc_mm = self.stations.arc_px * mm
        out = []
        for d in defects:
            pieces = [(0.0, d.end_mm), (d.start_mm, length_mm)] if d.start_mm > d.end_mm \
                else [(d.start_mm, d.end_mm)]
            for a, b in pieces:
                if a >= dispensed_mm:
                    continue
                b = min(b, dispensed_mm)
                sel = (arc_mm >= a) & (arc_mm <= b)
                worst = d.worst_mm
                if sel.any() and d.type == "thin":
                    worst = float(width_px[sel].min() * mm)
                elif sel.any() and d.type == "wide":
                    worst = float(width_px[sel].max() * mm)
                elif sel.any() and d.type == "offset":
                    worst = float(np.abs(offset_px[sel]).max() * mm)
                mid = self.posed.at_arc((a + b) / 2 / mm)
                out.append(Defect(d.type, a, b, b - a, (float(mid[0]), float(mid[1])), worst, d.limit_mm))
        return out

    def render(self, rng=None) -> Scene:
        """The whole scene: image, truth and recipe (``rng`` None: the scene's own noise seed)."""
        img = self.sensor(self.compose(), rng if rng is not None else self.spec.seed + 4)
        return Scene(image=img, truth=self.truth(), recipe=self.recipe)


# Standard normal quantiles at 2**16 equally likely levels: a table lookup of random 16-bit
# integers gives fresh Gaussian noise (tails cut at 4.3 sigma) in well under half the time of
# Generator.standard_normal, which matters for the dispensing clip's frame rate.
_GAUSS_LUT = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Fresh standard normal noise, float32, of the given shape (quantised to 2**16 levels)."""
    return _GAUSS_LUT[rng.integers(0, 65536, shape, dtype=np.uint16)]


def _box_coverage(d_px: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Fraction of a unit square pixel on the inner side of a straight edge.

    Parameters
    ----------
    d_px : (M,) float
        Signed distance of the pixel centre from the edge, px (> 0 outside).
    nx, ny : (M,) float
        The edge's unit normal in the image.

    Returns
    -------
    (M,) float64 in [0, 1]
        The exact area fraction (so that summed over pixels it gives the shape's area, at any
        edge angle; a linear ramp in ``d_px`` does so only for edges along the pixel rows).
        It is the distribution function of ``n · u`` for ``u`` uniform on the pixel: the sum of
        two uniform variables of widths ``|nx|`` and ``|ny|``, a trapezoid.
    """
    p = np.maximum(np.abs(nx), np.abs(ny))
    q = np.minimum(np.abs(nx), np.abs(ny))
    h = 0.5 * (p + q)
    z = np.clip(-d_px, -h, h)
    rise = np.maximum(q, 1e-9)
    low = (z + h) ** 2 / (2 * p * rise)
    mid = (z + h - 0.5 * q) / p
    high = 1.0 - (h - z) ** 2 / (2 * p * rise)
    return np.clip(np.where(z < q - h, low, np.where(z > h - q, high, mid)), 0.0, 1.0)


def _sum_layers(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    return a if b is None else a + b


def _spec_summary(sp: SceneSpec) -> dict:
    d = asdict(sp)
    d["defects"] = [asdict(x) for x in sp.defects]
    return d


def render_scene(rng=None, **kwargs) -> Scene:
    """Sample and render one scene; keyword arguments go to :func:`sample_scene`."""
    return SceneRenderer(sample_scene(rng, **kwargs)).render()
