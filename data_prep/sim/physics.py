"""One labelled event at a time: attpc-engine kinematics + detector response + our noise.

attpc-engine's `run_kinematics_pipeline` and `run_simulation` write intermediate files and
draw from unseeded generators, so they cannot give reproducible events. This module drives
the same building blocks event by event with an explicit `numpy.random.Generator`:
`KinematicsPipeline.run` (its ``rng`` attribute set per event), the detector step
`attpc_engine.detector.simulator.simulate` (which takes the generator as an argument), and
`convert_to_spyral` + the ADC threshold exactly as `SpyralWriter.write` applies them.
Nothing in those paths touches numpy's or numba's global random state; the determinism
test in tests/test_simulate.py compares file bytes to keep it that way.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from data_prep.errors import InputError
from data_prep.sim.channels import CHANNEL_NAMES, CHANNELS
from data_prep.sim.config import NUM_TIME_BUCKETS, SimConfig, parse_isotope

#: Per-point label of injected noise hits (reaction points carry attpc-engine's nucleus
#: index: 2 = ejectile, 3 = residual; the second reaction of a pile-up adds PILEUP_OFFSET).
NOISE_POINT_LABEL = -1
PILEUP_OFFSET = 10
#: Nuclei attpc-engine tracks for a one-step reaction: ejectile and residual.
_PRODUCTS = [2, 3]
_ADC_MAX = 4095.0


@functools.cache
def enable_engine_cache() -> int:
    """Turn on numba's on-disk cache for attpc-engine's jitted detector functions.

    attpc-engine compiles them without ``cache=True``, so every process paid ~5 s of
    compilation on its first event (per worker, per test session). `enable_caching` is
    numba's public switch for the same thing; numba keys the cache on source, signature
    and CPU, and stores it in ``__pycache__`` beside the source (or its user cache dir
    when that is read-only). Must run before the first call. Returns the number switched.
    """
    from attpc_engine.detector import pairing, response, simulator, transporter, writer
    from numba.core.registry import CPUDispatcher

    count = 0
    for module in (pairing, transporter, response, writer, simulator):
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                obj.enable_caching()
                count += 1
    return count


@functools.cache
def nuclear_map():
    """attpc-engine's AME 2020 mass table (one shared instance)."""
    from attpc_engine import nuclear_map as table

    return table


@functools.cache
def symbol_to_z() -> dict[str, int]:
    """Element symbol ("Ar") -> proton number, from the mass table."""
    return {data.element_symbol: data.Z for data in nuclear_map().map.values() if data.Z > 0}


def make_gas(config: SimConfig):
    """The spyral-utils `GasTarget` of the configured molecule and pressure."""
    from spyral_utils.nuclear.target import GasTarget

    compound = [
        (*parse_isotope(iso, "gas.components"), int(count))
        for iso, count in zip(config.gas.components, config.gas.counts, strict=True)
    ]
    return GasTarget(compound, float(config.gas.pressure_torr), nuclear_map())


def beam_energy_mev(config: SimConfig) -> float:
    """Total kinetic energy of the beam at the entrance window (z = 0), MeV."""
    _, a = parse_isotope(config.beam.nucleus, "beam.nucleus")
    return (config.beam.energy_mev_u - config.beam.window_loss_mev_u) * a


def beam_range_mm(config: SimConfig) -> float:
    """Range of the beam in the gas from the window on, mm (pycatima via spyral-utils)."""
    z, a = parse_isotope(config.beam.nucleus, "beam.nucleus")
    gas = make_gas(config)
    return 1000.0 * gas.get_range(nuclear_map().get_data(z, a), beam_energy_mev(config))


def check_physics(config: SimConfig) -> None:
    """Checks that need the mass table and stopping powers (after `validate_config`)."""
    b = config.beam
    lo, hi = b.vertex_z_mm
    if lo < 0 or hi > config.detector.length_mm:
        raise InputError(
            f"config key 'beam.vertex_z_mm' must lie within [0, {config.detector.length_mm:g}] mm"
        )
    reach = beam_range_mm(config)
    if hi > 0.99 * reach:
        raise InputError(
            f"beam.vertex_z_mm reaches {hi:g} mm but the beam stops after {reach:.0f} mm "
            "in this gas; lower it or the pressure"
        )
    gas = {parse_isotope(iso, "gas.components") for iso in config.gas.components}
    from data_prep.sim.channels import channel_weights

    active = [name for name, w in channel_weights(config.mix).items() if w > 0]
    if "pileup" in active:
        active += list(config.reactions.pileup_channels)
    for name in active:
        target = CHANNELS[name].target
        if target is not None and parse_isotope(target) not in gas:
            raise InputError(f"channel {name!r} needs {target} in gas.components")


class PolarRutherford:
    """Ejectile CM polar angle for Rutherford scattering, dsigma/dOmega ~ 1/sin^4(theta/2).

    ``theta`` is the CM scattering angle, limited to ``[theta_min, theta_max]`` (a sharp
    cut-off at the grazing angle stands in for absorption). attpc-engine samples the
    *ejectile* polar angle, which is ``pi - theta`` for elastic recoils. Follows
    attpc-engine's `PolarDistribution` protocol.
    """

    def __init__(self, theta_min: float, theta_max: float):
        # in u = 1 - cos(theta) the density is 1/u^2: invert its CDF analytically
        self.inv_lo = 1.0 / (1.0 - math.cos(theta_min))
        self.inv_hi = 1.0 / (1.0 - math.cos(theta_max))

    def sample(self, rng: np.random.Generator) -> float:
        inv_u = self.inv_lo - rng.uniform() * (self.inv_lo - self.inv_hi)
        return math.pi - math.acos(1.0 - 1.0 / inv_u)


def _rotation_to(theta: float, phi: float) -> np.ndarray:
    """Rotation taking the z axis to direction (theta, phi): Rz(phi) Ry(theta) Rz(-phi)."""
    cp, sp, ct, st = math.cos(phi), math.sin(phi), math.cos(theta), math.sin(theta)
    rz = np.array([[cp, -sp, 0.0], [sp, cp, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[ct, 0.0, st], [0.0, 1.0, 0.0], [-st, 0.0, ct]])
    return rz @ ry @ rz.T


@dataclass
class SimEvent:
    """One simulated event before writing.

    Attributes
    ----------
    points
        ``(N, 8)`` float64 in Spyral columns, sorted by z.
    point_labels
        ``(N,)`` int64: nucleus index per point, `NOISE_POINT_LABEL` for noise hits.
    channel
        Name in `CHANNELS`.
    n_signal, n_noise
        Points from reaction products / injected noise hits.
    draws
        Reaction draws made; ``draws - 1`` were rejected for too few signal points.
    vertex
        First reaction vertex [mm] (NaN for noise-only events).
    """

    points: np.ndarray
    point_labels: np.ndarray
    channel: str
    n_signal: int
    n_noise: int
    draws: int
    vertex: np.ndarray

    @property
    def label(self) -> int:
        return CHANNELS[self.channel].label


class EventGenerator:
    """Builds attpc-engine's detector once and then simulates events on request.

    Parameters
    ----------
    config
        A validated `SimConfig`.

    Examples
    --------
    >>> gen = EventGenerator(SimConfig())
    >>> event = gen.generate("p_elastic", np.random.default_rng([0, 1]))
    """

    def __init__(self, config: SimConfig):
        # attpc-engine's detector modules compile with numba on first use; import late so
        # that config validation and file checks stay quick.
        from attpc_engine.detector import Config, DetectorParams, ElectronicsParams, PadParams
        from attpc_engine.detector.beam_pads import BEAM_PADS_ARRAY
        from attpc_engine.detector.response import get_response
        from attpc_engine.kinematics import (
            ExcitationGaussian,
            ExcitationUniform,
            KinematicsPipeline,
            KinematicsTargetMaterial,
            PolarUniform,
            Reaction,
        )

        enable_engine_cache()
        self.config = config
        d, e, b, r = config.detector, config.electronics, config.beam, config.reactions
        gas = make_gas(config)
        self.window_tb = config.window_tb
        self.engine = Config(
            DetectorParams(
                length=d.length_mm / 1000.0,
                efield=float(d.electric_field_v_m),
                bfield=float(d.magnetic_field_t),
                mpgd_gain=int(d.mpgd_gain),
                gas_target=gas,
                diffusion=float(d.diffusion_v),
                fano_factor=float(config.gas.fano_factor),
                w_value=float(config.gas.w_value_ev),
            ),
            ElectronicsParams(
                clock_freq=float(e.clock_mhz),
                amp_gain=float(e.amplifier_range_fc),
                shaping_time=float(e.shaping_time_ns),
                micromegas_edge=int(e.micromegas_tb),
                windows_edge=int(self.window_tb),
                adc_threshold=float(e.adc_threshold),
            ),
            PadParams(),
        )
        self.response = get_response(self.engine).copy()
        # a noise hit must look like a real point: same pulse shape, so same integral/amplitude
        self.integral_ratio = float(self.response.sum() / self.response.max())
        beam_pads = set(BEAM_PADS_ARRAY.tolist())
        self.noise_pads = np.array(
            [p for p in range(len(self.engine.pad_centers)) if p not in beam_pads], dtype=np.int64
        )
        # noise lives where physics can: the drift volume, inside the 512 sampled buckets
        self.noise_tb = (
            float(max(0, e.micromegas_tb)),
            float(min(NUM_TIME_BUCKETS, self.window_tb)),
        )

        nmap = nuclear_map()
        projectile = nmap.get_data(*parse_isotope(b.nucleus, "beam.nucleus"))
        self.beam_energy = beam_energy_mev(config)
        material = KinematicsTargetMaterial(
            gas, (b.vertex_z_mm[0] / 1000.0, b.vertex_z_mm[1] / 1000.0), b.spot_sigma_mm / 1000.0
        )
        p_lo, p_hi = np.radians(r.proton_scattering_deg)
        c_lo, c_hi = np.radians(r.carbon_scattering_deg)
        polar = {
            "p_elastic": PolarUniform(math.pi - p_hi, math.pi - p_lo),
            "c12_elastic": (
                PolarRutherford(c_lo, c_hi)
                if r.carbon_rutherford
                else PolarUniform(math.pi - c_hi, math.pi - c_lo)
            ),
            "alpha_43cl": PolarUniform(0.0, math.pi),
            "alpha_54ti": PolarUniform(0.0, math.pi),
        }
        excitation = {
            "p_elastic": ExcitationGaussian(0.0, 0.0),
            "c12_elastic": ExcitationGaussian(0.0, 0.0),
            "alpha_43cl": ExcitationUniform(*r.alpha_43cl_excitation_mev),
            "alpha_54ti": ExcitationGaussian(*r.alpha_54ti_excitation_mev),
        }
        self.pipelines = {}
        for name, channel in CHANNELS.items():
            if not channel.is_reaction:
                continue
            reaction = Reaction(
                nmap.get_data(*parse_isotope(channel.target)),
                projectile,
                nmap.get_data(*parse_isotope(channel.ejectile)),
            )
            pipeline = KinematicsPipeline(
                [reaction],
                [excitation[name]],
                [polar[name]],
                beam_energy=self.beam_energy,
                target_material=material,
            )
            self.pipelines[name] = (
                pipeline,
                pipeline.get_proton_numbers(),
                pipeline.get_mass_numbers(),
            )

    # -- one reaction -------------------------------------------------------------------

    def reaction(
        self, name: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kinematics + detector for one reaction; points above threshold.

        Returns
        -------
        points, labels, vertex
            ``(N, 8)`` Spyral rows, ``(N,)`` nucleus index, vertex [mm].
        """
        from attpc_engine.detector.simulator import simulate as detector_step
        from attpc_engine.detector.writer import convert_to_spyral

        b = self.config.beam
        pipeline, z_numbers, a_numbers = self.pipelines[name]
        pipeline.rng = rng
        spread = b.energy_spread * rng.standard_normal() if b.energy_spread > 0 else 0.0
        pipeline.beam_energy = self.beam_energy * max(1.0 + spread, 0.01)
        try:
            vertex, momenta = pipeline.run()
        except ValueError as err:
            # attpc-engine's excitation test (invariant mass) and its threshold test in
            # Reaction.calculate disagree within a hair of threshold (seen for 54Ti at
            # ~35 MeV excitation deep in the gas). That draw cannot happen: return no
            # points, so `generate` draws again and counts the rejection.
            if "threshold" not in str(err):
                raise
            return np.empty((0, 8)), np.empty(0, dtype=np.int64), np.full(3, np.nan)
        vertex = np.array(vertex, dtype=float)
        momenta = np.array(momenta, dtype=float)  # pipeline reuses its buffer
        if b.divergence_deg > 0:
            # beam direction uniform in a cone; the products turn with it and the vertex
            # moves off axis by z * tan(theta) along the tilted beam line
            theta = math.radians(b.divergence_deg) * math.sqrt(rng.uniform())
            phi = rng.uniform(0.0, 2.0 * math.pi)
            momenta[:, :3] = momenta[:, :3] @ _rotation_to(theta, phi).T
            vertex[:2] += vertex[2] * math.tan(theta) * np.array([math.cos(phi), math.sin(phi)])

        raw, labels = detector_step(
            momenta, vertex, z_numbers, a_numbers, self.engine, rng, _PRODUCTS
        )
        e = self.config.electronics
        if len(raw) == 0:
            return np.empty((0, 8)), np.empty(0, dtype=np.int64), vertex * 1000.0
        cloud = convert_to_spyral(
            raw,
            int(self.window_tb),
            int(e.micromegas_tb),
            self.engine.det_params.length,
            self.response,
            self.engine.pad_centers,
            self.engine.pad_sizes,
        )
        keep = cloud[:, 3] > e.adc_threshold
        return cloud[keep], labels[keep].astype(np.int64), vertex * 1000.0

    def noise_hits(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random hits on distinct non-beam pads at random times in the drift window."""
        if n == 0:
            return np.empty((0, 8))
        e, d = self.config.electronics, self.config.detector
        pads = rng.choice(self.noise_pads, size=n, replace=n > len(self.noise_pads))
        tb = rng.uniform(*self.noise_tb, size=n)
        amp = np.minimum(
            e.adc_threshold + rng.exponential(self.config.noise.amplitude_adc, size=n), _ADC_MAX
        )
        hits = np.empty((n, 8))
        hits[:, 0:2] = self.engine.pad_centers[pads]
        hits[:, 2] = (self.window_tb - tb) / (self.window_tb - e.micromegas_tb) * d.length_mm
        hits[:, 3] = amp
        hits[:, 4] = amp * self.integral_ratio
        hits[:, 5] = pads
        hits[:, 6] = tb
        hits[:, 7] = self.engine.pad_sizes[pads]
        return hits

    # -- one event ----------------------------------------------------------------------

    def generate(self, channel: str, rng: np.random.Generator) -> SimEvent:
        """Simulate one event of ``channel`` with its own generator.

        Reactions leaving fewer than ``min_signal_points`` points above threshold are
        redrawn (counted in ``draws``): the label must describe what the detector saw.
        For pile-up each of the two reactions must pass.

        Raises
        ------
        InputError
            No acceptable draw within ``max_draws`` (threshold too high, gain too low...).
        """
        cfg = self.config
        if channel not in CHANNELS:
            raise InputError(f"unknown channel {channel!r} (known: {', '.join(CHANNEL_NAMES)})")
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        vertex = np.full(3, np.nan)
        draws = 0
        if channel == "noise":
            lo, hi = cfg.noise.noise_event_hits
            n_noise = int(rng.integers(int(lo), int(hi) + 1))
        else:
            names = [channel]
            while True:
                draws += 1
                if draws > cfg.max_draws:
                    raise InputError(
                        f"channel {channel!r}: no event with >= {cfg.min_signal_points} points "
                        f"above threshold in {cfg.max_draws} draws; raise detector.mpgd_gain "
                        "or lower electronics.adc_threshold"
                    )
                if channel == "pileup":
                    pool = cfg.reactions.pileup_channels
                    names = [pool[int(i)] for i in rng.integers(0, len(pool), size=2)]
                parts = [self.reaction(name, rng) for name in names]
                if all(len(p[0]) >= cfg.min_signal_points for p in parts):
                    break
            vertex = parts[0][2]
            parts = [(pts, lab + PILEUP_OFFSET * k) for k, (pts, lab, _) in enumerate(parts)]
            lo, hi = cfg.noise.hits_per_event
            n_noise = int(rng.integers(int(lo), int(hi) + 1))

        noise = self.noise_hits(n_noise, rng)
        points = np.concatenate([p[0] for p in parts] + [noise])
        labels = np.concatenate(
            [p[1] for p in parts] + [np.full(len(noise), NOISE_POINT_LABEL, dtype=np.int64)]
        )
        order = np.argsort(points[:, 2], kind="stable")  # Spyral clouds are sorted in z
        return SimEvent(
            points=np.ascontiguousarray(points[order]),
            point_labels=labels[order],
            channel=channel,
            n_signal=int(len(points) - len(noise)),
            n_noise=len(noise),
            draws=max(draws, 1),
            vertex=vertex,
        )
