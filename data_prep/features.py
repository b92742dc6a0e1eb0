"""Physics features of an event that do not depend on how the detector was run.

A physicist's first classifier reads tracks, not pixels: how many tracks leave the
beam axis, how long and straight they are, at what polar angle they leave, how their
charge is shared. This module computes such numbers from the point cloud, using only
quantities that a change of detector conditions leaves alone:

* **charge scale** (gain, threshold): charges enter only relative to the event's own
  median point charge, or as shares of the event's charge;
* **rotation about the beam axis**: only the radius ``r = sqrt(x^2 + y^2)``, the polar
  angle to z and eigenvalues (rotation invariant) are used, never x or y;
* **z offset**: only differences of z; a z scale of a few per cent moves lengths by as
  much;
* **stray noise hits**: DBSCAN (scikit-learn's definition, `dbscan_labels`) drops them,
  and the clusters it finds are the tracks;
* **beam**: points within ``CORE_MM`` of the axis (beam ions, beam pads; the run's
  fitted beam line when the image config has ``beam_axis: run``, `data_prep.beamaxis`,
  whose points arrive centred on it) are counted,
  never clustered, so a beam track does not merge with the tracks leaving the vertex;
  so are the points on fitted beam lines when the image config has ``beam_line``
  (`data_prep.beamline`: ions that diverge, enter off centre or scatter out of the core).

The feature set is versioned (`FEATURE_SETS`): ``tracks_v1`` fixes every parameter
below, so a name in a model's image config means exactly these numbers. ``tracks_v2`` is
``tracks_v1`` plus each track read as a helix from the beam axis (`_helix`): a charged
particle leaving a vertex on the axis in the solenoid's field draws a circle through the
axis on the pad plane, and climbs in z in proportion to its turning angle. From it:

* **rigidity**: the circle's radius R (the transverse momentum over charge, p_T = qBR);
* **polar angle**: cot(theta) = dz / ds along the circle (s = R x turning angle), read on
  the first half turn, before the particle has lost much energy;
* **elastic invariant**: in two-body elastic scattering on a target at rest the recoil's
  momentum is proportional to cos(theta) (E = k E_beam cos^2 theta), and p = qBR / sin
  theta; so R / (sin theta cos theta) is one number per target and charge (the proton's
  and the carbon's differ by ~1.6 at any angle), where evaporation and alpha tracks are
  spread. Only the field and beam energy set its scale: not gain, threshold or noise.
* **vertex**: the z where the helix meets the axis; two tracks whose vertices differ are
  two reactions (pile-up). Only differences of vertex z are features (z offsets).

``tracks_v3`` also describes the fourth and fifth largest tracks and each track's size,
for trees that name the five (`attpc_classify.models.gbt.NamedTracksGBT`). ``tracks_v6``
adds, per pair of the five (`track_pairs`), whether they are one particle: the angle about
the axis between their circles' centres (a helix the beam core cuts into pieces keeps its
circle; the tracks of two reactions have their own) and their vertex gap (`pair_values`).
``tracks_v7`` (``tracks_v3`` +) and ``tracks_v8`` (``tracks_v6`` +) add each named
track's helix read about its own vertex (`vertex_helix`): a beam ion reacts off the run's
beam line (its spot, its angle), and a circle forced through the line misreads a
proton's radius; the free circle's point nearest the line is the track's vertex, and the
invariant there, over the beam's speed at its depth (`BEAM_SPEED`), lies on one line for
elastic protons at any depth. ``tracks_v9`` is ``tracks_v8`` plus, per pair, the two
numbers the optional join of a helix's pieces cuts on (`own_pair_values`: the overlap of
their free circles, how far their own vertices lie from whole turns apart), left to the
trees instead of a fixed cut. The numbers 4 and 5 were feature sets measured and not kept
(docs/sim-to-real.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from data_prep.cluster import dbscan_labels

#: feature sets a config may name (``ImageConfig.features``); "none" = no features
FEATURE_SETS = ("none", "tracks_v1", "tracks_v2", "tracks_v3", "tracks_v6", "tracks_v7",
                "tracks_v8", "tracks_v9")  # fmt: skip
#: the sets whose five largest tracks a model names (`models.gbt.NamedTracksGBT`)
NAMED_SETS = ("tracks_v3", "tracks_v6", "tracks_v7", "tracks_v8", "tracks_v9")
#: the sets with the pair columns (`PAIR_FEATURES`; tracks_v9 also `OWN_PAIR_FEATURES`)
#: and with each named track's helix about its own vertex (`VERTEX_HELIX_FEATURES`)
PAIR_SETS = ("tracks_v6", "tracks_v8", "tracks_v9")
OWN_PAIR_SETS = ("tracks_v9",)
VERTEX_SETS = ("tracks_v7", "tracks_v8", "tracks_v9")

EPS_MM = 20.0  # DBSCAN reach, as configs/prep/robust.yaml denoises images
MIN_SAMPLES = 4
CORE_MM = 30.0  # beam core: the blind beam-pad radius of e15503b_randomized reaches 30 mm
N_TRACKS = 3  # the largest clusters described one by one
N_NAMED = 5  # tracks_v3: the largest clusters a track model names (t4, t5 described too)

#: per-track features, for track k = 1..N_TRACKS (largest cluster first)
TRACK_FEATURES = (
    "points_frac",  # share of the clustered off-axis points
    "charge_frac",  # share of the clustered off-axis charge
    "length_mm",  # extent along the principal axis
    "r_min_mm",  # closest approach to the beam axis
    "r_max_mm",
    "z_extent_mm",
    "cos_polar",  # principal axis . z, the axis oriented away from the beam axis
    "linearity2",  # sqrt(lambda2 / lambda1) of the 3-D point covariance
    "linearity3",  # sqrt(lambda3 / lambda1)
    "width_mm",  # sqrt(lambda2): spread across the track
    "xy_linearity",  # sqrt(mu2 / mu1) of the pad-plane covariance: curl in the field
    "charge_median_rel",  # median point charge / the event's median point charge
    "charge_max_rel",
    "charge_asymmetry",  # (outer half - inner half) / sum of the charge: Bragg peak side
    "charge_per_mm_rel",  # sum of relative charge / length
    "points_per_mm",
)
EVENT_FEATURES = (
    "log10_points",  # points after noise removal
    "n_tracks",  # DBSCAN clusters off the beam axis
    "noise_frac",  # share of the off-axis points DBSCAN calls noise
    "core_points_frac",  # share of the kept points within CORE_MM of the axis
    "core_charge_frac",
    "r_max_mm",  # of the clustered points
    "z_extent_mm",
    "cos_12",  # between the two largest tracks' oriented principal axes
    "dz_inner_12_mm",  # |z difference| of their inner ends: one vertex or two
)
#: tracks_v2: per-track helix features, for track k = 1..N_TRACKS (`_helix`)
HELIX_FEATURES = (
    "helix_log10_radius_mm",  # circle through the axis fitted on the pad plane
    "helix_cot_polar",  # dz / ds on the first half turn (signed: forward or backward)
    "helix_log10_invariant",  # log10 R (1 + cot^2) / |cot| = R / (sin cos): elastic line
    "helix_rms_mm",  # distance of the points from the fitted circle: is it one helix
)
#: tracks_v2: per-event vertex features
VERTEX_FEATURES = (
    "vertex_dz_max_mm",  # largest |vertex z difference| among the described tracks
    "vertex_dz_12_mm",  # between the two largest tracks
)
#: tracks_v6: per pair of the `N_NAMED` tracks (i < j), whether they are one particle
PAIR_FEATURES = (
    "centre_angle",  # angle about the axis between their circles' centres [rad]: one
    # helix cut into pieces keeps its centre, two reactions' tracks have their own
    "vertex_dz_mm",  # |vertex z difference|: one vertex or two
)
#: tracks_v9: per pair, the same question asked of their free circles and own vertices
#: (`own_vertex`), the quantities `join_pieces` cuts on, left for the trees to weigh
OWN_PAIR_FEATURES = (
    "circle_overlap",  # shared area of the free circles over the smaller (`circle_overlap`)
    "turns_apart",  # own vertices' gap from a whole number of pitches (`turns_apart`)
    "own_vertex_dz_mm",  # |own vertex z difference|
)
#: tracks_v7: per named track, its helix refitted about its own vertex (`vertex_helix`)
VERTEX_HELIX_FEATURES = (
    "vhelix_cot_polar",  # dz / ds about the track's own vertex
    "vhelix_log10_invariant",  # R / (sin cos) about it
    "vhelix_log10_invariant_window",  # ... over the beam's speed at its z (`BEAM_SPEED`)
)
#: the beam's speed at depth z [mm] from the entrance window over its speed there,
#: sqrt(E(z) / E(0)), for e15503b: 46Ar at 4.17 MeV/u past the window in isobutane at
#: 19.2 Torr (configs/sim/e15503b_nominal.yaml), pycatima's energy loss through
#: spyral-utils (tested against it); another beam or gas needs its own table (and a
#: feature-set version). Beyond 1,000 mm the last value holds.
BEAM_SPEED_Z_MM = tuple(range(0, 1001, 50))
BEAM_SPEED = (1.0, 0.9814, 0.9624, 0.9416, 0.9207, 0.8989, 0.8763, 0.8516, 0.8263, 0.7996,
              0.7714, 0.7413, 0.7092, 0.6747, 0.6372, 0.5961, 0.5506, 0.4992, 0.4407, 0.3721,
              0.2918)  # fmt: skip
#: a free circle whose nearest point lies farther than this from the beam line does not
#: come from it: no vertex of its own
MAX_VERTEX_MISS_MM = CORE_MM
CIRCLE_ITERATIONS = 10  # Gauss-Newton steps of the geometric circle fit, at most
CIRCLE_TOLERANCE_MM = 0.01  # ... until one moves the circle less (pads are ~5 mm)
MIN_HELIX_POINTS = 5
MIN_HELIX_SPAN_MM = 10.0  # a cluster shorter than this on the pad plane has no circle
MAX_RADIUS_MM = 1.0e4  # a straight track: radius capped (log10 = 4)
#: a track's vertex counts only when the track leaves the axis at more than ~14 deg
#: (|cot| < 4): a beam-like line (a scattered or late beam ion, |cot| large) meets the
#: axis nowhere in particular
MAX_VERTEX_COT = 4.0
#: ``cluster_join: helix_turns`` (`join_pieces`): two clusters are pieces of one helix
#: when their free circles share more than `JOIN_OVERLAP` of the smaller one's area
#: (Spyral's clustering joins on this quantity, `circle_overlap_ratio` 0.25) and their own
#: vertices lie within `JOIN_TURNS` of a turn of a whole number of the helix's pitch
#: (`turns_apart`): 92 % of the pieces of one particle, 0 % of an ejectile beside its
#: residual, 9 % of two reactions' pairs (scripts/pileup_pairs.py, docs/sim-to-real.md,
#: "Pile-ups: which clusters are one particle"). Off in the recipe: on it, the join cost
#: 0.005 validation proton F1 at 108,000 events ("Joining the pieces of a helix")
CLUSTER_JOINS = ("none", "helix_turns")
JOIN_OVERLAP = 0.25
JOIN_TURNS = 0.15


#: ``charge_calibration: proton_band`` (`run_columns`): charges in the run's own unit, the
#: median charge per mm of its elastic protons' first tracks (`band_unit`), so an unknown
#: gain, threshold or gas density drops out per run while dE/dx stays: an alpha of
#: 46Ar(p,alpha)43Cl, at the same angle and curvature as an elastic proton, loses ~16
#: times a proton's energy per mm (docs/sim-to-real.md, "A run's charge unit")
RUN_EVENT_FEATURES = ("log10_charge_median_run",)  # the event's median point charge
RUN_TRACK_FEATURE = "log10_charge_per_mm_run"  # per described track
#: the elastic-proton band of e15503b (46Ar(p,p) at 4.6 MeV/u, 1.68 T, 19.2 Torr: the
#: e15503b presets): first tracks at 27-63 deg (cot 0.5-2, where no 46Ar(p,alpha) alpha
#: reaches) on the elastic line, log10 R / (sin cos) 2.3-2.6: from the window's beam
#: energy (`elastic_invariant_mm`: 362 mm, 2.56) down to a beam slowed to ~1.4 MeV/u
#: (2.30); ~95 % protons, 4 % carbon in the randomised simulation
#: (scripts/error_budget.py). Another beam, energy or field needs its own band.
BAND_COT = (0.5, 2.0)
BAND_LOG10_INVARIANT = (2.3, 2.6)
BAND_MIN_TRACKS = 3  # fewer band tracks in a run: no unit (the run columns are NaN)


AMU_MEV = 931.494  # atomic mass unit [MeV/c^2]
PROTON_MEV = 938.272  # [MeV/c^2]


def elastic_invariant_mm(energy_mev_u: float, field_t: float, beam_mass_u: float) -> float:
    """R / (sin theta cos theta) [mm] of an elastically scattered proton (the tracks_v2
    feature ``helix_log10_invariant`` is its log10) for a beam of ``beam_mass_u`` at
    ``energy_mev_u`` on a proton at rest, in ``field_t`` along the beam.

    The struck proton leaves at lab angle theta with velocity 2 M v cos(theta) / (M + m)
    (non-relativistic: ~1 % at 5 MeV/u), so its transverse radius R = p sin(theta) / (q B)
    over sin cos is the same for every angle. Evaluate it at the window's beam energy for
    the top of ``calibration_log10_invariant`` and at the energy of the deepest vertices
    wanted for its bottom (the beam slows along the gas)."""
    beta = np.sqrt(2.0 * energy_mev_u / AMU_MEV)
    mass = beam_mass_u * AMU_MEV
    p_mev = 2.0 * PROTON_MEV * mass / (mass + PROTON_MEV) * beta  # at cos(theta) = 1
    # R [m] = p [GeV/c] / (0.299792458 B [T]) for a unit charge, so R [mm] = p [MeV/c] / ...
    return float(p_mev / (0.299792458 * field_t))


def feature_names(feature_set: str = "tracks_v1", run_unit: bool = False) -> tuple[str, ...]:
    """Column names of `event_features` for ``feature_set``; ``run_unit``: followed by
    the charges in the run's unit (`run_columns`)."""
    if feature_set == "none":
        return ()
    if run_unit:
        n = N_NAMED if feature_set in NAMED_SETS else N_TRACKS
        tracks = tuple(f"t{k}_{RUN_TRACK_FEATURE}" for k in range(1, n + 1))
        return feature_names(feature_set) + RUN_EVENT_FEATURES + tracks
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; one of {FEATURE_SETS}")
    tracks = tuple(f"t{k}_{n}" for k in range(1, N_TRACKS + 1) for n in TRACK_FEATURES)
    if feature_set == "tracks_v1":
        return EVENT_FEATURES + tracks
    helix = tuple(f"t{k}_{n}" for k in range(1, N_TRACKS + 1) for n in HELIX_FEATURES)
    v2 = EVENT_FEATURES + tracks + VERTEX_FEATURES + helix
    if feature_set == "tracks_v2":
        return v2
    points = tuple(f"t{k}_log10_points" for k in range(1, N_NAMED + 1))
    more = tuple(f"t{k}_{n}" for k in range(N_TRACKS + 1, N_NAMED + 1)
                 for n in TRACK_FEATURES + HELIX_FEATURES)  # fmt: skip
    pairs = tuple(f"p{i}{j}_{n}" for i, j in track_pairs() for n in pair_features(feature_set))
    vertex = tuple(f"t{k}_{n}" for k in range(1, N_NAMED + 1) for n in VERTEX_HELIX_FEATURES)
    return (v2 + points + more + (pairs if feature_set in PAIR_SETS else ())
            + (vertex if feature_set in VERTEX_SETS else ()))  # fmt: skip


def track_pairs(n: int = N_NAMED) -> list[tuple[int, int]]:
    """The pairs (i, j), 1 <= i < j <= n, of described tracks, in column order."""
    return [(i, j) for i in range(1, n + 1) for j in range(i + 1, n + 1)]


def pair_features(feature_set: str) -> tuple[str, ...]:
    """The names of one pair's columns in ``feature_set`` (`PAIR_SETS`), none elsewhere."""
    if feature_set not in PAIR_SETS:
        return ()
    return PAIR_FEATURES + (OWN_PAIR_FEATURES if feature_set in OWN_PAIR_SETS else ())


def pair_columns(feature_set: str = "tracks_v6", run_unit: bool = False) -> list[list[int]]:
    """Per pair of `track_pairs`, the columns of ``feature_set`` (`PAIR_SETS`) that hold its
    `pair_features` (the centre angle first)."""
    index = {n: i for i, n in enumerate(feature_names(feature_set, run_unit))}
    names = pair_features(feature_set)
    return [[index[f"p{i}{j}_{n}"] for n in names] for i, j in track_pairs()]


def track_columns(feature_set: str = "tracks_v3", run_unit: bool = False) -> list[list[int]]:
    """Per track k (largest first, up to `N_NAMED`), the columns of ``feature_set`` that
    describe it: its points, `TRACK_FEATURES`, `HELIX_FEATURES`, in `VERTEX_SETS` its
    `VERTEX_HELIX_FEATURES`, and with ``run_unit`` its charge per mm in the run's unit."""
    index = {n: i for i, n in enumerate(feature_names(feature_set, run_unit))}
    names = ("log10_points", *TRACK_FEATURES, *HELIX_FEATURES)
    if feature_set in VERTEX_SETS:
        names += VERTEX_HELIX_FEATURES
    if run_unit:
        names += (RUN_TRACK_FEATURE,)
    return [[index[f"t{k}_{n}"] for n in names] for k in range(1, N_NAMED + 1)]


def event_features(
    points: np.ndarray,
    counts: np.ndarray,
    feature_set: str = "tracks_v1",
    beam: np.ndarray | None = None,
    z_scale: float = 1.0,
    run_unit: float | None = None,
    join: str = "none",
    core_mm: float = CORE_MM,
) -> np.ndarray:
    """``(B, F)`` float32 features (`feature_names`) of a batch of point clouds.

    Parameters
    ----------
    points
        ``(sum(counts), 4+)``: x, y, z [mm], charge [ADC], extra columns ignored.
    counts
        ``(B,)`` points of each event, in order.
    feature_set
        One of `FEATURE_SETS` other than "none".
    beam
        ``(N,)`` True for points on a fitted beam line (`data_prep.beamline`, the image
        config's ``beam_line``): counted with the beam core, never clustered as a track.
    z_scale
        z's weight in the tracks' DBSCAN distance (`track_clusters`; the image config's
        ``cluster_z_scale``).
    run_unit
        The run's charge unit (`band_unit`, ADC per mm; NaN: the run has none): the
        `run_columns` follow the feature set's (``feature_names(..., run_unit=True)``).
    core_mm
        The beam core's radius (`track_clusters`; the image config's ``track_core_mm``).
    join
        One of `CLUSTER_JOINS` (the image config's ``cluster_join``): "helix_turns" joins
        the pieces of one helix before the tracks are named (`join_pieces`); a joined
        track's helix columns are read on its first piece.

    NaN marks a feature that does not exist for the event (no second track, say);
    gradient-boosted trees route NaN on their own.
    """
    names = feature_names(feature_set)
    counts = np.asarray(counts, dtype=np.int64)
    out = np.full((len(counts), len(names)), np.nan, dtype=np.float32)
    q_ref = np.full(len(counts), np.nan)
    pts = np.asarray(points[:, :4], dtype=np.float64)
    r = np.hypot(pts[:, 0], pts[:, 1])
    off, labels = track_clusters(pts, counts, beam, z_scale, core_mm)
    labels, first = joined_clusters(pts, counts, labels, join)
    ends = np.cumsum(counts)
    for b, (start, stop) in enumerate(zip(ends - counts, ends, strict=True)):
        out[b], q_ref[b] = _one_event(pts[start:stop], r[start:stop], off[start:stop],
                                      labels[start:stop], first[start:stop], len(names),
                                      helix=feature_set != "tracks_v1",
                                      named=feature_set in NAMED_SETS,
                                      pairs=feature_set in PAIR_SETS,
                                      own_pairs=feature_set in OWN_PAIR_SETS,
                                      vertex=feature_set in VERTEX_SETS)  # fmt: skip
    if run_unit is None:
        return out
    return np.concatenate([out, run_columns(out, q_ref, feature_set, run_unit)], axis=1)


def run_columns(
    features: np.ndarray, q_ref: np.ndarray, feature_set: str, run_unit: float
) -> np.ndarray:
    """``(B, 1 + n)`` float32: log10 of the events' median point charge ``q_ref`` (ADC)
    and of their n described tracks' charge per mm, in the run's unit ``run_unit``
    (ADC per mm of its band protons, `band_unit`). NaN where a track is missing, has no
    charge, or the run has no unit."""
    index = {n: i for i, n in enumerate(feature_names(feature_set))}
    n = N_NAMED if feature_set in NAMED_SETS else N_TRACKS
    # the features keep charges relative to q_ref (gain-free per event); times q_ref they
    # are ADC again, and over the run's unit gain-free per run
    per_mm = features[:, [index[f"t{k}_charge_per_mm_rel"] for k in range(1, n + 1)]]
    scale = np.asarray(q_ref, dtype=np.float64) / run_unit
    values = np.column_stack([scale, per_mm * scale[:, None]])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(values)
    return np.where(np.isfinite(logs), logs, np.nan).astype(np.float32)


def band_unit(
    features: np.ndarray,
    feature_set: str,
    cot: tuple[float, float] = BAND_COT,
    log10_invariant: tuple[float, float] = BAND_LOG10_INVARIANT,
    min_tracks: int = BAND_MIN_TRACKS,
) -> tuple[float, int]:
    """A run's charge unit and how many tracks set it: the median charge per mm (ADC) of
    the first tracks in the elastic-proton band (t1's polar cot and log10 elastic
    invariant within ``cot`` and ``log10_invariant``), from ``features`` of the run's
    events computed with ``run_unit=1`` (their run columns are then log10 ADC). NaN with
    fewer than ``min_tracks`` band tracks.

    The median and not the mean: the ~5 % of carbon and other tracks in the band sit in
    its tails. (Taken on log10: of an even count, the geometric mean of the middle two.)"""
    return median_unit(band_values(features, feature_set, cot, log10_invariant), min_tracks)


def median_unit(values: np.ndarray, min_tracks: int = BAND_MIN_TRACKS) -> tuple[float, int]:
    """10 ** the median of band tracks' log10 charge per mm (`band_values`) and their
    number; NaN with fewer than ``min_tracks``."""
    if len(values) < min_tracks:
        return float("nan"), len(values)
    return float(10.0 ** np.median(values)), len(values)


def band_values(
    features: np.ndarray,
    feature_set: str,
    cot: tuple[float, float] = BAND_COT,
    log10_invariant: tuple[float, float] = BAND_LOG10_INVARIANT,
) -> np.ndarray:
    """log10 charge per mm (ADC) of the first tracks in the elastic-proton band, from
    ``features`` computed with ``run_unit=1`` (`band_unit` takes their median)."""
    names = feature_names(feature_set, run_unit=True)
    wanted = ("t1_helix_cot_polar", "t1_helix_log10_invariant", f"t1_{RUN_TRACK_FEATURE}")
    c, inv, dedx = (features[:, names.index(n)] for n in wanted)
    band = (c > cot[0]) & (c < cot[1]) & (inv > log10_invariant[0]) & (inv < log10_invariant[1])
    return dedx[band & np.isfinite(dedx)].astype(np.float64)


def track_clusters(
    points: np.ndarray,
    counts: np.ndarray,
    beam: np.ndarray | None = None,
    z_scale: float = 1.0,
    core_mm: float = CORE_MM,
) -> tuple[np.ndarray, np.ndarray]:
    """The tracks the features describe: ``(N,)`` True off the beam core (``core_mm`` of
    the axis: the image config's ``track_core_mm``) and off the ``beam`` points, and each
    point's DBSCAN cluster id within its event (-1: core, beam or noise).

    ``z_scale`` < 1 counts z differences less in DBSCAN's distance: with one point per
    pad (pytpc's peaks, the stand-in) a steep track's neighbouring points can lie farther
    apart in z than ``EPS_MM``, and in 3-D one proton falls into several clusters
    (docs/sim-to-real.md, "Clustering that keeps a steep track whole")."""
    pts = np.asarray(points[:, :4], dtype=np.float64)
    off = np.hypot(pts[:, 0], pts[:, 1]) >= core_mm
    if beam is not None:
        off &= ~np.asarray(beam, dtype=bool)
    event = np.repeat(np.arange(len(counts)), counts)
    labels = np.full(len(pts), -1, dtype=np.int64)
    n_off = np.bincount(event[off], minlength=len(counts))
    near = pts[off, :3] * np.array([1.0, 1.0, z_scale])
    labels[off] = dbscan_labels(near, n_off, EPS_MM, MIN_SAMPLES)
    return off, labels


def joined_clusters(
    points: np.ndarray, counts: np.ndarray, labels: np.ndarray, join: str = "none"
) -> tuple[np.ndarray, np.ndarray]:
    """The tracks the features name: `track_clusters`' ``labels`` joined as ``join`` (one of
    `CLUSTER_JOINS`) says, and per point whether it lies on its track's first piece (all
    True without a join)."""
    if join == "helix_turns":
        return join_pieces(points, counts, labels)
    if join != "none":
        raise ValueError(f"unknown cluster join {join!r}; one of {CLUSTER_JOINS}")
    return labels, np.ones(len(labels), dtype=bool)


def join_pieces(
    points: np.ndarray, counts: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The clusters of `track_clusters` with the pieces of one helix joined, and per point
    whether it lies on its cluster's first piece.

    The beam core cuts a helix that winds about the axis into one piece per turn, and
    each piece alone reads like a track of its own (a second reaction's, a pile-up's).
    Two clusters are joined when their free circles overlap (`circle_overlap` >
    `JOIN_OVERLAP`) and their own vertices (`own_vertex`, each where its piece's turn
    began; depths only for |cot| < `MAX_VERTEX_COT`) lie a whole number of pitches
    apart (`turns_apart` < `JOIN_TURNS`); joins chain (a, b and b, c: one cluster). A
    joined cluster takes its smallest id; its first piece is the one that reaches lowest
    in z, nearest the entrance window (the features' frame: `BEAM_SPEED`).
    """
    labels = labels.copy()
    first = np.ones(len(labels), dtype=bool)
    ends = np.cumsum(counts)
    for start, stop in zip(ends - counts, ends, strict=True):
        lab, xyz = labels[start:stop], points[start:stop, :3]  # views: writes land
        ids = np.unique(lab[lab >= 0])
        found = {int(c): own_vertex(xyz[lab == c]) for c in ids}
        reads = {c: v for c, v in found.items() if has_depth(v)}
        root = {c: c for c in reads}

        def find(c: int, root: dict[int, int] = root) -> int:
            while root[c] != c:
                c = root[c]
            return c

        keys = sorted(reads)
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                if one_helix(reads[a], reads[b]):
                    ra, rb = find(a), find(b)
                    root[max(ra, rb)] = min(ra, rb)
        groups: dict[int, list[int]] = {}
        for c in keys:
            groups.setdefault(find(c), []).append(c)
        for head, members in groups.items():
            if len(members) == 1:
                continue
            # the beam runs from the window (z = 0) to +z and the recoils go forward: the
            # first piece reaches lowest (on 140 joined elastic protons of the randomised
            # simulation it was the true first piece every time; a piece's own reading of
            # its climb is no guide: a whole turn reads as well backwards, and the pieces
            # of one turn split by a gap read one vertex)
            lead = min(members, key=lambda c: xyz[lab == c, 2].min())
            part = np.isin(lab, members)
            first[start:stop][part] = lab[part] == lead
            lab[part] = head
    return labels, first


def has_depth(found: OwnVertex | None) -> bool:
    """Whether an `own_vertex` reading has a vertex depth: a circle, a z where its helix
    meets the beam line, and a track leaving the axis at more than ~14 deg (as
    `vertex_helix` reads its window column)."""
    return found is not None and abs(found.helix[1]) < MAX_VERTEX_COT and np.isfinite(found.z)


def one_helix(a: OwnVertex, b: OwnVertex) -> bool:
    """Whether two clusters' `own_vertex` readings (both with a depth) are pieces of one
    helix: circles that overlap and vertices whole turns apart (`join_pieces`)."""
    overlap, turns, _ = helix_pair(a, b)
    return overlap > JOIN_OVERLAP and turns < JOIN_TURNS  # NaN: no join


def helix_pair(a: OwnVertex, b: OwnVertex) -> tuple[float, float, float]:
    """Two clusters' `OWN_PAIR_FEATURES`: their free circles' `circle_overlap`, and where
    both have a depth (`has_depth`; NaN otherwise) their vertices' `turns_apart` and gap."""
    overlap = circle_overlap(float(np.hypot(*(a.centre - b.centre))), a.radius, b.radius)
    if not (has_depth(a) and has_depth(b)):
        return overlap, float("nan"), float("nan")
    cots = (float(a.helix[1]), float(b.helix[1]))
    return overlap, turns_apart(a.z, b.z, (a.radius, b.radius), cots), abs(a.z - b.z)


def circle_overlap(d: float, r1: float, r2: float) -> float:
    """Area two circles of radii ``r1``, ``r2`` whose centres lie ``d`` apart share, over
    the smaller circle's area: 0 apart, 1 when one lies inside the other; between, the
    lens of two circular segments (each a sector less its triangle). NaN where a
    distance or radius is not finite."""
    if not all(np.isfinite(v) for v in (d, r1, r2)):
        return float("nan")
    small = min(r1, r2)
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return 1.0
    a1 = np.arccos(np.clip((d * d + r1 * r1 - r2 * r2) / (2.0 * d * r1), -1.0, 1.0))
    a2 = np.arccos(np.clip((d * d + r2 * r2 - r1 * r1) / (2.0 * d * r2), -1.0, 1.0))
    # the segment of circle k beyond the chord: half-angle a_k, area r^2 (a - sin a cos a)
    lens = r1 * r1 * (a1 - np.sin(a1) * np.cos(a1)) + r2 * r2 * (a2 - np.sin(a2) * np.cos(a2))
    return min(1.0, float(lens / (np.pi * small * small)))  # rounding can pass 1


def turns_apart(
    z1: float, z2: float, radii: tuple[float, float], cots: tuple[float, float]
) -> float:
    """How far the gap between two vertex depths lies from a whole number of turns of
    their helix (0: whole turns apart, 0.5: half way), the pitch 2 pi R |cot| from the
    two readings' mean radius and mean |cot| (a NaN cot left out); NaN without both
    depths, any cot or a finite, non-zero pitch."""
    abs_cots = [abs(c) for c in cots if np.isfinite(c)]
    if not abs_cots or not (np.isfinite(z1) and np.isfinite(z2)):
        return float("nan")
    pitch = 2.0 * np.pi * 0.5 * (radii[0] + radii[1]) * float(np.mean(abs_cots))
    if not (pitch > 0 and np.isfinite(pitch)):
        return float("nan")
    turns = abs(z1 - z2) / pitch
    return float(abs(turns - np.round(turns)))


def largest_tracks(labels: np.ndarray, n: int = N_TRACKS) -> np.ndarray:
    """One event's cluster ids (of `track_clusters`), largest first, at most ``n``; equal
    sizes by cluster id, so the order is reproducible: t1, t2, ... of the features."""
    ids, sizes = np.unique(labels[labels >= 0], return_counts=True)
    return ids[np.lexsort((ids, -sizes))][:n]


def _one_event(
    pts: np.ndarray,
    r: np.ndarray,
    off: np.ndarray,
    labels: np.ndarray,
    first: np.ndarray,
    n_features: int,
    helix: bool = False,
    named: bool = False,
    pairs: bool = False,
    vertex: bool = False,
    own_pairs: bool = False,
) -> tuple[np.ndarray, float]:
    """One event's feature row and its median positive point charge (ADC; NaN: none).
    ``first``: per point, whether it belongs to its track's first piece (`join_pieces`),
    on which the helix columns are read; all True without a join."""
    row = np.full(n_features, np.nan)
    q = np.clip(pts[:, 3], 0.0, None)  # baseline dips below zero carry no charge
    clustered = labels >= 0
    kept = clustered | ~off  # the core is kept whole; off-axis noise is dropped
    n_kept = int(kept.sum())
    row[0] = np.log10(n_kept + 1.0)
    n_off = int(off.sum())
    row[2] = (n_off - clustered.sum()) / n_off if n_off else np.nan
    if n_kept == 0:
        row[1] = 0.0
        return row, np.nan
    q_kept = q[kept]
    positive = q_kept[q_kept > 0]
    median_q = float(np.median(positive)) if len(positive) else np.nan
    q_ref = median_q if len(positive) else 1.0
    core = ~off
    row[3] = core.sum() / n_kept
    total_q = q_kept.sum()
    row[4] = q[core].sum() / total_q if total_q > 0 else np.nan
    ids = np.unique(labels[clustered])
    row[1] = len(ids)
    if not len(ids):
        return row, median_q
    row[5] = r[clustered].max()
    row[6] = np.ptp(pts[clustered, 2])
    q_clustered = q[clustered].sum()
    n_event = len(EVENT_FEATURES)
    n_track = len(TRACK_FEATURES)
    axes, inner_z, vertex_z = [], [], []
    centres, vertices = [], []  # PAIR_SETS: each described track's circle and vertex
    readings: list[OwnVertex | None] = []  # OWN_PAIR_SETS: each one's `own_vertex`
    n_v1 = n_event + N_TRACKS * n_track
    n_helix = len(HELIX_FEATURES)
    n_v2 = n_v1 + len(VERTEX_FEATURES) + N_TRACKS * n_helix
    n_v3 = n_v2 + N_NAMED + (N_NAMED - N_TRACKS) * (n_track + n_helix)
    n_per_pair = len(PAIR_FEATURES) + (len(OWN_PAIR_FEATURES) if own_pairs else 0)
    n_pairs = len(track_pairs()) * n_per_pair if pairs else 0
    n_vh = len(VERTEX_HELIX_FEATURES)
    for k, c in enumerate(largest_tracks(labels, N_NAMED if named else N_TRACKS)):
        sel = labels == c
        piece = sel & first  # a joined helix's later turns would bend the first's line
        feats, axis, z_in = _track(pts[sel], r[sel], q[sel], q_ref)
        feats[0] = sel.sum() / clustered.sum()
        feats[1] = q[sel].sum() / q_clustered if q_clustered > 0 else np.nan
        if helix:
            hf, z_v = _helix(pts[piece, :3])
            z_v = z_v if abs(hf[1]) < MAX_VERTEX_COT else np.nan
        if named:
            row[n_v2 + k] = np.log10(sel.sum())
        found = own_vertex(pts[piece, :3]) if vertex or own_pairs else None
        if vertex:  # after tracks_v3's columns and the pairs' (tracks_v8, v9)
            start = n_v3 + n_pairs + k * n_vh
            row[start : start + n_vh] = vertex_columns(found)
        if own_pairs:
            readings.append(found)
        if pairs:
            centres.append(circle_direction(pts[piece, :2]))
            vertices.append(z_v)
        if k >= N_TRACKS:  # tracks_v3's t4, t5: described, not part of t1-t3's summaries
            start = n_v2 + N_NAMED + (k - N_TRACKS) * (n_track + n_helix)
            row[start : start + n_track] = feats
            row[start + n_track : start + n_track + n_helix] = hf
            continue
        row[n_event + k * n_track : n_event + (k + 1) * n_track] = feats
        axes.append(axis)
        inner_z.append(z_in)
        if helix:
            start = n_v1 + len(VERTEX_FEATURES) + k * n_helix
            row[start : start + n_helix] = hf
            vertex_z.append(z_v)
    if len(axes) >= 2:
        row[7] = float(axes[0] @ axes[1])
        row[8] = abs(inner_z[0] - inner_z[1])
    if helix:
        vz = np.array(vertex_z)
        fitted = vz[np.isfinite(vz)]
        if len(fitted) >= 2:
            row[n_v1] = np.ptp(fitted)
        if len(vz) >= 2 and np.isfinite(vz[:2]).all():
            row[n_v1 + 1] = abs(vz[0] - vz[1])
    if pairs:
        values = pair_values(centres, vertices)
        if own_pairs:
            values = np.concatenate([values, own_pair_values(readings)], axis=1)
        row[n_v3 : n_v3 + n_pairs] = values.reshape(-1)
    return row, median_q


def pair_values(centres: list[np.ndarray], vertices: list[float]) -> np.ndarray:
    """``(P, 2)``: the `PAIR_FEATURES` of every pair of `track_pairs` (NaN where a track is
    missing or has no circle or vertex), from each track's `circle_direction` and helix
    vertex z."""
    out = np.full((len(track_pairs()), len(PAIR_FEATURES)), np.nan)
    for p, (i, j) in enumerate(track_pairs()):
        if j > len(centres):
            continue
        cos = float(centres[i - 1] @ centres[j - 1])
        if np.isfinite(cos):
            out[p, 0] = np.arccos(np.clip(cos, -1.0, 1.0))
        out[p, 1] = abs(vertices[i - 1] - vertices[j - 1])
    return out


def own_pair_values(readings: list[OwnVertex | None]) -> np.ndarray:
    """``(P, 3)``: the `OWN_PAIR_FEATURES` of every pair of `track_pairs` from each described
    track's `own_vertex` reading (None: no circle), NaN where a track is missing or has no
    circle; the vertex columns need both depths (`has_depth`).

    The same two numbers `join_pieces` cuts on (a helix cut by the beam core: its pieces'
    circles overlap and their vertices lie whole turns apart), as columns: the trees
    weigh them beside everything else instead of a fixed cut deciding before them."""
    out = np.full((len(track_pairs()), len(OWN_PAIR_FEATURES)), np.nan)
    for p, (i, j) in enumerate(track_pairs()):
        if j > len(readings) or readings[i - 1] is None or readings[j - 1] is None:
            continue
        out[p] = helix_pair(readings[i - 1], readings[j - 1])
    return out


def circle_direction(xy: np.ndarray) -> np.ndarray:
    """Unit vector from the axis towards the centre of the circle through (0, 0) that fits
    ``xy`` (`circle_through_origin`); NaN for a straight track (no side to curl to), fewer
    than `MIN_HELIX_POINTS` points or a span under `MIN_HELIX_SPAN_MM`."""
    r = np.hypot(xy[:, 0], xy[:, 1])
    if len(xy) < MIN_HELIX_POINTS or np.ptp(r) < MIN_HELIX_SPAN_MM:
        return np.full(2, np.nan)
    centre, radius = circle_through_origin(xy)
    if np.isfinite(radius) and radius > 0:
        return centre / radius
    return np.full(2, np.nan)


def vertex_helix(xyz: np.ndarray) -> np.ndarray:
    """One cluster's `VERTEX_HELIX_FEATURES`: its helix (`_helix`) about its own vertex.

    `_helix` makes the circle pass through the run's beam line, but a beam ion enters
    off that line (the spot, up to a few mm) and at an angle to it (divergence: 1 degree
    puts the vertex 17 mm off at 1 m), and a circle forced through a point 10 mm from the
    track's real start misreads its radius and angle: in the randomised simulation the
    elastic protons' invariant spreads 3x more than about their true vertex
    (docs/sim-to-real.md, "The track's own vertex"). So the circle is fitted free
    (`circle_fit`) and the vertex is its point nearest the beam line; the helix is read
    again about it, and its invariant over the beam's speed at its z (`BEAM_SPEED`,
    elastic recoils' invariant is proportional to it) is the invariant the recoil would
    have had from the window. NaN where the cluster has no circle, the circle passes
    farther than `MAX_VERTEX_MISS_MM` from the beam line, or (the last) no vertex z."""
    return vertex_columns(own_vertex(xyz))


def vertex_columns(found: OwnVertex | None) -> np.ndarray:
    """`VERTEX_HELIX_FEATURES` of a cluster's `own_vertex` reading (`vertex_helix`)."""
    out = np.full(len(VERTEX_HELIX_FEATURES), np.nan)
    if found is None:
        return out
    hf, z_v = found.helix, found.z
    out[0], out[1] = hf[1], hf[2]
    if has_depth(found):
        speed = np.interp(max(z_v, 0.0), BEAM_SPEED_Z_MM, BEAM_SPEED)
        out[2] = hf[2] - np.log10(speed)
    return out


class OwnVertex(NamedTuple):
    """A cluster's free circle and its helix read about its own vertex (`own_vertex`)."""

    centre: np.ndarray  # of the free circle (`circle_fit`) on the pad plane [mm]
    radius: float
    start: np.ndarray  # the vertex: the circle's point nearest the beam line
    helix: np.ndarray  # `HELIX_FEATURES` read about it (`_helix`)
    z: float  # where that helix meets the beam line (NaN: none)


def own_vertex(xyz: np.ndarray) -> OwnVertex | None:
    """One cluster's free circle, its own vertex and its helix about it (`vertex_helix`);
    None where it has no circle (too few points, too short on the pad plane, a straight
    line) or the circle passes farther than `MAX_VERTEX_MISS_MM` from the beam line."""
    xy = xyz[:, :2]
    if len(xyz) < MIN_HELIX_POINTS or np.ptp(np.hypot(xy[:, 0], xy[:, 1])) < MIN_HELIX_SPAN_MM:
        return None
    centre, radius = circle_fit(xy)
    distance = float(np.hypot(centre[0], centre[1]))
    if radius > MAX_RADIUS_MM or distance == 0.0 or abs(distance - radius) > MAX_VERTEX_MISS_MM:
        return None
    start = centre * (1.0 - radius / distance)  # the circle's point nearest the axis
    hf, z_v = _helix(xyz - np.array([start[0], start[1], 0.0]))
    return OwnVertex(centre, radius, start, hf, z_v)


def circle_fit(xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius (inf: no circle) of the circle nearest ``xy`` in the geometric
    sense (sum of squared distances): Kasa's algebraic fit ``x^2 + y^2 + D x + E y + F
    = 0`` to start, then at most `CIRCLE_ITERATIONS` Gauss-Newton steps (Kasa alone pulls
    the radius of a short arc down), until a step moves less than `CIRCLE_TOLERANCE_MM`."""
    design = np.column_stack([xy, np.ones(len(xy))])
    try:
        sol = np.linalg.solve(design.T @ design, design.T @ -(xy**2).sum(axis=1))
    except np.linalg.LinAlgError:  # all points on one line through one spot
        return np.zeros(2), np.inf
    centre = -0.5 * sol[:2]
    r2 = float(centre @ centre - sol[2])
    if not np.isfinite(r2) or r2 <= 0.0:
        return np.zeros(2), np.inf
    radius = np.sqrt(r2)
    for _ in range(CIRCLE_ITERATIONS):
        rel = xy - centre
        dist = np.hypot(rel[:, 0], rel[:, 1])
        if not dist.all():
            break
        # residual d_i - R; d(d_i)/d(centre) = -(p_i - c) / d_i, d/dR = -1; the normal
        # equations of the 3 x 3 step (a lstsq per step costs more than the fit)
        jac = np.column_stack([-rel / dist[:, None], -np.ones(len(xy))])
        try:
            step = np.linalg.solve(jac.T @ jac, jac.T @ (radius - dist))
        except np.linalg.LinAlgError:
            break
        centre, radius = centre + step[:2], radius + step[2]
        if not np.isfinite(radius) or radius <= 0.0:
            return np.zeros(2), np.inf
        if np.abs(step).max() < CIRCLE_TOLERANCE_MM:
            break
    return centre, float(radius)


def circle_through_origin(xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius (inf for a line) of the circle through (0, 0) that fits ``xy``.

    A circle through the origin with curvature k and unit normal n there is
    ``k |p|^2 - 2 n.p = 0``; k -> 0 leaves the line ``n.p = 0``, so a straight track
    that leaves the axis radially fits too (Kasa's ``x^2 + y^2 + D x + E y = 0`` would
    force a small circle on it). Least squares in (k, n) with |n| = 1: k is linear given
    n, and n is the smallest eigenvector of the 2 x 2 form that remains.
    """
    r2 = (xy**2).sum(axis=1)
    p = 2.0 * xy
    r4 = float(r2 @ r2)
    if r4 == 0.0:
        return np.zeros(2), np.inf
    pr = p.T @ r2
    form = p.T @ p - np.outer(pr, pr) / r4
    n = np.linalg.eigh(form)[1][:, 0]
    k = float(pr @ n) / r4  # k |p|^2 = 2 n.p in the least-squares sense
    if k == 0.0:
        return np.zeros(2), np.inf
    return n / k, 1.0 / abs(k)


def _helix(xyz: np.ndarray) -> tuple[np.ndarray, float]:
    """One cluster's `HELIX_FEATURES` and the z where its helix meets the beam axis.

    The vertex is on the beam axis (x = y = 0 after the beam-axis centring), so the pad
    plane shows a circle through the origin. Turning angle phi about the centre, counted
    from the origin in the track's own sense of rotation; on the first half turn
    (0 < phi < pi) z is linear in the arc length R phi: slope cot(theta), intercept the
    vertex z. NaN where the cluster is too small or too short on the pad plane.
    """
    f = np.full(len(HELIX_FEATURES), np.nan)
    xy = xyz[:, :2]
    if len(xyz) < MIN_HELIX_POINTS or np.ptp(np.hypot(xy[:, 0], xy[:, 1])) < MIN_HELIX_SPAN_MM:
        return f, np.nan
    centre, radius = circle_through_origin(xy)
    if radius > MAX_RADIUS_MM:
        # (near) straight on the pad plane: no turning angle to measure; the track's
        # radial distance is its arc length
        radius = MAX_RADIUS_MM
        s = np.hypot(xy[:, 0], xy[:, 1])
    else:
        rel = xy - centre
        f[3] = np.sqrt(np.mean((np.hypot(rel[:, 0], rel[:, 1]) - radius) ** 2))
        phi = np.arctan2(rel[:, 1], rel[:, 0]) - np.arctan2(-centre[1], -centre[0])
        phi = (phi + np.pi) % (2.0 * np.pi) - np.pi  # (-pi, pi]
        if np.median(phi) < 0:  # rotation sense of this track
            phi = -phi
        keep = (phi > 0) & (phi < np.pi)
        s, xyz = radius * phi[keep], xyz[keep]
    f[0] = np.log10(radius)
    if len(s) < MIN_HELIX_POINTS or np.ptp(s) < MIN_HELIX_SPAN_MM:
        return f, np.nan
    cot, z0 = np.polyfit(s, xyz[:, 2], 1)
    f[1] = cot
    if cot != 0:
        f[2] = np.log10(radius * (1.0 + cot**2) / abs(cot))
    return f, float(z0)


def _track(
    p: np.ndarray, r: np.ndarray, q: np.ndarray, q_ref: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """One cluster's `TRACK_FEATURES` (shares left NaN: the caller fills them), its
    principal axis oriented away from the beam axis, and the z of its inner end."""
    f = np.full(len(TRACK_FEATURES), np.nan)
    xyz = p[:, :3]
    centred = xyz - xyz.mean(axis=0)
    lam, vec = np.linalg.eigh(centred.T @ centred / len(xyz))  # ascending
    lam = np.clip(lam, 0.0, None)
    axis = vec[:, 2]
    s = centred @ axis
    # orient the axis so that r grows along it: the track leaves the beam axis
    if np.dot(s - s.mean(), r - r.mean()) < 0:
        axis, s = -axis, -s
    length = float(s.max() - s.min())
    f[2] = length
    f[3], f[4] = r.min(), r.max()
    f[5] = np.ptp(xyz[:, 2])
    f[6] = axis[2]
    if lam[2] > 0:
        f[7], f[8] = np.sqrt(lam[1] / lam[2]), np.sqrt(lam[0] / lam[2])
    f[9] = np.sqrt(lam[1])
    xy = centred[:, :2]
    mu = np.clip(np.linalg.eigvalsh(xy.T @ xy / len(xy)), 0.0, None)
    if mu[1] > 0:
        f[10] = np.sqrt(mu[0] / mu[1])
    rel = q / q_ref
    f[11], f[12] = np.median(rel), rel.max()
    outer = s > 0.5 * (s.min() + s.max())
    if rel.sum() > 0:
        f[13] = (rel[outer].sum() - rel[~outer].sum()) / rel.sum()
    per_mm = max(length, 1.0)  # a one-pad cluster has no length: count it as 1 mm
    f[14] = rel.sum() / per_mm
    f[15] = len(xyz) / per_mm
    inner_z = float(xyz[np.argmin(s), 2])
    return f, axis, inner_z
