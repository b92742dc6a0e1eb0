"""Simulation settings: one ``@dataclass`` per concern, units in the comments (Spyral style).

The defaults are experiment e15503b as recorded in docs/ARCHITECTURE.md ("Physics presets");
``configs/sim/*.yaml`` override them. `validate_config` checks everything before any work
starts and raises `data_prep.errors.InputError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from data_prep.errors import InputError

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


@dataclass
class ElectronicsConfig:
    """GET electronics. The window time bucket follows from length and drift velocity."""

    clock_mhz: float = 12.5  # MHz, GET sampling clock
    amplifier_range_fc: float = 120.0  # fC giving full scale 4095 ADC (attpc-engine's amp_gain)
    shaping_time_ns: int = 502  # ns, GET shaping time
    micromegas_tb: int = 20  # time bucket of the micromegas (z = L)
    adc_threshold: float = 30.0  # ADC, a point needs amplitude above this


@dataclass
class NoiseConfig:
    """Random pad hits on real (non-beam) pads, inside the drift window in time."""

    hits_per_event: tuple[int, int] = (2, 20)  # hits added to every event, uniform, inclusive
    noise_event_hits: tuple[int, int] = (20, 300)  # hits of a noise-only event (paper: 20-300)
    amplitude_adc: float = 40.0  # ADC, mean excess of a noise hit over the threshold (exp.)


@dataclass
class ReactionConfig:
    """Angular and excitation distributions of the reaction channels."""

    # deg, CM scattering angle range of 1H(46Ar,p); isotropic (near-barrier, resonant)
    proton_scattering_deg: tuple[float, float] = (0.0, 180.0)
    # deg, CM scattering angle range of 12C(46Ar,12C); upper edge ~ grazing angle (~36 deg)
    carbon_scattering_deg: tuple[float, float] = (15.0, 40.0)
    carbon_rutherford: bool = True  # weight carbon angles by 1/sin^4(theta/2), else isotropic
    alpha_43cl_excitation_mev: tuple[float, float] = (0.0, 2.0)  # MeV, 43Cl Ex uniform in range
    alpha_54ti_excitation_mev: tuple[float, float] = (35.0, 5.0)  # MeV, 54Ti Ex mean, sigma
    pileup_channels: tuple[str, ...] = ("p_elastic", "c12_elastic")  # drawn for each of two


@dataclass
class ClassMixConfig:
    """Relative weights of the classes, then of the channels inside class "other"."""

    proton: float = 663.0  # paper's labelled mix 663 : 340 : 1686
    carbon: float = 340.0
    other: float = 1686.0
    noise: float = 0.35  # noise-only events (within "other")
    alpha_43cl: float = 0.2  # 1H(46Ar,alpha)43Cl
    alpha_54ti: float = 0.2  # 12C(46Ar,alpha)54Ti*, fusion-evaporation stand-in
    pileup: float = 0.25  # two reactions in one event


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
    # a reaction whose products leave fewer points above threshold is redrawn (and counted)
    min_signal_points: int = 10
    max_draws: int = 200  # redraws allowed per event before the config is declared hopeless

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


_ISOTOPE = re.compile(r"^\s*(\d+)\s*([A-Za-z]{1,2})\s*$|^\s*([A-Za-z]{1,2})\s*-?\s*(\d+)\s*$")


def parse_isotope(text: str, what: str = "nucleus") -> tuple[int, int]:
    """``"46Ar"`` (or ``"Ar46"``, ``"ar-46"``) -> ``(Z, A)``, checked against the AME table.

    Raises
    ------
    InputError
        Unparsable text or a nucleus the mass table does not know.
    """
    from data_prep.sim.physics import nuclear_map, symbol_to_z

    match = _ISOTOPE.match(str(text))
    if not match:
        raise InputError(f"{what}: cannot read isotope {text!r} (write it like '46Ar')")
    a_text, symbol = (match[1], match[2]) if match[1] else (match[4], match[3])
    z = symbol_to_z().get(symbol.capitalize())
    if z is None:
        raise InputError(f"{what}: unknown element {symbol!r} in {text!r}")
    a = int(a_text)
    try:
        nuclear_map().get_data(z, a)
    except KeyError:
        raise InputError(f"{what}: unknown nucleus {text!r} (not in the AME 2020 table)") from None
    return z, a


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


def validate_config(config: SimConfig) -> None:
    """Check a `SimConfig` before any simulation; raise `InputError` on the first problem."""
    from data_prep.sim.channels import CHANNELS, PILEUP_CAPABLE

    if not isinstance(config, SimConfig):
        raise InputError(f"expected a SimConfig, got {type(config).__name__}")
    b, g, d, e, n, r, m = (
        config.beam,
        config.gas,
        config.detector,
        config.electronics,
        config.noise,
        config.reactions,
        config.mix,
    )
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

    if len(g.components) == 0 or len(g.components) != len(g.counts):
        raise InputError("config keys 'gas.components' and 'gas.counts' need the same length > 0")
    for iso, count in zip(g.components, g.counts, strict=True):
        parse_isotope(iso, "gas.components")
        if not isinstance(count, int) or count < 1:
            raise InputError(f"config key 'gas.counts' must hold positive integers, got {count!r}")
    _number("gas.pressure_torr", g.pressure_torr, low=0, strict=True)
    _number("gas.w_value_ev", g.w_value_ev, low=0, strict=True)
    _number("gas.fano_factor", g.fano_factor, low=0)

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

    _number("electronics.clock_mhz", e.clock_mhz, low=0, strict=True)
    _number("electronics.amplifier_range_fc", e.amplifier_range_fc, low=0, strict=True)
    _number("electronics.shaping_time_ns", e.shaping_time_ns, low=0, strict=True)
    _number("electronics.micromegas_tb", e.micromegas_tb, low=0)
    _number("electronics.adc_threshold", e.adc_threshold, low=0)
    if e.adc_threshold >= 4095:
        raise InputError("config key 'electronics.adc_threshold' must be below 4095 ADC")
    if e.micromegas_tb >= NUM_TIME_BUCKETS - 1:
        raise InputError(f"config key 'electronics.micromegas_tb' must be < {NUM_TIME_BUCKETS - 1}")
    if config.window_tb - e.micromegas_tb < 2:
        raise InputError("detector length / drift velocity span fewer than 2 time buckets")

    for key in ("hits_per_event", "noise_event_hits"):
        lo, hi = _pair(f"noise.{key}", getattr(n, key), low=0)
        if lo != int(lo) or hi != int(hi):
            raise InputError(f"config key 'noise.{key}' must hold integers")
    _number("noise.amplitude_adc", n.amplitude_adc, low=0, strict=True)

    _pair("reactions.proton_scattering_deg", r.proton_scattering_deg, low=0, high=180)
    lo, _ = _pair("reactions.carbon_scattering_deg", r.carbon_scattering_deg, low=0, high=180)
    if r.carbon_rutherford and lo <= 0:
        raise InputError("Rutherford weighting needs reactions.carbon_scattering_deg min > 0")
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

    weights = {}
    for name in ("proton", "carbon", "other", *(c for c in CHANNELS if CHANNELS[c].other)):
        weights[name] = _number(f"mix.{name}", getattr(m, name), low=0)
    if weights["proton"] + weights["carbon"] + weights["other"] <= 0:
        raise InputError("config keys mix.proton/carbon/other must not all be 0")
    if weights["other"] > 0 and sum(weights[c] for c in CHANNELS if CHANNELS[c].other) <= 0:
        raise InputError("mix.other > 0 needs a positive weight for one 'other' channel")

    _number("min_signal_points", config.min_signal_points, low=1)
    _number("max_draws", config.max_draws, low=1)
