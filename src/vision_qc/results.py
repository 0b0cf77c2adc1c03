"""Result data: defects and the inspection result (DESIGN §5). Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Defect", "InspectionResult", "DEFECT_TYPES", "STATUS_CODES", "error_record"]

DEFECT_TYPES = ("gap", "thin", "wide", "offset")
# Per-station status codes; 0 is a good station. Order is the priority when a station fails
# several ways at once (no bead trumps everything; a thin bead off its path is reported thin).
STATUS_CODES = {"ok": 0, "gap": 1, "thin": 2, "wide": 3, "offset": 4}


@dataclass(frozen=True)
class Defect:
    """One run of failing stations.

    ``start_mm``/``end_mm`` are arc lengths along the recipe path; on a closed path a defect
    that crosses the start has ``start_mm > end_mm``. ``worst_mm`` is the worst value in the
    run (the smallest width for gap/thin, the largest width for wide, the largest absolute
    centre offset for offset) and ``limit_mm`` the limit it broke.
    """

    type: str
    start_mm: float
    end_mm: float
    length_mm: float
    center_px: tuple[float, float]
    worst_mm: float
    limit_mm: float

    def to_dict(self) -> dict:
        return {"type": self.type, "start_mm": round(float(self.start_mm), 3),
                "end_mm": round(float(self.end_mm), 3), "length_mm": round(float(self.length_mm), 3),
                "center_px": [round(float(self.center_px[0]), 2), round(float(self.center_px[1]), 2)],
                "worst_mm": round(float(self.worst_mm), 3), "limit_mm": round(float(self.limit_mm), 3)}

    @classmethod
    def from_dict(cls, d: dict) -> "Defect":
        return cls(type=d["type"], start_mm=float(d["start_mm"]), end_mm=float(d["end_mm"]),
                   length_mm=float(d["length_mm"]), center_px=tuple(d["center_px"]),
                   worst_mm=float(d["worst_mm"]), limit_mm=float(d["limit_mm"]))


@dataclass(frozen=True, eq=False)
class InspectionResult:
    """What one frame's inspection found.

    Per-station arrays all have length N (the recipe's stations):

    arc_mm : float64, arc length of each station along the recipe path.
    xy_px : (N, 2) float64, station positions in the frame (after alignment).
    normal_xy : (N, 2) float64, unit normals in the frame.
    left_px, right_px : float32, bead edges along the normal relative to the station, px
        (left is the negative-normal side); NaN where no bead was found.
    width_mm, offset_mm : float32, smoothed width and centre offset (NaN where no bead).
    present : bool, a bead was found at the station.
    contrast : float32, bead minus local background, grey levels (sign by polarity).
    status : int8, :data:`STATUS_CODES` per station.
    """

    arc_mm: np.ndarray
    xy_px: np.ndarray
    normal_xy: np.ndarray
    left_px: np.ndarray
    right_px: np.ndarray
    width_mm: np.ndarray
    offset_mm: np.ndarray
    present: np.ndarray
    contrast: np.ndarray
    status: np.ndarray
    defects: tuple[Defect, ...]
    verdict: str
    stats: dict
    timing_ms: dict
    pose: dict | None = None
    mm_per_px: float = 1.0
    extra: dict = field(default_factory=dict)

    def to_record(self, file: str | None = None) -> dict:
        """The result record of DESIGN §5 (JSON-ready)."""
        rec = {"file": file, "verdict": self.verdict, "error": None,
               "defects": [d.to_dict() for d in self.defects],
               "stats": {k: (None if v is None else round(float(v), 4)) for k, v in self.stats.items()},
               "timing_ms": {k: round(float(v), 3) for k, v in self.timing_ms.items()}}
        if self.pose is not None:
            rec["pose"] = {k: round(float(v), 4) for k, v in self.pose.items()}
        return rec


def error_record(file: str | None, message: str) -> dict:
    """The record of an input that could not be inspected (verdict ``ERROR``)."""
    return {"file": file, "verdict": "ERROR", "error": message, "defects": [],
            "stats": {}, "timing_ms": {}}
