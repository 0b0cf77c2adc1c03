"""Live mode's pure parts: progressive judging of a bead being laid, where the nozzle is along
the path, and the frame-rate and latency figures of the loop. No I/O: the camera, window and
files are in :mod:`vision_qc.shell.live` and :mod:`vision_qc.shell.capture`.

While a robot lays the bead, only the part already dispensed can be judged, and not the last
stretch of it: the nozzle hides the bead under it. The nozzle's arc length comes from the source
when it knows it (a dispensing clip, a robot controller) and is otherwise estimated from the
bead's leading end (:func:`leading_end_mm`), with hysteresis (:class:`NozzleTracker`). Stations
up to ``nozzle - guard`` are judged (:class:`LiveInspector`); a part's cycle ends when the whole
path is laid and the nozzle has left.

Judging too little only delays a verdict; judging too much calls bead that is not laid yet a
gap. Every rule here errs on the side of judging too little: the estimate never moves back
within a cycle, a drop is believed at once for the frame (judge less) but only ends the cycle
after a few frames, and a stretch of bead beyond a hole must be long enough to count.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from .engine.judge import find_runs
from .inspector import Inspector, to_gray
from .results import Defect, InspectionResult

__all__ = ["GUARD_WIDTHS", "GUARD_EST_WIDTHS", "NOISE_FLOOR_SIGMA", "MIN_CONTRAST", "Progress",
           "NozzleTracker", "LiveInspector", "LiveStep", "leading_end_mm", "noise_sigma",
           "defects_changed", "RateMeter", "LatencyStats"]

# Lengths in nominal bead widths (a recipe's width sets the scale).
GUARD_WIDTHS = 1.5        # left out behind a nozzle whose position the source gives: its radius
                          # (DispensingClip: 1.25 widths) plus the along-path smoothing
GUARD_EST_WIDTHS = 3.5    # behind an estimated leading end, which may include the nozzle itself:
                          # its rim looks like bead up to ~1.9 widths ahead of the nozzle's
                          # centre (DispensingClip, mp4-compressed), and it hides 1.25 behind
BRIDGE_WIDTHS = 1.0       # holes up to this long inside the laid bead do not stop the estimate
CONFIRM_WIDTHS = 3.0      # bead beyond a longer hole counts once this much of it is laid
MAX_GAP_WIDTHS = 20.0     # a longer hole ends the laid bead (what lies beyond is not believed)
END_WIDTHS = 1.0          # the leading end within this of the path's end: the path is laid
# Bead is told from noise by its contrast: at least this many times the image noise (the
# inspector's own presence test is relative to the frame's median contrast, which is noise
# while little bead is laid).
NOISE_FLOOR_SIGMA = 5.0
# ... and at least this many grey levels: compressed video has flat noise (σ ≈ 0) but blocky
# structure of a grey level or two along the path.
MIN_CONTRAST = 6.0
SETTLE_FRAMES = 2         # frames at the path's end before an estimated cycle is finished, at
                          # least; more while the nozzle may still be there (see NozzleTracker)
MAX_SETTLE_FRAMES = 30
RESET_FRAMES = 3          # frames of a much shorter bead before a new cycle is believed


def leading_end_mm(present: np.ndarray, arc_mm: np.ndarray, *, bridge_mm: float,
                   confirm_mm: float, max_gap_mm: float) -> float:
    """Arc length of the bead's leading end, laid from the path's start.

    Runs of present stations closer than ``bridge_mm`` are joined. From the start, each joined
    run at least ``confirm_mm`` long extends the laid bead when the hole before it (from the
    path start, or from the previous such run) is at most ``max_gap_mm``; shorter runs (noise,
    a bead just resumed after a gap) are passed over; the first longer hole ends the bead.

    Parameters
    ----------
    present : (N,) bool
        Bead found at each station.
    arc_mm : (N,) float
        Arc length of each station, increasing.

    Returns
    -------
    float
        The last laid station's arc length, mm; 0.0 when no bead is laid.
    """
    present = np.asarray(present, bool)
    arc_mm = np.asarray(arc_mm, np.float64)
    if present.shape != arc_mm.shape or present.ndim != 1:
        raise ValueError(f"present and arc_mm must be 1-D of equal length; got {present.shape} "
                         f"and {arc_mm.shape}")
    runs = find_runs(present, closed=False)
    if not len(runs):
        return 0.0
    a = arc_mm[runs[:, 0]]
    b = arc_mm[runs[:, 1]]
    first = np.flatnonzero(np.concatenate([[True], a[1:] - b[:-1] > bridge_mm]))
    last = np.concatenate([first[1:] - 1, [len(b) - 1]])
    ga, gb = a[first], b[last]
    keep = gb - ga >= confirm_mm
    ga, gb = ga[keep], gb[keep]
    if not len(ga):
        return 0.0
    holes = ga - np.concatenate([[arc_mm[0]], gb[:-1]])
    broken = holes > max_gap_mm
    k = int(np.argmax(broken)) if broken.any() else len(ga)
    return float(gb[k - 1]) if k else 0.0


def noise_sigma(frame: np.ndarray, *, step: int = 4) -> float:
    """Image noise, grey levels: the median absolute difference of horizontally neighbouring
    pixels on a grid of every ``step``-th row and column, scaled to a Gaussian's σ (structure
    in the image touches few of the differences, so the median ignores it)."""
    g = to_gray(frame)
    if g.shape[1] < 2:
        return 0.0
    rows = g[::step]
    d = np.abs(rows[:, 1::step].astype(np.int16) - rows[:, 0:-1:step])
    if not d.size:
        return 0.0
    med = float(np.median(d))
    # most differences 0 (quantised or compressed): the mean still sees what noise there is
    return med / 0.954 if med > 0 else float(np.mean(d)) / 1.128


@dataclass(frozen=True)
class Progress:
    """Where one frame stands in the dispensing cycle.

    cycle : int
        Part number, 1 for the first part seen; 0 before any bead.
    dispensed_mm : float or None
        The nozzle's arc length (from the source) or the bead's leading end (estimated);
        None once the part is finished and the nozzle has left.
    judged_mm : float or None
        Stations up to this arc length are judged (it may be negative: none); None: all.
    nozzle : str
        ``"source"`` (the source gave the nozzle's position) or ``"estimate"``.
    finished : bool
        The whole path is laid and the nozzle has left: the whole path is judged.
    cycle_ended : bool
        This frame is the one at which the cycle became finished (log the part's verdict).
    new_cycle : bool
        This frame starts a new part (the previous one, if not finished, ended incomplete).
    hidden_mm : float
        On a closed path, the nozzle near the end of the path also hides its start: stations
        up to this arc length are not judged either (0.0: none).
    """

    cycle: int
    dispensed_mm: float | None
    judged_mm: float | None
    nozzle: str
    finished: bool = False
    cycle_ended: bool = False
    new_cycle: bool = False
    hidden_mm: float = 0.0


class NozzleTracker:
    """The nozzle's position along the path frame after frame, and the cycle it is in.

    Feed each frame either :meth:`from_source` (the source knows the nozzle) or
    :meth:`from_presence` (estimate from where the bead is).

    Parameters
    ----------
    length_mm : float
        The path's length.
    width_mm : float
        Nominal bead width: the default lengths below are multiples of it.
    closed : bool, keyword-only
        A closed path: near its end the nozzle also hides the bead at its start.
    guard_mm, guard_est_mm : float, keyword-only
        Left unjudged behind a nozzle given by the source / behind an estimated leading end.
    bridge_mm, confirm_mm, max_gap_mm : float, keyword-only
        See :func:`leading_end_mm`.
    end_mm : float, keyword-only
        An estimated leading end this close to the path's end has reached it.
    settle_frames, reset_frames : int, keyword-only
        Frames at the end before an estimated cycle is finished; frames of a much shorter
        bead before a new cycle is believed.
    """

    def __init__(self, length_mm: float, *, width_mm: float, closed: bool = False,
                 guard_mm: float | None = None,
                 guard_est_mm: float | None = None, bridge_mm: float | None = None,
                 confirm_mm: float | None = None, max_gap_mm: float | None = None,
                 end_mm: float | None = None, settle_frames: int = SETTLE_FRAMES,
                 reset_frames: int = RESET_FRAMES):
        for name, v in (("length_mm", length_mm), ("width_mm", width_mm)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
        self.length_mm = float(length_mm)
        self.closed = bool(closed)
        w = float(width_mm)

        def pick(v, k, name):
            v = k * w if v is None else float(v)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
            return v

        self.guard_mm = pick(guard_mm, GUARD_WIDTHS, "guard_mm")
        self.guard_est_mm = pick(guard_est_mm, GUARD_EST_WIDTHS, "guard_est_mm")
        self.bridge_mm = pick(bridge_mm, BRIDGE_WIDTHS, "bridge_mm")
        self.confirm_mm = pick(confirm_mm, CONFIRM_WIDTHS, "confirm_mm")
        self.max_gap_mm = pick(max_gap_mm, MAX_GAP_WIDTHS, "max_gap_mm")
        self.end_mm = pick(end_mm, END_WIDTHS, "end_mm")
        self.settle_frames = max(int(settle_frames), 1)
        self.reset_frames = max(int(reset_frames), 1)
        self.cycle = 0
        self.finished = False
        self._est = 0.0            # estimated leading end, never moves back within a cycle
        self._last_nozzle = None   # the source's last nozzle position
        self._settle = 0
        self._below = 0
        self._trail: deque[float] = deque(maxlen=10)   # the last estimates, for the speed
        self._need = self.settle_frames

    @property
    def probe_upto_mm(self) -> float | None:
        """For an estimate: the part of the path known to be laid, whose median contrast the
        inspector should judge presence by (None: the whole frame's)."""
        if self.finished or self._est < self.confirm_mm:
            return None
        return self._est

    def from_source(self, nozzle_mm: float | None) -> Progress:
        """Progress when the source gives the nozzle's arc length (None: it has left, or no
        part is being dispensed)."""
        if nozzle_mm is None:
            ended = not self.finished
            if self.cycle == 0:
                self.cycle = 1
            self.finished = True
            self._last_nozzle = None
            return Progress(self.cycle, None, None, "source", finished=True, cycle_ended=ended)
        nozzle = float(nozzle_mm)
        new = (self.cycle == 0 or self.finished
               or (self._last_nozzle is not None and nozzle < self._last_nozzle - self.bridge_mm))
        if new:
            self.cycle += 1
            self.finished = False
        self._last_nozzle = nozzle
        if nozzle >= self.length_mm + self.guard_mm:       # moved on past the path's end
            ended = not self.finished
            self.finished = True
            return Progress(self.cycle, nozzle, None, "source", finished=True, cycle_ended=ended,
                            new_cycle=new)
        at = min(nozzle, self.length_mm)
        return Progress(self.cycle, nozzle, at - self.guard_mm, "source", new_cycle=new,
                        hidden_mm=self._hidden(at, self.guard_mm))

    def _hidden(self, at_mm: float, guard_mm: float) -> float:
        return max(at_mm + guard_mm - self.length_mm, 0.0) if self.closed else 0.0

    def _settle_needed(self) -> int:
        """Frames the leading end must stay at the path's end before the part is finished.
        The estimate runs up to a nozzle's radius ahead of the nozzle (its rim looks like
        bead), so it reaches the end while the nozzle still sits over it (on a closed path:
        over the bead's start). Wait until the nozzle, moving at the speed the estimate had,
        has covered ``guard_est_mm``, and one frame more for it to lift off."""
        t = list(self._trail)[:-1]       # before the end was reached: the end clips the estimate
        speed = (t[-1] - t[0]) / (len(t) - 1) if len(t) > 1 else 0.0
        if speed <= 0:
            return self.settle_frames
        need = math.ceil(self.guard_est_mm / speed) + 2
        return int(min(max(need, self.settle_frames), MAX_SETTLE_FRAMES))

    def from_presence(self, present: np.ndarray, arc_mm: np.ndarray) -> Progress:
        """Progress estimated from where bead is found (``present``: (N,) bool per station,
        already cleared of noise, e.g. by a contrast floor)."""
        raw = leading_end_mm(present, arc_mm, bridge_mm=self.bridge_mm, confirm_mm=self.confirm_mm,
                             max_gap_mm=self.max_gap_mm)
        new = False
        if self.cycle == 0:
            if raw <= 0.0:
                return Progress(0, 0.0, -self.guard_est_mm, "estimate")
            self.cycle, new, self._est = 1, True, raw
        est = self._est
        dropped = raw < 0.5 * est and est - raw > self.confirm_mm
        if dropped:
            self._below += 1
            if self._below >= self.reset_frames:            # a new part on the fixture
                self.cycle += 1
                new, self.finished, self._est, self._settle, self._below = True, False, raw, 0, 0
                self._trail.clear()
                est = raw
            else:                                           # believe it for this frame only
                return Progress(self.cycle, raw, raw - self.guard_est_mm, "estimate",
                                hidden_mm=self._hidden(raw, self.guard_est_mm))
        else:
            self._below = 0
            est = self._est = max(est, raw)
        if self.finished:
            return Progress(self.cycle, None, None, "estimate", finished=True, new_cycle=new)
        self._trail.append(est)
        if est >= self.length_mm - self.end_mm:
            self._settle += 1
            if self._settle == 1:
                self._need = self._settle_needed()
            if self._settle >= self._need:
                self.finished = True
                return Progress(self.cycle, None, None, "estimate", finished=True,
                                cycle_ended=True, new_cycle=new)
        else:
            self._settle = 0
        return Progress(self.cycle, est, est - self.guard_est_mm, "estimate", new_cycle=new,
                        hidden_mm=self._hidden(est, self.guard_est_mm))


@dataclass(frozen=True, eq=False)
class LiveStep:
    """One frame of live inspection: the result (judged up to ``progress.judged_mm``), the
    progress, and the judged stations as an (N,) bool mask (None: all)."""

    result: InspectionResult
    progress: Progress
    judged: np.ndarray | None


class LiveInspector:
    """Progressive inspection of a bead being laid, frame after frame.

    Parameters
    ----------
    inspector : Inspector
        Built once for the recipe.
    **tracker_kw
        Passed to :class:`NozzleTracker` (``guard_mm``, ``guard_est_mm``, ...).

    Notes
    -----
    With the nozzle's position from the source a frame costs one inspection. Estimating it
    costs two: one to find the bead (presence judged against the contrast of the part already
    laid), one to judge up to the new estimate.
    """

    def __init__(self, inspector: Inspector, **tracker_kw):
        if not isinstance(inspector, Inspector):
            raise TypeError(f"inspector must be an Inspector; got {type(inspector).__name__}")
        self.inspector = inspector
        self.tracker = NozzleTracker(inspector.length_mm, width_mm=inspector.recipe.width_mm,
                                     closed=inspector.recipe.closed, **tracker_kw)

    def step(self, frame: np.ndarray, *, nozzle_mm: float | None = None,
             nozzle_known: bool = False) -> LiveStep:
        """Inspect one frame of the cycle.

        Parameters
        ----------
        frame : ndarray
            As :meth:`Inspector.inspect` takes it.
        nozzle_mm : float or None, keyword-only
            The nozzle's arc length from the source; None with ``nozzle_known``: it has left
            (the part is finished).
        nozzle_known : bool, keyword-only
            Whether the source gives the nozzle's position; False: estimate it.

        Raises
        ------
        FrameError
            From the inspector (size, dtype, channels).
        """
        insp = self.inspector
        if nozzle_known:
            prog = self.tracker.from_source(nozzle_mm)
            res = insp.inspect(frame, upto_mm=prog.judged_mm)
        else:
            probe_upto = self.tracker.probe_upto_mm
            probe = insp.inspect(frame, upto_mm=probe_upto)
            floor = max(NOISE_FLOOR_SIGMA * noise_sigma(frame), MIN_CONTRAST)
            present = probe.present & (np.nan_to_num(probe.contrast) >= floor)
            prog = self.tracker.from_presence(present, insp.arc_mm)
            res = (probe if prog.judged_mm == probe_upto
                   else insp.inspect(frame, upto_mm=prog.judged_mm))
        judged = None if prog.judged_mm is None else insp.arc_mm <= prog.judged_mm
        if prog.hidden_mm > 0 and judged is not None:
            judged &= insp.arc_mm > prog.hidden_mm
            # the inspector judges from the path's start; drop what lies under the nozzle there
            keep = tuple(d for d in res.defects
                         if not (d.start_mm <= d.end_mm and d.end_mm <= prog.hidden_mm))
            if len(keep) != len(res.defects):
                res = replace(res, defects=keep, verdict="NG" if keep else "OK")
        return LiveStep(result=res, progress=prog, judged=judged)


def _overlaps(a: Defect, b: Defect, tol_mm: float, length_mm: float | None) -> bool:
    def span(d):
        s, e = d.start_mm, d.end_mm
        if length_mm is not None and s > e:     # crosses the start of a closed path
            e += length_mm
        return s - tol_mm, e + tol_mm

    (s1, e1), (s2, e2) = span(a), span(b)
    if s1 <= e2 and s2 <= e1:
        return True
    if length_mm is not None:                   # also compare one lap apart
        return (s1 <= e2 + length_mm and s2 + length_mm <= e1) or \
               (s1 + length_mm <= e2 and s2 <= e1 + length_mm)
    return False


def defects_changed(before, after, *, tol_mm: float = 0.0, length_mm: float | None = None) -> bool:
    """Whether two frames' defect sets differ: a defect in one with none of the same type
    overlapping it (within ``tol_mm``) in the other. A defect that grows as more of the bead
    is judged is the same defect. ``length_mm``: a closed path's length (defects may cross
    its start), None for an open path."""
    before, after = tuple(before), tuple(after)
    for xs, ys in ((after, before), (before, after)):
        for d in xs:
            if not any(e.type == d.type and _overlaps(d, e, tol_mm, length_mm) for e in ys):
                return True
    return False


class RateMeter:
    """Frames per second over the last ``window_s`` seconds (at most ``maxlen`` frames)."""

    def __init__(self, window_s: float = 2.0, maxlen: int = 512):
        self.window_s = float(window_s)
        self._t: deque[float] = deque(maxlen=maxlen)

    def tick(self, t: float) -> None:
        self._t.append(float(t))

    def rate(self, now: float | None = None) -> float:
        """Frames per second; 0.0 with fewer than two frames in the window."""
        t = self._t
        if not t:
            return 0.0
        now = t[-1] if now is None else now
        while len(t) > 1 and now - t[0] > self.window_s:
            t.popleft()
        if len(t) < 2 or t[-1] <= t[0]:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])


class LatencyStats:
    """Latency percentiles in fixed memory: the last ``recent`` values exactly, and the whole
    run in a histogram of log-spaced bins from 0.01 ms to 100 s (about 1 % wide)."""

    _EDGES = np.geomspace(1e-2, 1e5, 1601)

    def __init__(self, recent: int = 1000):
        self._ring = np.full(int(recent), np.nan)
        self._i = 0
        self._hist = np.zeros(len(self._EDGES) + 1, np.int64)
        self.count = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        ms = float(ms)
        self._ring[self._i % len(self._ring)] = ms
        self._i += 1
        self._hist[np.searchsorted(self._EDGES, ms)] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, ms)

    def recent(self, q: float) -> float:
        """Percentile ``q`` (0..100) of the recent values; NaN when there are none."""
        v = self._ring[: min(self._i, len(self._ring))]
        return float(np.percentile(v, q)) if v.size else math.nan

    def overall(self, q: float) -> float:
        """Percentile ``q`` of every value so far, to the histogram's resolution (the upper
        edge of the bin that holds it); NaN when there are none."""
        if not self.count:
            return math.nan
        k = int(np.searchsorted(np.cumsum(self._hist), q / 100.0 * self.count))
        k = min(k, len(self._hist) - 1)
        if k >= len(self._EDGES):
            return self.max_ms
        return float(min(self._EDGES[k], self.max_ms))
