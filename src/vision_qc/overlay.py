"""Overlay drawing, shared by batch and live: the path coloured by station status, each defect
marked and labelled with its type and length in mm, and a verdict banner. Pure: returns a
new BGR image and never touches the input.

With ``max_width`` the picture is first reduced by the smallest whole factor that brings it
within that width (area averaging), and the path, marks and labels are drawn at the reduced
size, so line widths and text stay the same on screen whatever the camera's resolution."""

from __future__ import annotations

import cv2
import numpy as np

from .results import STATUS_CODES, InspectionResult

__all__ = ["STATUS_COLORS_BGR", "draw_overlay", "overlay_factor"]

STATUS_COLORS_BGR = {
    STATUS_CODES["ok"]: (80, 200, 60),
    STATUS_CODES["gap"]: (40, 40, 255),
    STATUS_CODES["thin"]: (0, 170, 255),
    STATUS_CODES["wide"]: (255, 80, 200),
    STATUS_CODES["offset"]: (255, 200, 0),
}
_NOT_JUDGED = (140, 140, 140)
_SHIFT = 4
# Chords of 8 px leave a bend of radius R px by 8 / R px (0.06 px on the generated windshield's
# tightest bend, R = 130 px at overlay size; 0.4 px at R = 20 px): invisible under a 2 px line.
# A thick anti-aliased polyline costs per vertex: half the vertices of 4 px chords, half the time.
_VERTEX_SPACING_PX = 8.0
_MIN_LABEL_SCALE = 0.55      # Hershey font scale: capitals ~12 px high


def _warm_text() -> None:
    # OpenCV 5 builds its font tables on the first text call of a process: ~20-35 ms of CPU.
    # Done here, at import: the batch's worker processes are forked from a forkserver that has
    # imported this module (vision_qc.shell.batch.pool_context), so they inherit the tables
    # instead of each paying for them on its first NG part; live mode draws text anyway.
    cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)


_warm_text()


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        if frame.dtype == np.uint16:
            frame = (frame >> 8).astype(np.uint8)
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame.copy()


def overlay_factor(width: int, max_width: int | None) -> int:
    """The whole factor an overlay of a ``width``-px frame is reduced by (1: full size)."""
    if not max_width or width <= max_width:
        return 1
    return -(-int(width) // int(max_width))


def _reduce(frame: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return frame
    h, w = frame.shape[:2]
    # crop to a multiple of k: OpenCV's area averaging by a whole factor is its fast path
    frame = frame[:h - h % k, :w - w % k]
    return cv2.resize(frame, ((w // k), (h // k)), interpolation=cv2.INTER_AREA)


def _free_row(placed, tx, ty, tw, tht, h) -> int:
    """The baseline nearest ``ty`` (first below, then above) at which a label box
    ``[tx - 2, tx + tw + 2]`` wide and ``tht + 8`` high overlaps none of ``placed``."""
    def clear(y):
        x0, y0, x1, y1 = tx - 2, y - tht - 4, tx + tw + 2, y + 4
        return all(x1 <= a or x0 >= c or y1 <= b or y0 >= e for a, b, c, e in placed)

    pitch = tht + 10
    for k in range(len(placed) + 1):
        for y in (ty + k * pitch, ty - k * pitch):
            if tht + 2 <= y <= h - 4 and clear(y):
                return y
    return ty


def draw_overlay(frame: np.ndarray, result: InspectionResult, recipe=None, *,
                 judged: np.ndarray | None = None, status_text: str | None = None,
                 thickness: int | None = None, max_width: int | None = None) -> np.ndarray:
    """Draw the inspection result on a copy of ``frame``.

    Parameters
    ----------
    frame : ndarray
        The inspected frame (grey, BGR or BGRA, uint8 or uint16).
    result : InspectionResult
    recipe : Recipe, optional
        Used for the banner's recipe name.
    judged : (N,) bool, optional
        Stations that were judged (live mode); the rest are drawn grey.
    status_text : str, optional
        A line drawn under the banner (fps, latency, counts in live mode).
    max_width : int, optional
        Reduce a wider frame by the smallest whole factor ``k`` that fits
        (:func:`overlay_factor`) and draw at that size; None: the frame's own size.

    Returns
    -------
    (H, W, 3) uint8 BGR
        ``H, W`` are the frame's size divided by ``k`` (rounded down).
    """
    k = overlay_factor(frame.shape[1], max_width)
    img = _to_bgr(_reduce(frame, k))
    h, w = img.shape[:2]
    scale = max(w / 1600.0, 0.6)
    th = thickness or max(int(round(2 * scale)), 1)
    # pixel centres: output pixel j averages input pixels j*k .. j*k + k-1
    xy = (result.xy_px - (k - 1) / 2.0) / k if k > 1 else result.xy_px
    mm_per_px = result.mm_per_px * k
    status = result.status
    if len(xy):
        # one polyline per run of equal status: a handful of draw calls, not one per station
        key = status.astype(np.int16)
        if judged is not None:
            key = np.where(judged, key, -1)
        cuts = np.flatnonzero(np.diff(key)) + 1
        bounds = np.concatenate([[0], cuts, [len(key)]])
        pts = np.round(xy * (1 << _SHIFT)).astype(np.int32)
        # a thick anti-aliased line costs per vertex: keep a vertex every ~8 px along the path
        # (stations are often 0.5-1 px apart), and every run's first and last one
        step = 1
        if len(xy) > 1:
            spacing = float(np.median(np.hypot(*np.diff(xy, axis=0).T)))
            step = max(int(_VERTEX_SPACING_PX / max(spacing, 1e-6)), 1)
        for a, b in zip(bounds[:-1], bounds[1:]):
            lo = max(a - 1, 0)
            idx = np.arange(lo, b, step)
            if idx[-1] != b - 1:
                idx = np.append(idx, b - 1)
            color = _NOT_JUDGED if key[a] < 0 else STATUS_COLORS_BGR[int(key[a])]
            cv2.polylines(img, [pts[idx]], False, color, th, cv2.LINE_AA, _SHIFT)
    font = cv2.FONT_HERSHEY_SIMPLEX
    placed: list[tuple[int, int, int, int]] = []     # label boxes drawn so far
    for d in result.defects:
        cx, cy = ((c - (k - 1) / 2.0) / k for c in d.center_px)
        color = STATUS_COLORS_BGR[STATUS_CODES[d.type]]
        r = int(round(max(18 * scale, 0.5 * d.length_mm / max(mm_per_px, 1e-9))))
        cv2.circle(img, (int(round(cx)), int(round(cy))), r, color, th, cv2.LINE_AA)
        label = f"{d.type} {d.length_mm:.1f} mm"
        fs = max(0.6 * scale, _MIN_LABEL_SCALE)     # the mm label stays legible at 1:1
        (tw, tht), _ = cv2.getTextSize(label, font, fs, th)
        tx = int(np.clip(cx + r + 4, 2, w - tw - 2))
        ty = int(np.clip(cy - r - 4, tht + 2, h - 4))
        # a stretch that breaks two limits (wide and offset) has two defects in one place:
        # their labels go one under the other instead of on top of each other
        ty = _free_row(placed, tx, ty, tw, tht, h)
        placed.append((tx - 2, ty - tht - 4, tx + tw + 2, ty + 4))
        cv2.rectangle(img, (tx - 2, ty - tht - 4), (tx + tw + 2, ty + 4), (0, 0, 0), -1)
        cv2.putText(img, label, (tx, ty), font, fs, color, th, cv2.LINE_AA)
    ok = result.verdict == "OK"
    banner_h = int(44 * scale)
    color = (40, 160, 40) if ok else (30, 30, 210)
    cv2.rectangle(img, (0, 0), (w, banner_h), color, -1)
    text = f"{result.verdict}"
    if result.defects:
        kinds = {}
        for d in result.defects:
            kinds[d.type] = kinds.get(d.type, 0) + 1
        text += "  " + ", ".join(f"{n} {k}" for k, n in kinds.items())
    if recipe is not None and getattr(recipe, "name", ""):
        text += f"   [{recipe.name}]"
    cv2.putText(img, text, (int(10 * scale), int(31 * scale)), font, 0.9 * scale, (255, 255, 255),
                max(th, 2), cv2.LINE_AA)
    if status_text:
        cv2.putText(img, status_text, (int(10 * scale), banner_h + int(26 * scale)), font,
                    0.6 * scale, (255, 255, 255), th, cv2.LINE_AA)
    return img
