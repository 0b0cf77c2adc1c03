"""Stage 1, sampling: one ``cv2.remap`` gathers the profiles across the path at all stations.

The maps depend only on the stations (and the part's pose), so they are built once per
recipe and moved only when the pose changes.

Layout: the profiles come out (M, N), one row per sample offset across the path and one
column per station. Every later stage works on whole rows of N stations (contiguous), which
is what the edge finder's compiled kernels vectorise over; teaching and analysis, which look
at one station's profile at a time, use :func:`profiles_by_station` (N, M).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import Stations

__all__ = ["ProfileMaps", "build_maps", "sample_profiles", "profiles_by_station"]


@dataclass(frozen=True, eq=False)
class ProfileMaps:
    """Sampling maps for N profiles of M samples each.

    Attributes
    ----------
    t_px : (M,) float32
        Offsets of the samples along the station normal, px (negative: the left side).
    map1 : (M, N, 2) float32
        Sample positions (x, y) for ``cv2.remap``: row k holds the k-th offset at every
        station. One two-channel float map is faster than the fixed-point pair here
        (measured: 1.3 vs 2.4 ms for 6,000 × 97 samples, one thread) and keeps full sub-pixel
        precision instead of 1/32 px.
    map2 : None
        Kept for the ``cv2.remap`` call signature.
    """

    t_px: np.ndarray
    map1: np.ndarray
    map2: None = None

    @property
    def step_px(self) -> float:
        return float(self.t_px[1] - self.t_px[0])


def build_maps(stations: Stations, *, half_width_px: float, step_px: float = 0.5) -> ProfileMaps:
    """Maps that sample ``[-half_width_px, +half_width_px]`` along each station normal."""
    m = int(np.ceil(half_width_px / step_px))
    t = (np.arange(-m, m + 1) * step_px).astype(np.float32)
    xy = stations.xy.astype(np.float32)
    nrm = stations.normal_xy.astype(np.float32)
    xy_map = np.empty((len(t), len(xy), 2), np.float32)
    xy_map[..., 0] = xy[None, :, 0] + t[:, None] * nrm[None, :, 0]
    xy_map[..., 1] = xy[None, :, 1] + t[:, None] * nrm[None, :, 1]
    return ProfileMaps(t_px=t, map1=xy_map, map2=None)


def sample_profiles(gray: np.ndarray, maps: ProfileMaps) -> np.ndarray:
    """Profiles (M, N) uint8 from a grey uint8 frame: column i is station i's profile, row k
    the samples at offset ``t_px[k]``. Bilinear; samples outside the frame read the border
    (replicated)."""
    return cv2.remap(gray, maps.map1, maps.map2, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def profiles_by_station(gray: np.ndarray, maps: ProfileMaps) -> np.ndarray:
    """The same profiles one row per station, (N, M) float32."""
    return np.ascontiguousarray(sample_profiles(gray, maps).T, dtype=np.float32)
