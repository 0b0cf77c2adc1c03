"""A dispensing clip: the bead laid along its path frame by frame, read like a video file.

:class:`DispensingClip` renders, on demand, the frames a fixed camera would see while a robot
lays the bead of one :class:`~vision_qc.synth.scene.SceneSpec`: frame ``i`` shows the bead
dispensed up to ``i * speed_mm_s / fps`` mm along the path with the nozzle over the bead's
front, then a few frames of the finished part. It answers the subset of ``cv2.VideoCapture``
that a frame loop uses (``read``, ``isOpened``, ``release``, ``get``), so the live mode can
take it in place of a camera, and it gives the truth of every frame.

Everything that does not change from frame to frame (the part, the bead's coverage and
shading, dust, glare and illumination) is built once by the scene's
:class:`~vision_qc.synth.scene.SceneRenderer`; a frame costs one copy of the part, the bead
pixels laid so far, a small nozzle patch and the sensor model (noise drawn afresh).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .scene import SceneRenderer, SceneSpec

__all__ = ["DispensingClip"]

# The nozzle seen from above: its diameter in bead widths, and the inner radius of the lighter
# rim (the nozzle's wall) as a fraction of its radius.
NOZZLE_DIAMETER_BEADS = 2.5
NOZZLE_BORE_FRAC = 0.7


class DispensingClip:
    """Frames of a bead being dispensed, with ``cv2.VideoCapture``'s reading interface.

    Parameters
    ----------
    spec : SceneSpec
        The scene: part, bead, defects and nuisances (the pose, dust and glare stay the same
        in every frame; the noise is fresh in every frame).
    speed_mm_s : float, keyword-only
        Dispensing speed along the path, mm/s.
    fps : float, keyword-only
        Frame rate, frames/s; frame ``i`` shows the bead laid up to
        ``min(i * speed_mm_s / fps, path length)`` mm.
    rng : int or numpy.random.Generator or None, keyword-only
        Source of the per-frame sensor noise. The same ``spec`` and ``rng`` give the same
        frames.
    loop : bool, keyword-only
        Start again from frame 0 after the last frame instead of ending.
    finished_frames : int, keyword-only
        Frames of the finished part (nozzle gone) after the last dispensing frame.

    Attributes
    ----------
    renderer : SceneRenderer
        The scene's layers (its ``recipe`` is the recipe to inspect the clip with).
    frame_count : int
        Dispensing frames plus finished frames.
    dispensing_frames : int
        Frames with the nozzle in view; the last one shows the whole bead.

    Examples
    --------
    >>> from vision_qc.synth import sample_scene
    >>> clip = DispensingClip(sample_scene(0, size_wh=(640, 480)), speed_mm_s=2000.0)
    >>> ok, frame = clip.read()          # frame 0: nothing laid yet, nozzle at the start
    >>> clip.nozzle_mm, clip.truth(0)["dispensed_mm"]
    (0.0, 0.0)
    """

    def __init__(self, spec: SceneSpec, *, speed_mm_s: float = 400.0, fps: float = 30.0, rng=None,
                 loop: bool = False, finished_frames: int = 5):
        if not isinstance(spec, SceneSpec):
            raise TypeError(f"spec must be a SceneSpec; got {type(spec).__name__}")
        for name, value in (("speed_mm_s", speed_mm_s), ("fps", fps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
        if isinstance(finished_frames, bool) or not isinstance(finished_frames, int) or finished_frames < 0:
            raise ValueError(f"finished_frames must be an integer >= 0; got {finished_frames!r}")
        self.renderer = SceneRenderer(spec)
        self.speed_mm_s = float(speed_mm_s)
        self.fps = float(fps)
        self.loop = bool(loop)
        self._rng = np.random.default_rng(rng)
        mm = spec.mm_per_px
        self.length_mm = self.renderer.stations.length_px * mm
        self.step_mm = self.speed_mm_s / self.fps
        self.dispensing_frames = math.ceil(self.length_mm / self.step_mm - 1e-9) + 1
        self.frame_count = self.dispensing_frames + finished_frames
        w, h = spec.size_wh
        self._radiance = np.empty((h, w), np.float32)
        self._nozzle_r_px = 0.5 * NOZZLE_DIAMETER_BEADS * spec.width_mm / mm
        self._pos = 0
        self._last: int | None = None
        self._opened = True

    # -- what frame i shows
    def dispensed_mm(self, i: int) -> float | None:
        """Arc length laid in frame ``i``, mm, which is where the nozzle is; None for the
        finished part (all of it laid, nozzle gone)."""
        self._check_index(i)
        if i >= self.dispensing_frames:
            return None
        return min(i * self.step_mm, self.length_mm)

    def frame(self, i: int, rng=None) -> np.ndarray:
        """Render frame ``i`` (noise from ``rng``, or from the clip's own generator).

        Returns
        -------
        (H, W) uint8, or (H, W, 3) uint8 BGR for a colour scene.
        """
        dispensed = self.dispensed_mm(i)
        radiance = self.renderer.compose(dispensed, out=self._radiance)
        if dispensed is not None:
            self._draw_nozzle(radiance, self._nozzle_xy(dispensed))
        return self.renderer.sensor(radiance, self._rng if rng is None else rng)

    def truth(self, i: int) -> dict:
        """The truth of frame ``i``: :meth:`SceneRenderer.truth` at its dispensed length, plus
        ``frame``, ``nozzle_mm`` and ``nozzle_px`` (``[x, y]`` in the image; both None once the
        nozzle has left)."""
        dispensed = self.dispensed_mm(i)
        t = self.renderer.truth(dispensed_mm=dispensed)
        t["frame"] = int(i)
        t["nozzle_mm"] = None if dispensed is None else round(dispensed, 4)
        t["nozzle_px"] = None if dispensed is None else \
            [round(float(v), 3) for v in self._nozzle_xy(dispensed)]
        return t

    # -- cv2.VideoCapture's reading interface
    def read(self) -> tuple[bool, np.ndarray | None]:
        """The next frame: ``(True, frame)``, or ``(False, None)`` after the last (unless looping)
        or after :meth:`release`."""
        if not self._opened:
            return False, None
        if self._pos >= self.frame_count:
            if not self.loop:
                return False, None
            self._pos = 0
        i = self._pos
        frame = self.frame(i)
        self._last = i
        self._pos = i + 1
        return True, frame

    def isOpened(self) -> bool:  # cv2.VideoCapture's name
        """True until :meth:`release`."""
        return self._opened

    def release(self) -> None:
        """Close the clip: later reads return ``(False, None)``."""
        self._opened = False

    def get(self, prop_id: int) -> float:
        """``CAP_PROP_FPS``, ``CAP_PROP_FRAME_WIDTH``, ``CAP_PROP_FRAME_HEIGHT``,
        ``CAP_PROP_FRAME_COUNT`` or ``CAP_PROP_POS_FRAMES`` (the next frame's index); 0.0 for
        any other property, as ``cv2.VideoCapture`` answers one it does not support."""
        w, h = self.renderer.spec.size_wh
        return float({cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_WIDTH: w,
                      cv2.CAP_PROP_FRAME_HEIGHT: h, cv2.CAP_PROP_FRAME_COUNT: self.frame_count,
                      cv2.CAP_PROP_POS_FRAMES: self._pos}.get(prop_id, 0.0))

    def __enter__(self) -> "DispensingClip":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def last_frame(self) -> int | None:
        """Index of the last frame read (None before the first read)."""
        return self._last

    @property
    def nozzle_mm(self) -> float | None:
        """The nozzle's arc length in the last frame read, mm (None before the first read and
        once the part is finished)."""
        return None if self._last is None else self.dispensed_mm(self._last)

    # -- helpers
    def _check_index(self, i: int) -> None:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame index must be an integer; got {i!r}")
        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame index must be in [0, {self.frame_count}); got {i}")

    def _nozzle_xy(self, arc_mm: float) -> np.ndarray:
        return self.renderer.posed.at_arc(arc_mm / self.renderer.spec.mm_per_px)

    def _draw_nozzle(self, radiance: np.ndarray, center_xy: np.ndarray) -> None:
        """Paint the nozzle seen from above into ``radiance`` (in place): a dark bore inside a
        lighter metal rim lit from the scene's light direction, edges anti-aliased."""
        sp = self.renderer.spec
        h, w = radiance.shape
        r = self._nozzle_r_px
        cx, cy = float(center_xy[0]), float(center_xy[1])
        x0, x1 = max(int(cx - r) - 2, 0), min(int(cx + r) + 3, w)
        y0, y1 = max(int(cy - r) - 2, 0), min(int(cy + r) + 3, h)
        if x0 >= x1 or y0 >= y1:
            return
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xx - cx, yy - cy
        dist = np.hypot(dx, dy)
        alpha = np.clip(r - dist + 0.5, 0.0, 1.0)
        on_rim = np.clip(dist - NOZZLE_BORE_FRAC * r + 0.5, 0.0, 1.0)
        ld = np.deg2rad(sp.light_dir_deg)
        facing = (dx * np.cos(ld) + dy * np.sin(ld)) / np.maximum(dist, 1e-6)
        rim = 125.0 + 45.0 * facing
        bore = 14.0
        nozzle = bore + (rim - bore) * on_rim
        patch = radiance[y0:y1, x0:x1]
        patch += alpha * (nozzle - patch)
