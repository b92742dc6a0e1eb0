"""Pure, vectorised projections: a batch of point clouds -> ``(B, C, H, W)`` images.

Every event of a batch is binned at once with one ``np.bincount`` over precomputed flat
indices, so the cost per event is a handful of array operations, not a Python loop per
point (~100k events/s against ~3k/s for per-event ``np.histogram2d``).

Pixel value = ``transform(sum of charge in the pixel) / transform(charge_scale)``,
clipped to [0, 1] and then stored as uint8 (x255) or float16. ``charge_scale`` is a fixed
number recorded in the image file, never a per-event or per-file maximum, so training
and real data are scaled identically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from data_prep.errors import InputError
from data_prep.events import Event

#: view name -> (column on the image's horizontal axis, column on its vertical axis)
VIEW_AXES: dict[str, tuple[int, int]] = {"xy": (0, 1), "zy": (2, 1), "zx": (2, 0)}
CHARGE_TRANSFORMS = ("log1p", "linear", "binary")


@dataclass
class ImageConfig:
    """How point clouds become images (recorded in every image file and checkpoint)."""

    views: tuple[str, ...] = ("xy", "zy")  # channels, in order; any of VIEW_AXES
    size: int = 64  # pixels per side (Kuchera et al. used 128)
    x_range: tuple[float, float] = (-275.0, 275.0)  # mm, pad plane
    y_range: tuple[float, float] = (-275.0, 275.0)  # mm, pad plane
    z_range: tuple[float, float] = (0.0, 1000.0)  # mm, along the beam (drift)
    charge_transform: str = "log1p"  # log1p | linear | binary (hit/no hit)
    charge_scale: float = 10000.0  # ADC; summed pixel charge mapped to 1.0
    dtype: str = "uint8"  # uint8 | float16 on disk
    voxel_grid: int = 20  # voxels per axis for the 3-D baselines; 0 = none
    charge_column: str = "amplitude"  # Spyral: amplitude | integral

    def __post_init__(self) -> None:
        self.views = tuple(self.views)
        self.x_range = tuple(float(v) for v in self.x_range)
        self.y_range = tuple(float(v) for v in self.y_range)
        self.z_range = tuple(float(v) for v in self.z_range)
        self.validate()

    def validate(self) -> None:
        bad = [v for v in self.views if v not in VIEW_AXES]
        if not self.views or bad:
            raise InputError(f"views must be a non-empty subset of {list(VIEW_AXES)}, got {bad}")
        if self.size < 4:
            raise InputError(f"image size must be >= 4 pixels, got {self.size}")
        for name in ("x_range", "y_range", "z_range"):
            lo, hi = getattr(self, name)
            if not hi > lo:
                raise InputError(f"{name} must be (low, high) with high > low, got {(lo, hi)}")
        if self.charge_transform not in CHARGE_TRANSFORMS:
            raise InputError(f"charge_transform must be one of {CHARGE_TRANSFORMS}")
        if self.charge_scale <= 0:
            raise InputError(f"charge_scale must be > 0, got {self.charge_scale}")
        if self.dtype not in ("uint8", "float16"):
            raise InputError(f"dtype must be uint8 or float16, got {self.dtype!r}")
        if self.voxel_grid < 0:
            raise InputError(f"voxel_grid must be >= 0, got {self.voxel_grid}")
        if self.charge_column not in ("amplitude", "integral"):
            raise InputError("charge_column must be 'amplitude' or 'integral'")

    @property
    def ranges(self) -> np.ndarray:
        """``(3, 2)`` array of [low, high) in mm for x, y, z."""
        return np.array([self.x_range, self.y_range, self.z_range], dtype=np.float64)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> ImageConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown image config keys: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> ImageConfig:
        return cls.from_dict(json.loads(text))


@dataclass
class Projection:
    """What `project_arrays` returns for one batch."""

    images: np.ndarray  # (B, C, H, W) in config.dtype
    voxels: np.ndarray | None  # (B, G, G, G) in config.dtype, or None when voxel_grid == 0
    n_points: np.ndarray  # (B,) points per event before range cuts
    n_outside: np.ndarray  # (B,) points dropped as outside the ranges
    extra: dict = field(default_factory=dict)

    @property
    def empty(self) -> np.ndarray:
        """(B,) True where no point of the event landed inside the ranges."""
        return self.n_points - self.n_outside == 0


def _bin(values: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    # floor((v - lo) / width); callers have already dropped values outside [lo, hi)
    idx = ((values - lo) * (n / (hi - lo))).astype(np.int64)
    return np.minimum(idx, n - 1)  # guards v == hi - tiny rounding up to n


def _scale(summed: np.ndarray, config: ImageConfig) -> np.ndarray:
    # Images are sparse (hundreds of hit pixels out of thousands): transform only those.
    nz = np.flatnonzero(summed > 0)
    q = summed[nz]
    if config.charge_transform == "log1p":
        val = np.log1p(q) / np.log1p(config.charge_scale)
    elif config.charge_transform == "linear":
        val = q / config.charge_scale
    else:  # binary: any hit
        val = np.ones_like(q)
    np.clip(val, 0.0, 1.0, out=val)
    out = np.zeros(summed.shape, dtype=config.dtype)
    out[nz] = np.rint(val * 255.0) if config.dtype == "uint8" else val
    return out


def project_arrays(points: np.ndarray, counts: np.ndarray, config: ImageConfig) -> Projection:
    """Project a batch given as concatenated points.

    Parameters
    ----------
    points
        ``(sum(counts), 4+)`` array: x, y, z [mm], charge [ADC], extra columns ignored.
    counts
        ``(B,)`` number of points of each event, in order.
    config
        Views, size, ranges and charge transform.

    Returns
    -------
    Projection
        Images ``(B, C, S, S)`` (row = vertical axis ascending, column = horizontal axis),
        optional voxels, and per-event point counts.

    Examples
    --------
    >>> cfg = ImageConfig(views=("xy",), size=8, voxel_grid=0)
    >>> pts = np.array([[0.0, 0.0, 500.0, 100.0]])
    >>> project_arrays(pts, np.array([1]), cfg).images.shape
    (1, 1, 8, 8)
    """
    counts = np.asarray(counts, dtype=np.int64)
    batch = counts.shape[0]
    size = config.size
    n_chan = len(config.views)
    event_of_point = np.repeat(np.arange(batch, dtype=np.int64), counts)
    xyz = points[:, :3]
    ranges = config.ranges
    inside = np.all((xyz >= ranges[:, 0]) & (xyz < ranges[:, 1]), axis=1)
    n_outside = np.bincount(event_of_point[~inside], minlength=batch)

    xyz = xyz[inside]
    charge = points[inside, 3].astype(np.float64)
    event_of_point = event_of_point[inside]

    # One flat index per (point, view) into a (B, C, S, S) buffer, one bincount for all.
    bins = [_bin(xyz[:, a], *ranges[a], size) for a in range(3)]
    flat = []
    for c, view in enumerate(config.views):
        col_axis, row_axis = VIEW_AXES[view]
        flat.append(((event_of_point * n_chan + c) * size + bins[row_axis]) * size + bins[col_axis])
    summed = np.bincount(
        np.concatenate(flat), weights=np.tile(charge, n_chan), minlength=batch * n_chan * size * size
    )
    images = _scale(summed, config).reshape(batch, n_chan, size, size)

    voxels = None
    if config.voxel_grid:
        g = config.voxel_grid
        vb = [_bin(xyz[:, a], *ranges[a], g) for a in range(3)]
        vflat = ((event_of_point * g + vb[0]) * g + vb[1]) * g + vb[2]
        vsum = np.bincount(vflat, weights=charge, minlength=batch * g**3)
        voxels = _scale(vsum, config).reshape(batch, g, g, g)

    return Projection(images=images, voxels=voxels, n_points=counts, n_outside=n_outside)


def project(events: Sequence[Event], config: ImageConfig) -> Projection:
    """Project a list of `Event` objects; see `project_arrays`."""
    if not events:
        shape = (0, len(config.views), config.size, config.size)
        g = config.voxel_grid
        return Projection(
            images=np.zeros(shape, dtype=config.dtype),
            voxels=np.zeros((0, g, g, g), dtype=config.dtype) if g else None,
            n_points=np.zeros(0, np.int64),
            n_outside=np.zeros(0, np.int64),
        )
    counts = np.array([e.points.shape[0] for e in events], dtype=np.int64)
    points = np.concatenate([e.points[:, :4] for e in events], axis=0)
    return project_arrays(points, counts, config)
