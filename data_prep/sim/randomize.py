"""Domain randomisation: the detector and beam settings of one event (`Knobs`).

Without a ``randomize:`` range every knob takes the config's fixed value; with one it is
drawn, per event or per run file, from a generator of its own stream, so the physics
draws of an event do not change when randomisation is switched on. The electronics
(point formation, GET shaping time, chip layout) are picked per run file among listed
choices (`draw_electronics`). `Knobs.row` is what the event table stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from data_prep.padplane import CHIP_PADS
from data_prep.sim.config import (
    CHIP_LAYOUTS,
    FAULT_KNOBS,
    INTEGER_KNOBS,
    RANDOM_KNOBS,
    TABLE_KNOBS,
    SimConfig,
)
from data_prep.sim.points import POINT_MODES

#: Pads on the AT-TPC pad plane (attpc-engine's pad map).
NUM_PADS = 10240
#: Seed of the dead-pad choice when the fraction is fixed (not randomised).
DEAD_PAD_STREAM = 0x5EED_0DEA
#: Seed of what is fixed for a detector: dead chips, hot pads, per-pad gains.
DETECTOR_STREAM = 0x5EED_0DE7
#: Channels of one AGET chip (the pad plane's `CHIP_PADS`); chips are taken as blocks of
#: consecutive pad ids (dead chips always, firing chips with ``noise.chip_layout: blocks``;
#: `chip_pads`).
CHIP_CHANNELS = CHIP_PADS
#: ``chip_layout: patches``: the pad plane cut into rings of equal pad count, each ring
#: into sectors of `CHIP_CHANNELS` pads (10 x 16 = 160 chips).
PATCH_RINGS = 10
#: ``chip_layout: stripes``: the pad plane cut into `STRIPE_SECTORS` angular sectors per
#: pad size (the small inner pads, the large outer ones), each into bands
#: `STRIPE_WIDTH_PITCHES` pad spacings wide, along the sector's radius or across it.
STRIPE_SECTORS = 6
STRIPE_WIDTH_PITCHES = 3.0


def chip_pads(layout: str, pad_xy: np.ndarray) -> np.ndarray:
    """(160, 64) the pads of each AGET chip for ``layout`` (`CHIP_LAYOUTS`).

    "blocks": 64 consecutive pad ids, an arc along a ring of pads up to 540 mm long.
    "patches": compact patches, 35-97 mm across (10-90 % of the chips): the pads sorted by
    radius cut into `PATCH_RINGS` rings, each sorted by angle cut into sectors of 64.
    "stripes": bands three pads wide, 54-157 mm long (`stripe_order`).
    Ours, not the real wiring (whose chips are interleaved bands and patches 77-167 mm
    across; the map is not shipped): other pictures, so that a model meets chip fires of
    several shapes (docs/simulation.md, "Noise").
    """
    n = len(pad_xy)
    if layout == "blocks":
        return np.arange(n).reshape(-1, CHIP_CHANNELS)
    if layout == "stripes":
        return stripe_order(pad_xy).reshape(-1, CHIP_CHANNELS)
    radius = np.hypot(pad_xy[:, 0], pad_xy[:, 1])
    angle = np.arctan2(pad_xy[:, 1], pad_xy[:, 0])
    chips = []
    for ring in np.array_split(np.argsort(radius, kind="stable"), PATCH_RINGS):
        ring = ring[np.argsort(angle[ring], kind="stable")]
        chips.extend(ring.reshape(-1, CHIP_CHANNELS))
    return np.array(chips)


def stripe_order(pad_xy: np.ndarray) -> np.ndarray:
    """All pad ids in the order the "stripes" layout reads them, 64 at a time.

    The small inner pads and the large outer ones (nearest-neighbour spacing below or
    above 1.5 x the smallest) are each cut into `STRIPE_SECTORS` angular sectors; a
    sector's pads into parallel bands `STRIPE_WIDTH_PITCHES` spacings wide, along the
    sector's middle radius (even sectors) or across it (odd ones); a band is read end to
    end, the next one back (so a chip that wraps a band's end stays in one piece).
    """
    from scipy.spatial import cKDTree

    spacing = cKDTree(pad_xy).query(pad_xy, 2)[0][:, 1]
    large = spacing > 1.5 * spacing.min()
    angle = np.arctan2(pad_xy[:, 1], pad_xy[:, 0])
    step = 2 * np.pi / STRIPE_SECTORS
    sector = np.floor((angle + np.pi) / step).astype(np.int64) % STRIPE_SECTORS
    order = []
    for region in (False, True):
        for s in range(STRIPE_SECTORS):
            pads = np.flatnonzero((large == region) & (sector == s))
            if not len(pads):
                continue
            theta = -np.pi + (s + 0.5) * step + (np.pi / 2 if s % 2 else 0.0)
            along = np.array([np.cos(theta), np.sin(theta)])
            across = np.array([-along[1], along[0]])
            width = STRIPE_WIDTH_PITCHES * np.median(spacing[pads])
            band = np.floor(pad_xy[pads] @ across / width)
            position = pad_xy[pads] @ along
            position = np.where(band % 2 == 0, position, -position)
            order.append(pads[np.lexsort((position, band))])
    return np.concatenate(order)


@dataclass
class DetectorFaults:
    """What stays the same for a whole run: dead chips, hot pads, per-pad gains."""

    dead_pads: np.ndarray  # pad ids of the dead chips
    hot_pads: np.ndarray  # pad ids that fire in every event
    pad_gain: np.ndarray  # (NUM_PADS,) relative gain, lognormal around 1
    dead_mask: np.ndarray = field(init=False, repr=False)  # (NUM_PADS,) True on dead chips

    def __post_init__(self) -> None:
        self.dead_mask = np.zeros(NUM_PADS, dtype=bool)
        self.dead_mask[self.dead_pads] = True


def detector_faults(
    config: SimConfig,
    candidates: np.ndarray,
    rng: np.random.Generator | None = None,
    counts: tuple[int, int, float] | None = None,
) -> DetectorFaults:
    """Draw the faults of a detector: ``dead_chips`` whole chips, ``hot_pads`` pads and a
    lognormal gain per pad (sigma ``pad_gain_spread``).

    Without ``rng`` they come from `DETECTOR_STREAM` (one detector for every run file);
    ``counts`` = (hot pads, dead chips, gain spread) overrides the config's values (the
    per-file draw of `draw_faults`). ``candidates`` are the pads hot pads may be chosen
    from (not beam pads).
    """
    d, n = config.detector, config.noise
    hot_n, dead_n, sigma = counts or (int(n.hot_pads), int(d.dead_chips), float(d.pad_gain_spread))
    rng = rng if rng is not None else np.random.default_rng(DETECTOR_STREAM)
    chips = rng.choice(NUM_PADS // CHIP_CHANNELS, size=int(dead_n), replace=False)
    dead = (chips[:, None] * CHIP_CHANNELS + np.arange(CHIP_CHANNELS)).ravel()
    hot = rng.choice(candidates, size=int(hot_n), replace=False)
    # mean 1: the spread must not move the overall gain (that is gain_factor's job)
    gain = rng.lognormal(-0.5 * sigma**2, sigma, size=NUM_PADS) if sigma > 0 else np.ones(NUM_PADS)
    return DetectorFaults(np.sort(dead), np.sort(hot), gain)


def draw_faults(
    config: SimConfig, candidates: np.ndarray, rng: np.random.Generator
) -> tuple[DetectorFaults, dict[str, float]]:
    """A new faulty detector for one run file (``randomize.faults: file``): the ranged
    `FAULT_KNOBS` drawn first (integers uniform inclusive, the gain spread uniform), then
    the pads themselves, all from ``rng``. Returns the faults and the values used."""
    d, n, rand = config.detector, config.noise, config.randomize
    values: dict[str, float] = {
        "hot_pads": int(n.hot_pads),
        "dead_chips": int(d.dead_chips),
        "pad_gain_spread": float(d.pad_gain_spread),
    }
    for name in FAULT_KNOBS:
        span = getattr(rand, name)
        if span:
            values[name] = _draw(name, float(span[0]), float(span[1]), rng)
    counts = (int(values["hot_pads"]), int(values["dead_chips"]), float(values["pad_gain_spread"]))
    return detector_faults(config, candidates, rng, counts), values


def _draw(name: str, lo: float, hi: float, rng: np.random.Generator) -> float:
    """One value of knob ``name`` in [lo, hi]: gain log-uniform, counts integer uniform
    (inclusive), the rest uniform."""
    if name == "gain_factor":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if name in INTEGER_KNOBS:
        return int(rng.integers(int(lo), int(hi) + 1))
    return float(rng.uniform(lo, hi))


@dataclass
class Knobs:
    """Settings used for one event. Factors multiply the config's value."""

    gain_factor: float = 1.0  # x detector.mpgd_gain
    adc_threshold: float = 30.0  # ADC
    pressure_factor: float = 1.0  # x gas.pressure_torr
    field_factor: float = 1.0  # x detector.magnetic_field_t
    beam_energy_mev_u: float = 4.6  # MeV/u before the window
    diffusion_v: float = 0.02  # V
    noise_hits: int = -1  # random hits on a reaction event; -1: draw from noise.hits_per_event
    dead_pad_fraction: float = 0.0
    z_scale: float = 1.0
    z_offset_mm: float = 0.0  # mm
    beam_pad_radius_mm: float = 0.0  # mm
    tilt_deg: float = 0.0  # deg
    chip_rate: float = 0.2  # mean AGET chips firing per event
    burst_rate: float = 0.1  # mean bursts per event
    hot_pads: int = 3  # hot pads of the detector used (table only; the pads: `faults`)
    dead_chips: int = 0  # dead chips of the detector used (table only)
    pad_gain_spread: float = 0.15  # per-pad gain sigma of the detector used (table only)
    divergence_deg: float = 0.5  # deg, beam cone half-angle
    spot_sigma_mm: float = 2.0  # mm, beam spot 1-sigma radius
    extra_ions: int = -1  # other beam ions in the event; -1: draw from beam_axis.extra_ions
    scattered_fraction: float = 0.5  # share of the extra ions scattered on the way
    # electronics of the run file: point formation as its index in POINT_MODES
    # (0 peaks, 1 pad, 2 bucket), GET shaping time in ns
    point_formation: int = 0
    shaping_time_ns: float = 502.0
    chip_layout: int = 0  # index in CHIP_LAYOUTS: which pads a firing chip lights
    faults: DetectorFaults | None = None  # None: the generator's fixed detector
    dead_pads: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def row(self) -> tuple[float, ...]:
        """Values in `TABLE_KNOBS` order, for the event table."""
        return tuple(getattr(self, k) for k in TABLE_KNOBS)

    @property
    def point_mode(self) -> str:
        """The point formation's name ("peaks", "pad" or "bucket")."""
        return POINT_MODES[self.point_formation]


def fixed_knobs(config: SimConfig) -> Knobs:
    """The config's own values (no randomisation)."""
    d = config.detector
    return Knobs(
        adc_threshold=float(config.electronics.adc_threshold),
        beam_energy_mev_u=float(config.beam.energy_mev_u),
        diffusion_v=float(d.diffusion_v),
        dead_pad_fraction=float(d.dead_pad_fraction),
        z_scale=float(d.z_scale),
        z_offset_mm=float(d.z_offset_mm),
        beam_pad_radius_mm=float(d.beam_pad_radius_mm),
        tilt_deg=float(d.tilt_deg),
        chip_rate=float(config.noise.chip_rate),
        burst_rate=float(config.noise.burst_rate),
        hot_pads=int(config.noise.hot_pads),
        dead_chips=int(d.dead_chips),
        pad_gain_spread=float(d.pad_gain_spread),
        divergence_deg=float(config.beam.divergence_deg),
        spot_sigma_mm=float(config.beam.spot_sigma_mm),
        scattered_fraction=float(config.beam_axis.scattered_fraction),
        point_formation=POINT_MODES.index(config.electronics.point_formation),
        shaping_time_ns=float(config.electronics.shaping_time_ns),
        chip_layout=CHIP_LAYOUTS.index(config.noise.chip_layout),
    )


def draw_electronics(config: SimConfig, rng: np.random.Generator) -> dict[str, float]:
    """The electronics of one run file (``randomize.point_formation``, ``shaping_time_ns``,
    ``chip_layout``): each listed setting picked with equal probability from ``rng``, in
    that order (a new setting draws last, so the earlier ones keep their values); an
    empty list keeps the config's value. Returns the `Knobs` values (point formation and
    chip layout as their indices in `POINT_MODES` and `CHIP_LAYOUTS`)."""
    e, rand = config.electronics, config.randomize
    values: dict[str, float] = {
        "point_formation": POINT_MODES.index(e.point_formation),
        "shaping_time_ns": float(e.shaping_time_ns),
        "chip_layout": CHIP_LAYOUTS.index(config.noise.chip_layout),
    }
    if rand.point_formation:
        pick = rand.point_formation[int(rng.integers(len(rand.point_formation)))]
        values["point_formation"] = POINT_MODES.index(pick)
    if rand.shaping_time_ns:
        values["shaping_time_ns"] = float(
            rand.shaping_time_ns[int(rng.integers(len(rand.shaping_time_ns)))]
        )
    if rand.chip_layout:
        pick = rand.chip_layout[int(rng.integers(len(rand.chip_layout)))]
        values["chip_layout"] = CHIP_LAYOUTS.index(pick)
    return values


def draw_knobs(config: SimConfig, rng: np.random.Generator | None) -> Knobs:
    """Knobs of one event (or file): fixed values, then every ranged knob drawn in order.

    Gain is log-uniform (a factor of 0.3-3 is as likely below 1 as above); integer hit
    counts are uniform inclusive; the rest uniform. Dead pads are a random subset of
    ``round(fraction x NUM_PADS)`` pads drawn from the same generator.
    """
    knobs = fixed_knobs(config)
    rand = config.randomize
    if rng is not None:
        for name in RANDOM_KNOBS:
            span = getattr(rand, name)
            if not span or name in FAULT_KNOBS:  # faults: `draw_faults`, once per file
                continue
            setattr(knobs, name, _draw(name, float(span[0]), float(span[1]), rng))
    n_dead = round(knobs.dead_pad_fraction * NUM_PADS)
    if n_dead:
        # a fixed fraction is a property of the detector: the same pads in every event
        randomised = rng is not None and "dead_pad_fraction" in rand.active
        pick = rng if randomised else np.random.default_rng(DEAD_PAD_STREAM)
        knobs.dead_pads = np.sort(pick.choice(NUM_PADS, size=n_dead, replace=False))
    return knobs
