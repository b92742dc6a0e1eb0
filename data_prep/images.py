"""Pure, vectorised projections: a batch of point clouds -> ``(B, C, H, W)`` images.

Every event of a batch is binned at once: one flat index per (point, view) into the
batch's image buffer, then one scatter-add over those indices, so the cost per event is
a handful of array operations, not a Python loop per point (~30k events/s at 500
points/event with voxels, against ~3k/s for per-event ``np.histogram2d``).

Pixel value = ``transform(sum of charge in the pixel) / transform(charge_scale)``,
clipped to [0, 1] and then stored as uint8 (x255) or float16. ``charge_scale`` is a fixed
number recorded in the image file, never a per-event or per-file maximum, so training
and real data are scaled identically. Charge <= 0 (baseline-subtracted amplitudes) is
clipped to zero and counted (`Projection.n_nonpositive`); an event with no point of
positive charge inside the ranges is *empty* (blank images).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from data_prep.beamaxis import centre_on_beam, centre_on_event_lines, check_axis
from data_prep.beamline import beam_line_points
from data_prep.cluster import dbscan_noise
from data_prep.errors import InputError
from data_prep.events import Event
from data_prep.features import (
    BAND_COT,
    BAND_LOG10_INVARIANT,
    BAND_MIN_TRACKS,
    CLUSTER_JOINS,
    CORE_MM,
    FEATURE_SETS,
    event_features,
    feature_names,
)
from data_prep.structured import (
    StructuredNoiseRules,
    group_medians,
    pad_ids,
    spark_mask,
    structured_noise_mask,
)

#: view name -> (column on the image's horizontal axis, column on its vertical axis)
VIEW_AXES: dict[str, tuple[int, int]] = {"xy": (0, 1), "zy": (2, 1), "zx": (2, 0)}
CHARGE_TRANSFORMS = ("log1p", "linear", "binary")
#: what a pixel holds: the summed charge, the largest point charge, or 1 where hit
PIXEL_VALUES = ("sum", "max", "occupancy")
CHARGE_NORMS = ("none", "event", "quantile")
DENOISE = ("none", "dbscan", "hdbscan")
STRUCTURED_NOISE = ("none", "rules")
BEAM_LINE = ("none", "ransac")
BEAM_AXIS = ("none", "run")
CHARGE_CALIBRATIONS = ("none", "proton_band")
#: a run file with too few band tracks of its own: read in the unit of all the files
#: preprocessed or classified with it, pooled ("pooled"), or without a unit ("none")
CALIBRATION_FALLBACKS = ("pooled", "none")
#: probability levels of the point-charge quantiles that ``charge_norm=quantile`` matches
QUANTILE_LEVELS: tuple[float, ...] = (0.01, *(round(0.05 * i, 2) for i in range(1, 20)), 0.99)


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
    # Robust inputs for detectors other than the simulated one (docs/sim-to-real.md).
    # Channels per view, in order (channel = view index * len(pixel_values) + value index):
    # sum of charge, max point charge, occupancy (hit or not; blind to the charge scale).
    pixel_values: tuple[str, ...] = ("sum",)
    # none | event | quantile. event: multiply each event's charges so that their median
    # (after the cuts below) equals charge_reference -- an unknown gain drops out, per
    # event, and so does the absolute dE/dx. quantile: map the run's point-charge
    # quantiles (QUANTILE_LEVELS, after the cuts below) onto the training set's, one map
    # per run, so an unknown gain or shaping drops out while events keep their relative
    # charge (data_prep.quantiles computes the run's from a seeded sample of its events).
    charge_norm: str = "none"
    charge_reference: float = 100.0  # ADC; the median point charge after normalisation
    # quantile: the training set's point-charge quantiles (recorded in the model) ...
    charge_quantiles: tuple[float, ...] = ()
    # ... and those of the run being projected (set per run; not part of the model)
    run_quantiles: tuple[float, ...] = ()
    # none | run: first of all, every point's x, y are measured from the run's beam line
    # (x0 + ax z, y0 + ay z), fitted per run file (data_prep.beamaxis), so the beam mask,
    # the features' beam core and the images are centred on the beam, not on the detector
    # axis (the E-B angle shears the beam off it by up to ~100 mm)
    beam_axis: str = "none"
    # ... and that line, (x0, ax, y0, ay) in mm and mm/mm (set per file; not part of the model)
    run_beam_axis: tuple[float, ...] = ()
    # with beam_axis=run: each event's x, y then measured from its own beam ion's line where
    # it shows outside the run's (data_prep.beamaxis.event_line): an ion diverging by 2
    # deg leaves the 30 mm core, and its vertex and residue with it
    event_beam_line: bool = False
    beam_mask_mm: float = 0.0  # drop points within this radius of the beam axis; 0 = keep
    # none | ransac: also drop the beam ions found as lines (data_prep.beamline): among
    # the points within beam_line_search_mm of the axis, RANSAC lines within
    # beam_line_max_angle_deg of z with >= beam_line_min_points points within
    # beam_line_radius_mm spanning >= beam_line_min_length_mm in z; each line's points
    # from its first to its last inlier (it stops at the vertex) go, up to
    # beam_line_max_lines ions. The features count them as beam, never as tracks.
    beam_line: str = "none"
    beam_line_search_mm: float = 60.0
    beam_line_radius_mm: float = 12.0
    beam_line_max_angle_deg: float = 8.0
    beam_line_min_points: int = 8
    beam_line_min_length_mm: float = 100.0
    beam_line_max_lines: int = 5
    beam_line_max_start_mm: float = 1000.0
    beam_line_stop_at_vertex: bool = False  # the line ends where a track leaves it
    # none | dbscan | hdbscan: drop the points DBSCAN calls noise (fewer than
    # denoise_min_samples points, itself included, within denoise_eps_mm, and none such
    # within reach), the way Spyral's clustering phase drops stray pad hits; or those
    # scikit-learn's HDBSCAN calls noise (min_cluster_size = denoise_min_cluster, min_samples
    # = denoise_min_samples; no fixed radius, so sparse tracks of a low gain survive)
    denoise: str = "none"
    denoise_eps_mm: float = 20.0
    denoise_min_samples: int = 4
    denoise_min_cluster: int = 10  # hdbscan: smallest group of points that is a track
    # none | tracks_v1 | v2 | v3 | v6 | v7 | v8: also compute each event's physics features
    # (data_prep.features.FEATURE_SETS, from the raw points, centred with beam_axis=run:
    # the cleaning above does not touch them) for feature models
    features: str = "none"
    # none | proton_band: the features also give the event's charges in its run's own unit
    # (data_prep.features.run_columns): the median charge per mm of the run file's first
    # tracks in the elastic-proton band (polar cot and log10 elastic invariant within the
    # ranges below, at least calibration_min_tracks of them), measured on a seeded sample
    # of the file's events (data_prep.quantiles.charge_units) -- an unknown gain drops out
    # per run while dE/dx stays (docs/sim-to-real.md, "A run's charge unit")
    charge_calibration: str = "none"
    calibration_cot: tuple[float, float] = BAND_COT
    calibration_log10_invariant: tuple[float, float] = BAND_LOG10_INVARIANT
    calibration_min_tracks: int = BAND_MIN_TRACKS
    # pooled | none: a file with fewer band tracks of its own takes the unit of the band
    # tracks of all the files read with it together (files of one run), or stays without
    calibration_fallback: str = "pooled"
    # ... and that unit in ADC per mm (set per file, NaN: too few band tracks; 0: not
    # measured; not part of the model)
    run_charge_unit: float = 0.0
    # weight of z in the features' track clustering distance (data_prep.features
    # .track_clusters): 1 = plain 3-D DBSCAN (tracks_v1-v3 as first measured); 0.5 keeps
    # a steep track with one point per pad in one cluster (docs/sim-to-real.md,
    # "Clustering that keeps a steep track whole")
    cluster_z_scale: float = 1.0
    # radius of the features' beam core about the (run's) beam line: points within it are
    # beam, never clustered as tracks (data_prep.features.track_clusters); 30 mm, the
    # widest blind beam-pad radius e15503b_randomized draws
    track_core_mm: float = CORE_MM
    # none | helix_turns: join the features' clusters that are pieces of one helix (the
    # beam core cuts a winding track into one piece per turn) before the tracks are named:
    # circles that overlap, own vertices a whole number of pitches apart
    # (data_prep.features.join_pieces). Measured on the recipe and not kept: it lowered
    # the validation proton F1 by 0.005 (docs/sim-to-real.md, "Joining the pieces of a
    # helix")
    cluster_join: str = "none"
    # none | rules: first of all (before the features and the projection) drop structured
    # noise by data_prep.structured's rules: pads firing in more than hot_pad_fraction of
    # their run's events (from a seeded sample of hot_pad_sample events of each file),
    # AGET chips with >= chip_min_pads points within +-chip_window_mm in z, isolated points
    # in z slices (+-burst_window_mm) of >= burst_min_points points spread over the plane,
    # and sparks: a z slab where >= spark_min_cells cells of a 20 mm grid are filled with
    # the eight around them (0: no spark rule)
    structured_noise: str = "none"
    hot_pad_fraction: float = 0.5
    hot_pad_sample: int = 500
    chip_min_pads: int = 48
    chip_window_mm: float = 12.0
    burst_min_points: int = 15
    burst_window_mm: float = 12.5
    spark_min_cells: int = 4
    # charge_norm=quantile: the run's quantiles of the points left after the structured-noise
    # rules (the points the images are made of). False in configs recorded before
    # 2026-12-05 (`from_dict`), whose quantiles took those points too: a run's sparks or
    # hot pads moved its quantile map, and so every event's image
    quantiles_after_rules: bool = True

    def __post_init__(self) -> None:
        self.views = tuple(self.views)
        self.pixel_values = tuple(self.pixel_values)
        self.x_range = tuple(float(v) for v in self.x_range)
        self.y_range = tuple(float(v) for v in self.y_range)
        self.z_range = tuple(float(v) for v in self.z_range)
        self.charge_quantiles = tuple(float(v) for v in self.charge_quantiles)
        self.run_quantiles = tuple(float(v) for v in self.run_quantiles)
        self.run_beam_axis = tuple(self.run_beam_axis)
        self.calibration_cot = tuple(float(v) for v in self.calibration_cot)
        self.calibration_log10_invariant = tuple(float(v) for v in self.calibration_log10_invariant)
        self.validate()

    def validate(self) -> None:
        bad = [v for v in self.views if v not in VIEW_AXES]
        if not self.views or bad:
            raise InputError(f"views must be a non-empty subset of {list(VIEW_AXES)}, got {bad}")
        if len(set(self.views)) != len(self.views):
            raise InputError(f"views must not repeat, got {list(self.views)}")
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
        bad = [v for v in self.pixel_values if v not in PIXEL_VALUES]
        if not self.pixel_values or bad or len(set(self.pixel_values)) < len(self.pixel_values):
            raise InputError(f"pixel_values must be distinct values of {list(PIXEL_VALUES)}")
        if self.charge_norm not in CHARGE_NORMS:
            raise InputError(f"charge_norm must be one of {CHARGE_NORMS}")
        if self.denoise not in DENOISE:
            raise InputError(f"denoise must be one of {DENOISE}")
        if self.charge_reference <= 0 or self.beam_mask_mm < 0 or self.denoise_eps_mm <= 0:
            raise InputError("charge_reference and denoise_eps_mm must be > 0, beam_mask_mm >= 0")
        if self.denoise_min_samples < 1 or self.denoise_min_cluster < 2:
            raise InputError("denoise_min_samples must be >= 1, denoise_min_cluster >= 2")
        for name in ("charge_quantiles", "run_quantiles"):
            q = np.asarray(getattr(self, name))
            if len(q) and (len(q) != len(QUANTILE_LEVELS) or np.any(np.diff(q) < 0)):
                raise InputError(
                    f"{name} must be {len(QUANTILE_LEVELS)} non-decreasing charges "
                    f"(at QUANTILE_LEVELS), got {len(q)}"
                )
        if self.beam_axis not in BEAM_AXIS:
            raise InputError(f"beam_axis must be one of {BEAM_AXIS}, got {self.beam_axis!r}")
        if self.event_beam_line and self.beam_axis != "run":
            raise InputError("event_beam_line needs beam_axis=run (the event's line refines "
                             "the run's)")  # fmt: skip
        if self.run_beam_axis:
            check_axis(self.run_beam_axis)
            self.run_beam_axis = tuple(float(v) for v in self.run_beam_axis)
        if self.beam_line not in BEAM_LINE:
            raise InputError(f"beam_line must be one of {BEAM_LINE}, got {self.beam_line!r}")
        if (
            min(self.beam_line_search_mm, self.beam_line_radius_mm, self.beam_line_min_length_mm)
            <= 0
            or not 0 < self.beam_line_max_angle_deg < 45
        ):
            raise InputError("beam_line_search_mm, beam_line_radius_mm and "
                             "beam_line_min_length_mm must be > 0, "
                             "beam_line_max_angle_deg in (0, 45)")  # fmt: skip
        if not isinstance(self.beam_line_stop_at_vertex, bool):
            raise InputError("beam_line_stop_at_vertex must be true or false")
        if self.beam_line_min_points < 2 or self.beam_line_max_lines < 1:
            raise InputError("beam_line_min_points must be >= 2, beam_line_max_lines >= 1")
        if not self.track_core_mm >= 0:
            raise InputError(f"track_core_mm must be >= 0, got {self.track_core_mm!r}")
        if not self.cluster_z_scale > 0:
            raise InputError(f"cluster_z_scale must be > 0, got {self.cluster_z_scale!r}")
        if self.cluster_join not in CLUSTER_JOINS:
            raise InputError(f"cluster_join must be one of {CLUSTER_JOINS}, "
                             f"got {self.cluster_join!r}")  # fmt: skip
        if self.features not in FEATURE_SETS:
            raise InputError(f"features must be one of {FEATURE_SETS}, got {self.features!r}")
        if self.charge_calibration not in CHARGE_CALIBRATIONS:
            raise InputError(f"charge_calibration must be one of {CHARGE_CALIBRATIONS}, "
                             f"got {self.charge_calibration!r}")  # fmt: skip
        if self.charge_calibration != "none" and self.features in ("none", "tracks_v1"):
            raise InputError("charge_calibration=proton_band finds the band with the helix "
                             "features: set features to tracks_v2 or later")  # fmt: skip
        for name in ("calibration_cot", "calibration_log10_invariant"):
            pair = getattr(self, name)
            if len(pair) != 2 or not pair[1] > pair[0]:
                raise InputError(f"{name} must be (low, high) with high > low")
        if self.calibration_min_tracks < 1:
            raise InputError("calibration_min_tracks must be >= 1")
        if self.calibration_fallback not in CALIBRATION_FALLBACKS:
            raise InputError(f"calibration_fallback must be one of {CALIBRATION_FALLBACKS}, "
                             f"got {self.calibration_fallback!r}")  # fmt: skip
        if not (self.run_charge_unit >= 0 or math.isnan(self.run_charge_unit)):
            raise InputError(f"run_charge_unit must be >= 0, got {self.run_charge_unit!r}")
        if self.structured_noise not in STRUCTURED_NOISE:
            raise InputError(f"structured_noise must be one of {STRUCTURED_NOISE}")
        if not 0 < self.hot_pad_fraction < 1 or self.hot_pad_sample < 1:
            raise InputError("hot_pad_fraction must be in (0, 1) and hot_pad_sample >= 1")
        if self.chip_min_pads < 2 or self.burst_min_points < 2:
            raise InputError("chip_min_pads and burst_min_points must be >= 2")
        if self.chip_window_mm <= 0 or self.burst_window_mm <= 0:
            raise InputError("chip_window_mm and burst_window_mm must be > 0")
        if self.spark_min_cells < 0:
            raise InputError("spark_min_cells must be >= 0 (0: no spark rule)")

    @property
    def rules(self) -> StructuredNoiseRules:
        """The structured-noise thresholds of this config."""
        return StructuredNoiseRules(
            hot_pad_fraction=self.hot_pad_fraction,
            chip_min_pads=self.chip_min_pads,
            chip_window_mm=self.chip_window_mm,
            burst_min_points=self.burst_min_points,
            burst_window_mm=self.burst_window_mm,
            spark_min_cells=self.spark_min_cells,
        )

    def features_only(self) -> ImageConfig:
        """This config with the cheapest images, for what reads only the features: they
        come from the raw points, so the images' settings do not change them."""
        lean = {"views": ["xy"], "size": 4, "pixel_values": ["sum"], "voxel_grid": 0,
                "denoise": "none", "beam_mask_mm": 0.0, "charge_norm": "none"}  # fmt: skip
        return ImageConfig.from_dict({**self.to_dict(), **lean})

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Columns of the features this config computes (`data_prep.features`)."""
        return feature_names(self.features, run_unit=self.charge_calibration != "none")

    @property
    def n_channels(self) -> int:
        """Image channels: one per (view, pixel value)."""
        return len(self.views) * len(self.pixel_values)

    @property
    def cleans(self) -> bool:
        """Whether points are removed or rescaled before projection."""
        return (
            self.beam_mask_mm > 0
            or self.beam_line != "none"
            or self.denoise != "none"
            or self.charge_norm != "none"
            or self.structured_noise != "none"
        )

    def beam_points(self, points: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
        """(N,) True for the points on a fitted beam line (``beam_line``), or None."""
        if self.beam_line == "none":
            return None
        return beam_line_points(
            points,
            counts,
            search_mm=self.beam_line_search_mm,
            radius_mm=self.beam_line_radius_mm,
            max_angle_deg=self.beam_line_max_angle_deg,
            min_points=self.beam_line_min_points,
            min_length_mm=self.beam_line_min_length_mm,
            max_lines=self.beam_line_max_lines,
            max_start_mm=self.beam_line_max_start_mm,
            stop_at_vertex=self.beam_line_stop_at_vertex,
        )

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
        if d.get("charge_quantiles") and "quantiles_after_rules" not in d:
            d = {**d, "quantiles_after_rules": False}  # recorded before the key: as then
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
    # (B,) points inside the ranges whose charge is <= 0: they add nothing to any pixel
    n_nonpositive: np.ndarray | None = None
    n_removed: np.ndarray | None = None  # (B,) points dropped by the beam mask / denoising
    features: np.ndarray | None = None  # (B, F) float32 when config.features names a set
    # (B,) True where the spark rule removed a spark; None without structured_noise rules
    sparked: np.ndarray | None = None

    @property
    def empty(self) -> np.ndarray:
        """(B,) True where no point with positive charge landed inside the ranges (after
        the beam mask and denoising): the images are blank, and a model's output on them
        means nothing."""
        usable = self.n_points - self.n_outside
        for dropped in (self.n_nonpositive, self.n_removed):
            if dropped is not None:
                usable = usable - dropped
        return usable == 0


def clean_points(
    points: np.ndarray,
    counts: np.ndarray,
    config: ImageConfig,
    *,
    normalise: bool = True,
    beam: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the beam masks, denoising and charge normalisation of ``config``.

    ``beam``: `ImageConfig.beam_points` of these points when the caller has it already.
    Returns the kept points (x, y, z, charge; charge rescaled for ``charge_norm`` event or
    quantile, the latter only with ``normalise``) and their counts per event. Each step
    acts on one event at a time (the quantile map is fixed per run), so an event's image
    never depends on the others of its batch.
    """
    pts = np.array(points[:, :4], dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    event = np.repeat(np.arange(len(counts)), counts)
    keep = np.ones(len(pts), dtype=bool)
    if config.beam_mask_mm > 0:
        keep &= np.hypot(pts[:, 0], pts[:, 1]) >= config.beam_mask_mm
    if config.beam_line != "none":
        keep &= ~(config.beam_points(pts, counts) if beam is None else beam)
    if config.denoise != "none":
        sub = np.bincount(event[keep], minlength=len(counts))
        if config.denoise == "dbscan":
            noise = dbscan_noise(pts[keep], sub, config.denoise_eps_mm, config.denoise_min_samples)
        else:
            noise = hdbscan_noise(
                pts[keep], sub, config.denoise_min_cluster, config.denoise_min_samples
            )
        keep[np.flatnonzero(keep)[noise]] = False
    pts, event = pts[keep], event[keep]
    counts = np.bincount(event, minlength=len(counts)).astype(np.int64)
    if config.charge_norm == "event" and len(pts):
        median = _event_medians(pts[:, 3], counts)
        factor = np.where(median > 0, config.charge_reference / np.where(median > 0, median, 1), 1)
        pts[:, 3] *= np.repeat(factor, counts)
    elif config.charge_norm == "quantile" and normalise:
        if not config.charge_quantiles or not config.run_quantiles:
            raise InputError(
                "charge_norm=quantile needs the training set's charge_quantiles and the "
                "run's run_quantiles (data_prep.quantiles.for_run)"
            )
        pts[:, 3] = map_quantiles(pts[:, 3], config.run_quantiles, config.charge_quantiles)
    return pts, counts


def map_quantiles(charge: np.ndarray, run_q: Sequence[float], ref_q: Sequence[float]) -> np.ndarray:
    """Move charges so that the run's quantiles ``run_q`` land on the reference ``ref_q``.

    Piecewise linear between the quantiles (`np.interp`); below the first and above the
    last one the charge is scaled by the ratio of the outermost quantiles, so the map stays
    increasing and a charge beyond the sampled range is not clipped. Quantiles repeated in
    ``run_q`` (integer ADC) keep the first of their reference values. Charges <= 0 stay.
    """
    run_q = np.asarray(run_q, dtype=np.float64)
    ref_q = np.asarray(ref_q, dtype=np.float64)
    run_u, first = np.unique(run_q, return_index=True)
    ref_u = ref_q[first]
    q = np.asarray(charge, dtype=np.float64)
    out = np.interp(q, run_u, ref_u)
    lo, hi = q < run_u[0], q > run_u[-1]
    out[lo] = q[lo] * (ref_u[0] / run_u[0]) if run_u[0] > 0 else q[lo]
    out[hi] = q[hi] * (ref_u[-1] / run_u[-1]) if run_u[-1] > 0 else q[hi]
    return np.where(q > 0, out, q)


def hdbscan_noise(
    points: np.ndarray, counts: np.ndarray, min_cluster_size: int, min_samples: int
) -> np.ndarray:
    """(N,) True for the points scikit-learn's HDBSCAN labels noise (-1), event by event.

    An event with fewer points than ``min_cluster_size`` is all noise (no cluster can
    form). One fit per event: HDBSCAN has no radius to keep events apart in one tree.
    """
    from sklearn.cluster import HDBSCAN

    xyz = np.asarray(points[:, :3], dtype=np.float64)
    noise = np.ones(len(xyz), dtype=bool)
    ends = np.cumsum(counts)
    for start, stop in zip(ends - counts, ends, strict=True):
        if stop - start < max(min_cluster_size, 2):
            continue
        # allow_single_cluster: an event of one track is that track, not all noise
        labels = HDBSCAN(
            min_cluster_size=min_cluster_size,
            min_samples=min(min_samples, stop - start),
            allow_single_cluster=True,
            copy=True,
        ).fit_predict(xyz[start:stop])
        noise[start:stop] = labels < 0
    return noise


def _event_medians(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of ``values`` within each event (0 for an event without points)."""
    return group_medians(values, np.repeat(np.arange(len(counts)), counts), len(counts))


def project_arrays(
    points: np.ndarray,
    counts: np.ndarray,
    config: ImageConfig,
    pads: np.ndarray | None = None,
    hot: np.ndarray | None = None,
) -> Projection:
    """Project a batch given as concatenated points.

    Parameters
    ----------
    points
        ``(sum(counts), 4+)`` array: x, y, z [mm], charge [ADC], extra columns ignored.
    counts
        ``(B,)`` number of points of each event, in order.
    config
        Views, size, ranges and charge transform.
    pads, hot
        ``(N,)`` pad id of each point (-1 unknown) and True where it is on a hot pad of
        its run, for ``structured_noise="rules"`` (without them only the burst rule acts).

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
    size, g = config.size, config.voxel_grid
    n_chan = config.n_channels
    per_event = n_chan * size * size + g**3
    if batch > 1 and batch * per_event > _MAX_BUFFER:
        step = max(1, _MAX_BUFFER // per_event)
        return _project_in_slices(points, counts, config, step, pads, hot)
    n_points = counts
    if config.beam_axis == "run":
        points = centred_points(points, config, counts)
    sparked = None
    if config.structured_noise != "none":
        points, counts, sparked = _without_structured_noise(points, counts, config, pads, hot)
    features = None
    beam = config.beam_points(points, counts)
    if config.features != "none":
        features = event_features(points, counts, config.features, beam=beam,
                                  z_scale=config.cluster_z_scale,
                                  core_mm=config.track_core_mm,
                                  run_unit=run_charge_unit(config),
                                  join=config.cluster_join)  # fmt: skip
    if config.cleans:
        points, counts = clean_points(points, counts, config, beam=beam)
        proj = _project(points, counts, config)
        proj.n_points, proj.n_removed = n_points, n_points - counts
    else:
        proj = _project(points, counts, config)
    proj.features, proj.sparked = features, sparked
    return proj


def run_charge_unit(config: ImageConfig) -> float | None:
    """The run's charge unit for the features (`data_prep.features.run_columns`), None
    without ``charge_calibration``; InputError where the file's was never measured."""
    if config.charge_calibration == "none":
        return None
    if config.run_charge_unit == 0:
        raise InputError(
            "charge_calibration=proton_band needs the run file's charge unit, "
            "run_charge_unit (data_prep.quantiles.charge_units)"
        )
    return config.run_charge_unit


def centred_points(points: np.ndarray, config: ImageConfig, counts: np.ndarray) -> np.ndarray:
    """``points`` (``counts`` per event) with x, y measured from the run's beam line
    (``beam_axis=run``), in the simulation frame (a run along -z turned around,
    `data_prep.beamaxis`); with ``event_beam_line`` then from each event's own line."""
    if not config.run_beam_axis:
        raise InputError(
            "beam_axis=run needs the run file's fitted beam axis, run_beam_axis "
            "(data_prep.quantiles.beam_axes)"
        )
    points = centre_on_beam(points, config.run_beam_axis, config.z_range)
    if config.event_beam_line:
        points = centre_on_event_lines(points, counts)
    return points


def remove_structured_noise(
    points: np.ndarray,
    counts: np.ndarray,
    config: ImageConfig,
    pads: np.ndarray | None = None,
    hot: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points and counts without what ``config``'s structured-noise rules drop."""
    points, counts, _ = _without_structured_noise(points, counts, config, pads, hot)
    return points, counts


def _without_structured_noise(
    points: np.ndarray,
    counts: np.ndarray,
    config: ImageConfig,
    pads: np.ndarray | None = None,
    hot: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`remove_structured_noise`, and (B,) True for the events the spark rule cleaned."""
    n = len(points)
    pads = np.full(n, -1, dtype=np.int64) if pads is None else np.asarray(pads, np.int64)
    hot = np.zeros(n, dtype=bool) if hot is None else np.asarray(hot, dtype=bool)
    event = np.repeat(np.arange(len(counts)), counts)
    spark = spark_mask(np.asarray(points[:, :3], dtype=np.float64), event, config.rules)
    drop = structured_noise_mask(points, counts, pads, hot, config.rules, spark=spark)
    kept = np.bincount(event[~drop], minlength=len(counts)).astype(np.int64)
    sparked = np.bincount(event[spark], minlength=len(counts)) > 0
    return points[~drop], kept, sparked


def _project(points: np.ndarray, counts: np.ndarray, config: ImageConfig) -> Projection:
    """`project_arrays` after cleaning: bin every point of the batch at once."""
    batch = counts.shape[0]
    size, g = config.size, config.voxel_grid
    n_chan = config.n_channels
    img_per_event = n_chan * size * size
    n_img = batch * img_per_event
    dump = n_img + batch * g**3  # indices >= dump collect the points outside the ranges
    columns = np.ascontiguousarray(points[:, :4].T, dtype=np.float64)  # x, y, z, charge
    event_of_point = np.repeat(np.arange(batch, dtype=np.int64), counts)
    ranges = config.ranges
    inside = np.ones(points.shape[0], dtype=bool)
    bins, vbins = [], []  # per axis: pixel and voxel index of every point
    for a in range(3):
        lo, hi = ranges[a]
        col = columns[a]
        inside &= col >= lo
        inside &= col < hi
        shifted = col - lo
        for n, out in ((size, bins), (g, vbins)):
            if n:
                # floor((v - lo) * n / (hi - lo)); clipped so that outside points still
                # index within one event's block (they are moved past `dump` below)
                idx = (shifted * (n / (hi - lo))).astype(np.int64)
                np.clip(idx, 0, n - 1, out=idx)
                out.append(idx)
    outside = ~inside
    n_outside = np.bincount(event_of_point[outside], minlength=batch)
    # Non-positive charge (baseline-subtracted real data dips below zero) is clipped to
    # zero: a negative point would cancel real charge in its pixel, and a shift would
    # depend on each file's baseline. Such points are counted, never drawn.
    nonpositive = inside & ~(columns[3] > 0)
    n_nonpositive = np.bincount(event_of_point[nonpositive], minlength=batch)
    charge = np.where(nonpositive, 0.0, columns[3]) if nonpositive.any() else columns[3]

    # Flat indices into one buffer: images (B, C, S, S), then voxels (B, G, G, G).
    flats = []
    base = event_of_point * img_per_event
    base[outside] = dump
    n_val = len(config.pixel_values)
    for c, view in enumerate(config.views):
        col_axis, row_axis = VIEW_AXES[view]
        flat = bins[row_axis] * size
        flat += base
        flat += bins[col_axis]
        for k in range(n_val):
            # one index array per (view, value): channel c * n_val + k
            flats.append(flat + (c * n_val + k) * size * size if c or k else flat)
    if g:
        base = event_of_point * g**3
        base += n_img
        base[outside] = dump
        flat = vbins[0] * (g * g)
        flat += base
        flat += vbins[1] * g
        flat += vbins[2]
        flats.append(flat)

    sums = _sum_at(flats, charge, dump + max(img_per_event, g**3))
    out = np.zeros(dump, dtype=config.dtype)
    kinds = [*(config.pixel_values * len(config.views)), *(["sum"] if g else [])]
    for flat, summed, kind in zip(flats, sums, kinds, strict=True):
        keep = (flat < dump) & (summed > 0)
        if kind == "max":
            summed = _max_at(flat, charge, dump + max(img_per_event, g**3))
        # Points sharing a pixel carry the same value, so repeated writes agree.
        out[flat[keep]] = _scale_values(summed[keep], config, occupancy=kind == "occupancy")
    images = out[:n_img].reshape(batch, n_chan, size, size)
    voxels = out[n_img:].reshape(batch, g, g, g) if g else None
    return Projection(
        images=images,
        voxels=voxels,
        n_points=counts,
        n_outside=n_outside,
        n_nonpositive=n_nonpositive,
    )


#: Largest scratch buffer (elements) one pass uses; bigger batches are cut into slices.
_MAX_BUFFER = 1 << 23
_scratch = threading.local()


def _sum_at(flats: list[np.ndarray], weights: np.ndarray, size: int) -> list[np.ndarray]:
    """For every entry of each index array, the summed weights of all equal entries.

    Scatter-adds into a zeroed scratch buffer kept per thread, reads the sums back and
    zeroes only the touched entries. Images are sparse (~1-2 % of pixels hit), so this
    beats allocating, filling and scanning a dense ``np.bincount`` output (~4x) or
    sorting the indices (~3x). `np.add.at` adds in index order and the index arrays
    cover disjoint pixels, so each sum is bit-identical to ``np.bincount``'s.
    """
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.size < size:
        buf = _scratch.buf = np.zeros(max(size, 1 << 16), dtype=np.float64)
    try:
        for flat in flats:
            np.add.at(buf, flat, weights)
        return [buf[flat] for flat in flats]
    finally:
        for flat in flats:
            buf[flat] = 0.0  # leave the buffer clean even if interrupted


def _max_at(flat: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """For every entry of ``flat``, the largest weight of all equal entries."""
    buf = np.full(size, -np.inf)
    np.maximum.at(buf, flat, weights)
    return buf[flat]


def _project_in_slices(
    points: np.ndarray,
    counts: np.ndarray,
    config: ImageConfig,
    step: int,
    pads: np.ndarray | None = None,
    hot: np.ndarray | None = None,
) -> Projection:
    ends = np.cumsum(counts)
    starts = ends - counts
    parts = []
    for lo in range(0, len(counts), step):
        hi = min(lo + step, len(counts))
        sl = slice(starts[lo], ends[hi - 1]) if hi > lo else slice(0, 0)
        parts.append(
            project_arrays(
                points[sl],
                counts[lo:hi],
                config,
                None if pads is None else pads[sl],
                None if hot is None else hot[sl],
            )
        )
    return Projection(
        images=np.concatenate([p.images for p in parts]),
        voxels=None if parts[0].voxels is None else np.concatenate([p.voxels for p in parts]),
        n_points=counts,
        n_outside=np.concatenate([p.n_outside for p in parts]),
        n_nonpositive=np.concatenate([p.n_nonpositive for p in parts]),
        n_removed=None
        if parts[0].n_removed is None
        else np.concatenate([p.n_removed for p in parts]),
        features=None if parts[0].features is None else np.concatenate([p.features for p in parts]),
        sparked=None if parts[0].sparked is None else np.concatenate([p.sparked for p in parts]),
    )


def _scale_values(q: np.ndarray, config: ImageConfig, *, occupancy: bool = False) -> np.ndarray:
    """Positive summed charges -> stored pixel values (see the module docstring)."""
    if occupancy:
        val = np.ones_like(q)
    elif config.charge_transform == "log1p":
        val = np.log1p(q) / np.log1p(config.charge_scale)
    elif config.charge_transform == "linear":
        val = q / config.charge_scale
    else:  # binary: any hit
        val = np.ones_like(q)
    np.clip(val, 0.0, 1.0, out=val)
    return np.rint(val * 255.0) if config.dtype == "uint8" else val


def project(
    events: Sequence[Event],
    config: ImageConfig,
    hot_pads: dict[int, np.ndarray] | None = None,
) -> Projection:
    """Project a list of `Event` objects; see `project_arrays`. ``hot_pads``: the hot pads
    of each run (`data_prep.structured.find_hot_pads`) for ``structured_noise="rules"``."""
    if not events:
        shape = (0, config.n_channels, config.size, config.size)
        g = config.voxel_grid
        return Projection(
            images=np.zeros(shape, dtype=config.dtype),
            voxels=np.zeros((0, g, g, g), dtype=config.dtype) if g else None,
            n_points=np.zeros(0, np.int64),
            n_outside=np.zeros(0, np.int64),
            n_nonpositive=np.zeros(0, np.int64),
            features=None
            if config.features == "none"
            else np.zeros((0, len(config.feature_names)), np.float32),
            sparked=None if config.structured_noise == "none" else np.zeros(0, dtype=bool),
        )
    counts = np.array([e.points.shape[0] for e in events], dtype=np.int64)
    points = np.concatenate([e.points[:, :4] for e in events], axis=0)
    if config.structured_noise == "none":
        return project_arrays(points, counts, config)
    pads, hot = event_pads(events, hot_pads or {})
    return project_arrays(points, counts, config, pads, hot)


def event_pads(
    events: Sequence[Event], hot_pads: dict[int, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) pad id of every point of ``events`` (-1 unknown) and whether it is one of its
    run's ``hot_pads``."""
    pads = [pad_ids(e) for e in events]
    hot = [
        np.isin(p, hot_pads.get(e.run, ())) & (p >= 0) for e, p in zip(events, pads, strict=True)
    ]
    return np.concatenate(pads), np.concatenate(hot)
