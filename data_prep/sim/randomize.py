"""Domain randomisation: the detector and beam settings of one event (`Knobs`).

Without a ``randomize:`` range every knob takes the config's fixed value; with one it is
drawn, per event or per run file, from a generator of its own stream, so the physics
draws of an event do not change when randomisation is switched on. `Knobs.row` is what
the event table stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from data_prep.sim.config import RANDOM_KNOBS, SimConfig

#: Pads on the AT-TPC pad plane (attpc-engine's pad map).
NUM_PADS = 10240
#: Seed of the dead-pad choice when the fraction is fixed (not randomised).
DEAD_PAD_STREAM = 0x5EED_0DEA
#: Seed of what is fixed for a detector: dead chips, hot pads, per-pad gains.
DETECTOR_STREAM = 0x5EED_0DE7
#: Channels of one AGET chip; chips are taken as blocks of consecutive pad ids.
CHIP_CHANNELS = 64


@dataclass
class DetectorFaults:
    """What stays the same for a whole run: dead chips, hot pads, per-pad gains."""

    dead_pads: np.ndarray  # pad ids of the dead chips
    hot_pads: np.ndarray  # pad ids that fire in every event
    pad_gain: np.ndarray  # (NUM_PADS,) relative gain, lognormal around 1


def detector_faults(config: SimConfig, candidates: np.ndarray) -> DetectorFaults:
    """Draw the fixed faults of the detector from `DETECTOR_STREAM` (same for every event).

    ``candidates`` are the pads hot pads may be chosen from (not beam pads).
    """
    d, n = config.detector, config.noise
    rng = np.random.default_rng(DETECTOR_STREAM)
    chips = rng.choice(NUM_PADS // CHIP_CHANNELS, size=int(d.dead_chips), replace=False)
    dead = (chips[:, None] * CHIP_CHANNELS + np.arange(CHIP_CHANNELS)).ravel()
    hot = rng.choice(candidates, size=int(n.hot_pads), replace=False)
    sigma = float(d.pad_gain_spread)
    # mean 1: the spread must not move the overall gain (that is gain_factor's job)
    gain = rng.lognormal(-0.5 * sigma**2, sigma, size=NUM_PADS) if sigma > 0 else np.ones(NUM_PADS)
    return DetectorFaults(np.sort(dead), np.sort(hot), gain)


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
    dead_pads: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def row(self) -> tuple[float, ...]:
        """Values in `RANDOM_KNOBS` order, for the event table."""
        return tuple(getattr(self, k) for k in RANDOM_KNOBS)


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
    )


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
            if not span:
                continue
            lo, hi = float(span[0]), float(span[1])
            if name == "gain_factor":
                value: float = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            elif name == "noise_hits":
                value = int(rng.integers(int(lo), int(hi) + 1))
            else:
                value = float(rng.uniform(lo, hi))
            setattr(knobs, name, value)
    n_dead = round(knobs.dead_pad_fraction * NUM_PADS)
    if n_dead:
        # a fixed fraction is a property of the detector: the same pads in every event
        randomised = rng is not None and "dead_pad_fraction" in rand.active
        pick = rng if randomised else np.random.default_rng(DEAD_PAD_STREAM)
        knobs.dead_pads = np.sort(pick.choice(NUM_PADS, size=n_dead, replace=False))
    return knobs
