"""Simulation settings: one ``@dataclass`` per concern, units in the comments (Spyral style).

The defaults are experiment e15503b as recorded in docs/ARCHITECTURE.md ("Physics presets");
``configs/sim/*.yaml`` override them. `validate_config` checks everything before any work
starts and raises `data_prep.errors.InputError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from data_prep.errors import InputError
from data_prep.sim.channels import CHANNELS, PILEUP_CAPABLE
from data_prep.sim.nuclei import parse_isotope
from data_prep.sim.points import POINT_MODES

#: GET electronics sample 512 time buckets per event.
NUM_TIME_BUCKETS = 512
#: attpc-engine's tracker stops particles at z = 1 m (solver.forward_z_bound_condition).
ENGINE_MAX_LENGTH_MM = 1000.0


@dataclass
class BeamConfig:
    """The beam and where it reacts."""

    nucleus: str = "46Ar"  # isotope as "<A><symbol>", e.g. "46Ar"
    energy_mev_u: float = 4.6  # MeV/u delivered by the accelerator
    window_loss_mev_u: float = 0.43  # MeV/u lost in the entrance window (4.17 MeV/u at z = 0)
    energy_spread: float = 0.003  # relative 1-sigma spread of the beam energy (0.003 = 0.3 %)
    divergence_deg: float = 0.5  # deg, beam direction uniform in a cone of this half-angle
    spot_sigma_mm: float = 2.0  # mm, 1-sigma radius of the beam spot (vertex rho)
    spot_offset_mm: tuple[float, float] = (0.0, 0.0)  # mm, beam spot centre (x, y) off axis
    vertex_z_mm: tuple[float, float] = (0.0, 1000.0)  # mm, vertex range; window z=0, mesh z=L


@dataclass
class GasConfig:
    """The target gas: a molecule given as isotopes and counts (isobutane C4H10 by default)."""

    components: tuple[str, ...] = ("12C", "1H")  # isotopes in the molecule
    counts: tuple[int, ...] = (4, 10)  # atoms of each isotope per molecule
    pressure_torr: float = 19.2  # Torr (room temperature assumed by spyral-utils)
    w_value_ev: float = 23.0  # eV per electron-ion pair
    fano_factor: float = 0.2  # unitless


@dataclass
class DetectorConfig:
    """Fields, drift and amplification. Fields point along z (the detector's 6.2 deg tilt
    against the solenoid cannot be modelled by attpc-engine)."""

    length_mm: float = 1000.0  # mm, active length (window to micromegas)
    magnetic_field_t: float = 1.68  # T, along the beam
    electric_field_v_m: float = 9500.0  # V/m, drift field
    drift_velocity_cm_us: float = 5.2  # cm/us, electron drift velocity
    mpgd_gain: int = 12000  # micromegas gain, electrons out per electron in
    diffusion_v: float = 0.02  # V, transverse diffusion coefficient (sigma^2 = 2 D L / E)
    # pads whose centre lies within this radius read nothing (attpc-engine always drops its
    # own 122 beam pads, centres within 19.7 mm; a larger radius widens the blind core)
    beam_pad_radius_mm: float = 0.0
    dead_pad_fraction: float = 0.0  # share of pads that read nothing (drawn per event/file)
    dead_chips: int = 0  # whole AGET chips (64 pads) that read nothing, the same all run
    pad_gain_spread: float = 0.15  # sigma of the lognormal per-pad gain (fixed per detector)
    # the drift (E) and the solenoid (B) are ~6 deg apart: charge drifting from depth d
    # lands d tan(tilt_deg) off along tilt_azimuth_deg (a shear of the side views);
    # attpc-engine itself has E and B along z, so 0 is the engine's own geometry
    tilt_deg: float = 0.0
    tilt_azimuth_deg: float = 90.0  # deg, direction of the shear in the pad plane
    z_scale: float = 1.0  # z calibration: z_written = z_scale * z + z_offset_mm (drift
    z_offset_mm: float = 0.0  # velocity and trigger offset are known to a few per cent)


@dataclass
class ElectronicsConfig:
    """GET electronics. The window time bucket follows from length and drift velocity."""

    clock_mhz: float = 12.5  # MHz, GET sampling clock
    amplifier_range_fc: float = 120.0  # fC giving full scale 4095 ADC (attpc-engine's amp_gain)
    shaping_time_ns: int = 502  # ns, GET shaping time
    micromegas_tb: int = 20  # time bucket of the micromegas (z = L)
    adc_threshold: float = 30.0  # ADC, a point needs amplitude above this
    # how charge becomes points: "peaks" (Spyral: peaks of each pad's GET trace), "pad"
    # (pytpc peaks_only: one point per pad), "bucket" (one point per pad and time bucket)
    point_formation: str = "peaks"
    peak_separation: float = 50.0  # buckets, Spyral GetParameters (its example config)
    peak_prominence: float = 20.0  # ADC
    peak_max_width: float = 50.0  # buckets


@dataclass
class NoiseConfig:
    """Random pad hits on real (non-beam) pads, inside the drift window in time."""

    hits_per_event: tuple[int, int] = (2, 20)  # hits added to every event, uniform, inclusive
    noise_event_hits: tuple[int, int] = (20, 300)  # hits of a noise-only event (paper: 20-300)
    amplitude_adc: float = 40.0  # ADC, mean excess of a noise hit over the threshold (exp.)
    # structured noise (docs/simulation.md, "Noise")
    chip_rate: float = 0.2  # mean AGET chips per event whose 64 channels fire together
    # which 64 pads an AGET chip reads (`CHIP_LAYOUTS`): "blocks", 64 consecutive pad ids
    # (an arc along a ring of pads); "patches", compact patches; "stripes", bands a few
    # pads wide (our pictures of the real wiring, whose map is not shipped:
    # docs/simulation.md, "Noise")
    chip_layout: str = "blocks"
    hot_pads: int = 3  # pads that fire in every event (the same pads all run)
    burst_rate: float = 0.1  # mean time-bunched bursts per event (hits within a few buckets)
    burst_hits: tuple[int, int] = (20, 100)  # hits of one burst, uniform


@dataclass
class ReactionConfig:
    """Angular and excitation distributions of the reaction channels."""

    # deg, CM scattering angle range of 1H(46Ar,p); isotropic (near-barrier, resonant)
    proton_scattering_deg: tuple[float, float] = (0.0, 180.0)
    # deg, CM scattering angle range of 12C(46Ar,12C); below 10 deg the recoil has < 1 MeV
    carbon_scattering_deg: tuple[float, float] = (10.0, 180.0)
    carbon_rutherford: bool = True  # weight carbon angles by 1/sin^4(theta/2), else isotropic
    # cut carbon angles at the classical grazing angle of the energy at the vertex (all
    # angles below the Coulomb barrier); off: the fixed carbon_scattering_deg range
    carbon_grazing: bool = True
    carbon_radius_r0_fm: float = 1.4  # fm, R = r0 (A1^1/3 + A2^1/3): barrier 19 MeV on 12C
    p_inelastic_excitation_mev: float = 1.554  # MeV, 46Ar first 2+ state ((p,p') channel)
    fusion_max_particles: int = 8  # evaporated particles + residue per fusion event, at most
    alpha_43cl_excitation_mev: tuple[float, float] = (0.0, 2.0)  # MeV, 43Cl Ex uniform in range
    alpha_54ti_excitation_mev: tuple[float, float] = (35.0, 5.0)  # MeV, 54Ti Ex mean, sigma
    pileup_channels: tuple[str, ...] = ("p_elastic", "c12_elastic")  # drawn for each of two


@dataclass
class ClassMixConfig:
    """Relative weights of the classes, then of the channels inside class "other"."""

    proton: float = 663.0  # paper's labelled mix 663 : 340 : 1686
    p_inelastic: float = 0.15  # share of the proton class that is 1H(46Ar,p')46Ar(2+)
    carbon: float = 340.0
    other: float = 1686.0
    noise: float = 0.35  # noise-only events (within "other")
    alpha_43cl: float = 0.2  # 1H(46Ar,alpha)43Cl
    alpha_54ti: float = 0.0  # 12C(46Ar,alpha)54Ti*, the earlier two-body stand-in
    fusion_evap: float = 0.2  # 12C(46Ar, n p alpha ...): fusion-evaporation, several particles
    pileup: float = 0.25  # two reactions in one event


@dataclass
class BeamAxisConfig:
    """Beam ions along the axis, in every event of every class (data_prep/sim/beam.py)."""

    incoming: bool = True  # the reacting ion's own track from the window to the vertex
    # a noise event's triggering ion, unreacted, through the drift volume (false: the
    # simulation before 2026-12-02's second stop, when noise events had no ion of their own)
    trigger_ion: bool = True
    extra_ions: tuple[int, int] = (0, 2)  # other beam ions in the readout window, uniform
    scattered_fraction: float = 0.5  # share of the extra ions scattered on the way
    scattering_deg: tuple[float, float] = (1.0, 8.0)  # deg, lab; small-angle Rutherford


#: Knobs `RandomizeConfig` can draw, in draw order (the order is part of reproducibility).
RANDOM_KNOBS: tuple[str, ...] = (
    "gain_factor",
    "adc_threshold",
    "pressure_factor",
    "field_factor",
    "beam_energy_mev_u",
    "diffusion_v",
    "noise_hits",
    "dead_pad_fraction",
    "z_scale",
    "z_offset_mm",
    "beam_pad_radius_mm",
    "tilt_deg",
    # structured noise: per event (or file) like the knobs above
    "chip_rate",
    "burst_rate",
    # detector faults (`FAULT_KNOBS`): always one draw per run file, from the fault stream
    "hot_pads",
    "dead_chips",
    "pad_gain_spread",
    # the beam: per event like the detector knobs (appended last so that configs without
    # them draw exactly what they drew before)
    "divergence_deg",
    "spot_sigma_mm",
    "extra_ions",
    "scattered_fraction",
)
#: Knobs that describe a faulty detector for a whole run: drawn once per run file from
#: ``[seed, FAULT_STREAM, file]`` together with the faulty pads themselves.
FAULT_KNOBS: tuple[str, ...] = ("hot_pads", "dead_chips", "pad_gain_spread")
#: Knobs drawn as integers (uniform, inclusive).
INTEGER_KNOBS: tuple[str, ...] = ("noise_hits", "hot_pads", "dead_chips", "extra_ions")
#: Electronics settings drawn once per run file as choices (a run is processed with one
#: tool at one GET setting), from ``[seed, ELECTRONICS_STREAM, file]``: not ranges.
ELECTRONICS_KNOBS: tuple[str, ...] = ("point_formation", "shaping_time_ns", "chip_layout")
#: How AGET chips group the pads (`NoiseConfig.chip_layout`), stored by index.
CHIP_LAYOUTS: tuple[str, ...] = ("blocks", "patches", "stripes")
#: Point formations a run file may draw (``bucket`` stays an explicit config value).
DRAWN_POINT_MODES: tuple[str, ...] = ("peaks", "pad")
#: Columns of the event table that record the settings used, in order.
TABLE_KNOBS: tuple[str, ...] = RANDOM_KNOBS + ELECTRONICS_KNOBS


@dataclass
class RandomizeConfig:
    """Domain randomisation: detector and beam knobs drawn from ``[min, max]`` ranges.

    An empty range ``[]`` keeps the fixed value of the config. Draws come from their own
    stream (``[seed, KNOB_STREAM, event or file]``), so switching randomisation on or off
    leaves the physics draws of an event unchanged; the values used are stored per event
    in the run file's event table.
    """

    per: str = "event"  # "event": new values every event; "file": one set per run file
    # where dead chips, hot pads and per-pad gains come from: "fixed" (one detector,
    # DETECTOR_STREAM, the same in every run file) or "file" (a new faulty detector per run
    # file, seeded from the simulation's seed and the file); ranges of FAULT_KNOBS need "file"
    faults: str = "fixed"
    # with per: event, knobs drawn once per run file all the same: what is fixed for a run
    # (e.g. tilt_deg: the E-B angle is set by the fields), so that what a run shares can
    # be measured from the run (the beam line a preprocessing fits per run file)
    per_run: tuple[str, ...] = ()
    gain_factor: tuple[float, ...] = ()  # x detector.mpgd_gain, log-uniform (e.g. 0.3-3)
    adc_threshold: tuple[float, ...] = ()  # ADC, uniform
    pressure_factor: tuple[float, ...] = ()  # x gas.pressure_torr, uniform (e.g. 0.95-1.05)
    field_factor: tuple[float, ...] = ()  # x detector.magnetic_field_t, uniform (0.97-1.03)
    beam_energy_mev_u: tuple[float, ...] = ()  # MeV/u before the window, uniform
    diffusion_v: tuple[float, ...] = ()  # V, uniform
    noise_hits: tuple[int, ...] = ()  # random hits per reaction event, integer uniform
    dead_pad_fraction: tuple[float, ...] = ()  # uniform, [0, 1)
    z_scale: tuple[float, ...] = ()  # uniform (e.g. 0.97-1.03)
    z_offset_mm: tuple[float, ...] = ()  # mm, uniform
    beam_pad_radius_mm: tuple[float, ...] = ()  # mm, uniform
    tilt_deg: tuple[float, ...] = ()  # deg, E-B angle (shear of the side views), uniform
    chip_rate: tuple[float, ...] = ()  # mean AGET chips firing per event, uniform
    burst_rate: tuple[float, ...] = ()  # mean time-bunched bursts per event, uniform
    hot_pads: tuple[int, ...] = ()  # hot pads of a run file, integer uniform (faults: file)
    dead_chips: tuple[int, ...] = ()  # dead AGET chips of a run file, integer uniform
    pad_gain_spread: tuple[float, ...] = ()  # lognormal sigma of the per-pad gain, uniform
    divergence_deg: tuple[float, ...] = ()  # deg, beam cone half-angle (beam.divergence_deg)
    spot_sigma_mm: tuple[float, ...] = ()  # mm, beam spot 1-sigma radius (beam.spot_sigma_mm)
    extra_ions: tuple[int, ...] = ()  # other beam ions in the event, integer uniform
    scattered_fraction: tuple[float, ...] = ()  # share of them scattered, uniform in [0, 1]
    # per run file, one of the listed choices with equal probability (`ELECTRONICS_KNOBS`)
    point_formation: tuple[str, ...] = ()  # among "peaks" (Spyral), "pad" (pytpc peaks_only)
    shaping_time_ns: tuple[float, ...] = ()  # ns, GET shaping times (e.g. 232, 502, 1014)
    chip_layout: tuple[str, ...] = ()  # among `CHIP_LAYOUTS`: which pads a chip fire lights

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the knobs with a range."""
        return tuple(k for k in RANDOM_KNOBS if getattr(self, k))

    @property
    def electronics(self) -> tuple[str, ...]:
        """Names of the electronics settings drawn per run file (`ELECTRONICS_KNOBS`)."""
        return tuple(k for k in ELECTRONICS_KNOBS if getattr(self, k))


@dataclass
class SimConfig:
    """Everything `data_prep.simulate.simulate` needs besides counts, seed and paths."""

    name: str = "e15503b_nominal"  # free text, stored in every run file
    beam: BeamConfig = field(default_factory=BeamConfig)
    gas: GasConfig = field(default_factory=GasConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    electronics: ElectronicsConfig = field(default_factory=ElectronicsConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    reactions: ReactionConfig = field(default_factory=ReactionConfig)
    mix: ClassMixConfig = field(default_factory=ClassMixConfig)
    beam_axis: BeamAxisConfig = field(default_factory=BeamAxisConfig)
    randomize: RandomizeConfig = field(default_factory=RandomizeConfig)
    # a reaction whose products leave fewer points above threshold is redrawn (and counted)
    min_signal_points: int = 10
    # ... counting only its light products' points at least this far from the reacting
    # ion's line (mm): within it the beam's own charge dominates in real data, and a
    # carbon hidden there looks like a noise event to any reader (docs/simulation.md)
    min_signal_radius_mm: float = 30.0
    max_draws: int = 1000  # redraws allowed per event before the config is declared hopeless

    @property
    def window_tb(self) -> int:
        """Time bucket of the entrance window (z = 0), from length, drift velocity, clock."""
        mm_per_tb = self.detector.drift_velocity_cm_us * 10.0 / self.electronics.clock_mhz
        return self.electronics.micromegas_tb + round(self.detector.length_mm / mm_per_tb)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): stored in run files and compared on resume."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def _number(key: str, value: Any, *, low: float | None = None, strict: bool = False) -> float:
    if value is None:
        raise InputError(f"config key {key!r} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"config key {key!r} must be a finite number, got {value!r}")
    if low is not None and (value <= low if strict else value < low):
        relation = ">" if strict else ">="
        raise InputError(f"config key {key!r} must be {relation} {low:g}, got {value!r}")
    return float(value)


def _pair(key: str, value: Any, *, low: float, high: float | None = None) -> tuple[float, float]:
    if value is None or len(value) != 2:
        raise InputError(f"config key {key!r} must be two numbers [min, max], got {value!r}")
    lo, hi = (_number(key, v, low=low) for v in value)
    if hi < lo or (high is not None and hi > high):
        limit = "" if high is None else f" within [{low:g}, {high:g}]"
        raise InputError(f"config key {key!r} must be [min, max] with min <= max{limit}")
    return lo, hi


def _fraction(key: str, value: Any) -> float:
    number = _number(key, value, low=0)
    if number >= 1:
        raise InputError(f"config key {key!r} must be in [0, 1), got {value!r}")
    return number


#: Lowest value each randomised knob may take (None: any finite number).
_KNOB_LOW: dict[str, float | None] = {
    "gain_factor": 1e-3,
    "adc_threshold": 0.0,
    "pressure_factor": 1e-3,
    "field_factor": 0.0,
    "beam_energy_mev_u": 1e-3,
    "diffusion_v": 0.0,
    "noise_hits": 0.0,
    "dead_pad_fraction": 0.0,
    "z_scale": 1e-3,
    "z_offset_mm": None,
    "beam_pad_radius_mm": 0.0,
    "tilt_deg": None,
    "chip_rate": 0.0,
    "burst_rate": 0.0,
    "hot_pads": 0.0,
    "dead_chips": 0.0,
    "pad_gain_spread": 0.0,
    "divergence_deg": 0.0,
    "spot_sigma_mm": 0.0,
    "extra_ions": 0.0,
    "scattered_fraction": 0.0,
}


def _validate_randomize(rand: RandomizeConfig) -> None:
    if rand.per not in ("event", "file"):
        raise InputError(f"config key 'randomize.per' must be 'event' or 'file', got {rand.per!r}")
    if rand.faults not in ("fixed", "file"):
        raise InputError(
            f"config key 'randomize.faults' must be 'fixed' or 'file', got {rand.faults!r}"
        )
    bad = [k for k in rand.per_run if k not in RANDOM_KNOBS or k in FAULT_KNOBS]
    if bad:
        raise InputError(
            f"config key 'randomize.per_run' lists {bad[0]!r}: name knobs of RANDOM_KNOBS "
            "other than the detector faults (drawn per file already)"
        )
    ranged = [k for k in FAULT_KNOBS if getattr(rand, k)]
    if ranged and rand.faults != "file":
        raise InputError(
            f"config key 'randomize.{ranged[0]}' is a detector fault drawn per run file: "
            "set randomize.faults: file"
        )
    for knob in RANDOM_KNOBS:
        value = getattr(rand, knob)
        if not value:
            continue
        key = f"randomize.{knob}"
        low = _KNOB_LOW[knob]
        if low is None:
            if len(value) != 2:
                raise InputError(f"config key {key!r} must be two numbers [min, max] or []")
            lo, hi = (_number(key, v) for v in value)
            if hi < lo:
                raise InputError(f"config key {key!r} must be [min, max] with min <= max")
        else:
            lo, hi = _pair(key, value, low=low)
        if knob in INTEGER_KNOBS and (lo != int(lo) or hi != int(hi)):
            raise InputError(f"config key {key!r} must hold integers")
        if knob == "dead_pad_fraction" and hi >= 1:
            raise InputError("config key 'randomize.dead_pad_fraction' must stay below 1")
        if knob == "hot_pads" and hi > 1000:
            raise InputError("config key 'randomize.hot_pads' must stay <= 1000 (of 10,240 pads)")
        if knob == "dead_chips" and hi > 160 - 1:
            raise InputError("config key 'randomize.dead_chips' must stay below 160 (all chips)")
        if knob == "divergence_deg" and hi > 10:
            raise InputError("config key 'randomize.divergence_deg' must stay <= 10 deg")
        if knob == "scattered_fraction" and hi > 1:
            raise InputError("config key 'randomize.scattered_fraction' must stay <= 1")
        if knob == "extra_ions" and hi > 50:
            raise InputError("config key 'randomize.extra_ions' must stay <= 50 ions")
        if knob == "adc_threshold" and hi >= 4095:
            raise InputError("config key 'randomize.adc_threshold' must stay below 4095 ADC")
    _validate_electronics_choices(rand)


def _validate_electronics_choices(rand: RandomizeConfig) -> None:
    """Point formations among `DRAWN_POINT_MODES`; shaping times positive, <= 10 us; chip
    layouts among `CHIP_LAYOUTS`."""
    for layout in rand.chip_layout:
        if layout not in CHIP_LAYOUTS:
            raise InputError(
                "config key 'randomize.chip_layout' must list choices among "
                f"{', '.join(CHIP_LAYOUTS)}, got {layout!r}"
            )
    for mode in rand.point_formation:
        if mode not in DRAWN_POINT_MODES:
            raise InputError(
                "config key 'randomize.point_formation' must list choices among "
                f"{', '.join(DRAWN_POINT_MODES)} (bucket: set electronics.point_formation), "
                f"got {mode!r}"
            )
    for value in rand.shaping_time_ns:
        _number("randomize.shaping_time_ns", value, low=0, strict=True)
        if value > 10000:
            raise InputError(
                f"config key 'randomize.shaping_time_ns' lists GET shaping times in ns "
                f"(<= 10000), got {value!r}"
            )


def validate_config(config: SimConfig) -> None:
    """Check a `SimConfig` before any simulation; raise `InputError` on the first problem."""
    if not isinstance(config, SimConfig):
        raise InputError(f"expected a SimConfig, got {type(config).__name__}")
    _check_beam(config)
    _check_gas(config)
    _check_detector(config)
    _check_electronics(config)
    _check_noise(config)
    _check_reactions(config)
    _check_mix(config)

    _validate_randomize(config.randomize)

    _number("min_signal_points", config.min_signal_points, low=1)
    _number("min_signal_radius_mm", config.min_signal_radius_mm, low=0)
    _number("max_draws", config.max_draws, low=1)


def _check_beam(config: SimConfig) -> None:
    """Beam and beam-axis ions settings."""
    b = config.beam
    parse_isotope(b.nucleus, "beam.nucleus")
    _number("beam.energy_mev_u", b.energy_mev_u, low=0, strict=True)
    _number("beam.window_loss_mev_u", b.window_loss_mev_u, low=0)
    if b.window_loss_mev_u >= b.energy_mev_u:
        raise InputError("config key 'beam.window_loss_mev_u' must be below beam.energy_mev_u")
    _number("beam.energy_spread", b.energy_spread, low=0)
    if b.energy_spread > 0.2:
        raise InputError("config key 'beam.energy_spread' is relative (0.01 = 1 %); got > 0.2")
    _number("beam.divergence_deg", b.divergence_deg, low=0)
    if b.divergence_deg > 10:
        raise InputError("config key 'beam.divergence_deg' must be <= 10 deg")
    _number("beam.spot_sigma_mm", b.spot_sigma_mm, low=0)
    if len(b.spot_offset_mm) != 2:
        raise InputError("config key 'beam.spot_offset_mm' must be two numbers [x, y]")
    for v in b.spot_offset_mm:
        _number("beam.spot_offset_mm", v)
    a = config.beam_axis
    lo, hi = _pair("beam_axis.extra_ions", a.extra_ions, low=0)
    if lo != int(lo) or hi != int(hi):
        raise InputError("config key 'beam_axis.extra_ions' must hold integers")
    if not 0 <= _number("beam_axis.scattered_fraction", a.scattered_fraction, low=0) <= 1:
        raise InputError("config key 'beam_axis.scattered_fraction' must be in [0, 1]")
    _pair("beam_axis.scattering_deg", a.scattering_deg, low=1e-3, high=90)


def _check_gas(config: SimConfig) -> None:
    """Gas settings."""
    g = config.gas
    if len(g.components) == 0 or len(g.components) != len(g.counts):
        raise InputError("config keys 'gas.components' and 'gas.counts' need the same length > 0")
    for iso, count in zip(g.components, g.counts, strict=True):
        parse_isotope(iso, "gas.components")
        if not isinstance(count, int) or count < 1:
            raise InputError(f"config key 'gas.counts' must hold positive integers, got {count!r}")
    _number("gas.pressure_torr", g.pressure_torr, low=0, strict=True)
    _number("gas.w_value_ev", g.w_value_ev, low=0, strict=True)
    _number("gas.fano_factor", g.fano_factor, low=0)


def _check_detector(config: SimConfig) -> None:
    """Detector settings."""
    d = config.detector
    _number("detector.length_mm", d.length_mm, low=0, strict=True)
    if d.length_mm > ENGINE_MAX_LENGTH_MM:
        raise InputError(
            f"config key 'detector.length_mm' must be <= {ENGINE_MAX_LENGTH_MM:g} "
            "(attpc-engine stops tracks at z = 1 m)"
        )
    _number("detector.magnetic_field_t", d.magnetic_field_t, low=0)
    _number("detector.electric_field_v_m", d.electric_field_v_m, low=0, strict=True)
    _number("detector.drift_velocity_cm_us", d.drift_velocity_cm_us, low=0, strict=True)
    _number("detector.mpgd_gain", d.mpgd_gain, low=1)
    if not isinstance(d.mpgd_gain, int):
        raise InputError("config key 'detector.mpgd_gain' must be an integer")
    _number("detector.diffusion_v", d.diffusion_v, low=0)
    _number("detector.beam_pad_radius_mm", d.beam_pad_radius_mm, low=0)
    _fraction("detector.dead_pad_fraction", d.dead_pad_fraction)
    _number("detector.z_scale", d.z_scale, low=0, strict=True)
    _number("detector.tilt_azimuth_deg", d.tilt_azimuth_deg)
    if abs(_number("detector.tilt_deg", d.tilt_deg)) > 20:
        raise InputError("config key 'detector.tilt_deg' must be within +-20 deg")
    _number("detector.z_offset_mm", d.z_offset_mm)


def _check_electronics(config: SimConfig) -> None:
    """Electronics and point formation settings."""
    e = config.electronics
    _number("electronics.clock_mhz", e.clock_mhz, low=0, strict=True)
    _number("electronics.amplifier_range_fc", e.amplifier_range_fc, low=0, strict=True)
    _number("electronics.shaping_time_ns", e.shaping_time_ns, low=0, strict=True)
    if e.shaping_time_ns > 10000:
        raise InputError("config key 'electronics.shaping_time_ns' must be <= 10000 ns")
    _number("electronics.micromegas_tb", e.micromegas_tb, low=0)
    _number("electronics.adc_threshold", e.adc_threshold, low=0)
    if e.point_formation not in POINT_MODES:
        raise InputError(
            f"config key 'electronics.point_formation' must be one of {', '.join(POINT_MODES)}, "
            f"got {e.point_formation!r}"
        )
    for key in ("peak_separation", "peak_prominence", "peak_max_width"):
        _number(f"electronics.{key}", getattr(e, key), low=0, strict=key != "peak_prominence")
    if e.adc_threshold >= 4095:
        raise InputError("config key 'electronics.adc_threshold' must be below 4095 ADC")
    if e.micromegas_tb >= NUM_TIME_BUCKETS - 1:
        raise InputError(f"config key 'electronics.micromegas_tb' must be < {NUM_TIME_BUCKETS - 1}")
    if config.window_tb - e.micromegas_tb < 2:
        raise InputError("detector length / drift velocity span fewer than 2 time buckets")


def _check_noise(config: SimConfig) -> None:
    """Noise (and the detector's dead chips, pad gains) settings."""
    d = config.detector
    n = config.noise
    if n.chip_layout not in CHIP_LAYOUTS:
        raise InputError(f"config key 'noise.chip_layout' must be one of "
                         f"{', '.join(CHIP_LAYOUTS)}, got {n.chip_layout!r}")  # fmt: skip
    for key in ("hits_per_event", "noise_event_hits"):
        lo, hi = _pair(f"noise.{key}", getattr(n, key), low=0)
        if lo != int(lo) or hi != int(hi):
            raise InputError(f"config key 'noise.{key}' must hold integers")
    _number("noise.amplitude_adc", n.amplitude_adc, low=0, strict=True)
    _number("noise.chip_rate", n.chip_rate, low=0)
    _number("noise.burst_rate", n.burst_rate, low=0)
    _number("noise.hot_pads", n.hot_pads, low=0)
    _pair("noise.burst_hits", n.burst_hits, low=0)
    _number("detector.dead_chips", d.dead_chips, low=0)
    _number("detector.pad_gain_spread", d.pad_gain_spread, low=0)


def _check_reactions(config: SimConfig) -> None:
    """Reaction channels settings."""
    r = config.reactions
    m = config.mix
    _pair("reactions.proton_scattering_deg", r.proton_scattering_deg, low=0, high=180)
    lo, _ = _pair("reactions.carbon_scattering_deg", r.carbon_scattering_deg, low=0, high=180)
    if r.carbon_rutherford and lo <= 0:
        raise InputError("Rutherford weighting needs reactions.carbon_scattering_deg min > 0")
    _number("reactions.carbon_radius_r0_fm", r.carbon_radius_r0_fm, low=0, strict=True)
    _number("reactions.p_inelastic_excitation_mev", r.p_inelastic_excitation_mev, low=0)
    _number("mix.p_inelastic", m.p_inelastic, low=0)
    if not 0 <= m.p_inelastic <= 1:
        raise InputError("config key 'mix.p_inelastic' must be a share in [0, 1]")
    _pair("reactions.alpha_43cl_excitation_mev", r.alpha_43cl_excitation_mev, low=0)
    if len(r.alpha_54ti_excitation_mev) != 2:
        raise InputError("config key 'reactions.alpha_54ti_excitation_mev' must be [mean, sigma]")
    _number("reactions.alpha_54ti_excitation_mev", r.alpha_54ti_excitation_mev[0], low=0)
    _number("reactions.alpha_54ti_excitation_mev", r.alpha_54ti_excitation_mev[1], low=0)
    if not r.pileup_channels:
        raise InputError("config key 'reactions.pileup_channels' must name at least one channel")
    for name in r.pileup_channels:
        if name not in PILEUP_CAPABLE:
            raise InputError(
                f"reactions.pileup_channels: unknown channel {name!r} "
                f"(choose from {', '.join(PILEUP_CAPABLE)})"
            )


def _check_mix(config: SimConfig) -> None:
    """Class mix settings."""
    m = config.mix
    weights = {}
    for name in ("proton", "carbon", "other", *(c for c in CHANNELS if CHANNELS[c].other)):
        weights[name] = _number(f"mix.{name}", getattr(m, name), low=0)
    if weights["proton"] + weights["carbon"] + weights["other"] <= 0:
        raise InputError("config keys mix.proton/carbon/other must not all be 0")
    if weights["other"] > 0 and sum(weights[c] for c in CHANNELS if CHANNELS[c].other) <= 0:
        raise InputError("mix.other > 0 needs a positive weight for one 'other' channel")
