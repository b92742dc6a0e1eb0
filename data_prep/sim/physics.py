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

import copy
import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from data_prep.errors import InputError
from data_prep.sim.beam import BEAM_CORE_M, small_angle, straight_track
from data_prep.sim.channels import CHANNEL_NAMES, CHANNELS, channel_weights
from data_prep.sim.config import CHIP_LAYOUTS, NUM_TIME_BUCKETS, SimConfig
from data_prep.sim.evaporation import fusion_evaporation
from data_prep.sim.nuclei import nuclear_map, parse_isotope
from data_prep.sim.points import trace_points
from data_prep.sim.randomize import (
    CHIP_CHANNELS,
    NUM_PADS,
    DetectorFaults,
    Knobs,
    chip_pads,
    detector_faults,
    draw_knobs,
)

#: Per-point label of injected noise hits (reaction points carry attpc-engine's nucleus
#: index: 2 = ejectile, 3 = residual; the second reaction of a pile-up adds PILEUP_OFFSET).
NOISE_POINT_LABEL = -1
#: Per-point label of beam ions along the axis (`EventGenerator.beam_ions`).
BEAM_POINT_LABEL = -2
PILEUP_OFFSET = 10
#: Nuclei attpc-engine tracks for a one-step reaction: ejectile and residual.
_PRODUCTS = [2, 3]
_ADC_MAX = 4095.0
#: Added to a beam pad's id by `EventGenerator.see_through` (pad ids < 10,240 + this fit
#: the engine's int16 pad grid).
SEE_THROUGH_OFFSET = 16384
#: Refused reaction draws at one start (vertex, beam energy) before a new start is drawn.
VERTEX_TRIES = 50


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
    # the shortest beam range the randomised knobs allow: lowest energy, highest pressure
    rand = config.randomize
    worst = dataclasses.replace(
        config,
        beam=dataclasses.replace(
            b, energy_mev_u=min(b.energy_mev_u, *(rand.beam_energy_mev_u or [b.energy_mev_u]))
        ),
        gas=dataclasses.replace(
            config.gas,
            pressure_torr=config.gas.pressure_torr * max(1.0, *(rand.pressure_factor or [1.0])),
        ),
    )
    if worst.beam.energy_mev_u <= b.window_loss_mev_u:
        raise InputError("randomize.beam_energy_mev_u must stay above beam.window_loss_mev_u")
    reach = beam_range_mm(worst)
    if hi > 0.99 * reach:
        raise InputError(
            f"beam.vertex_z_mm reaches {hi:g} mm but the beam stops after {reach:.0f} mm "
            "in this gas; lower it or the pressure"
        )
    if "peaks" in (config.electronics.point_formation, *rand.point_formation):
        try:
            import spyral.trace.get_trace  # noqa: F401
        except ImportError:
            raise InputError(
                "electronics.point_formation 'peaks' uses Spyral's peak finder: install "
                "attpc-spyral (an attpc-classify dependency), or set point_formation to pad"
            ) from None
    gas = {parse_isotope(iso, "gas.components") for iso in config.gas.components}
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
    n_signal, n_noise, n_beam
        Points from reaction products / injected noise hits / beam ions on the axis.
    draws
        Reaction draws made; ``draws - 1`` were rejected for too few signal points.
    vertex
        First reaction vertex [mm] (NaN for noise-only events).
    knobs
        Detector and beam settings used (`data_prep.sim.randomize.Knobs`).
    """

    points: np.ndarray
    point_labels: np.ndarray
    channel: str
    n_signal: int
    n_noise: int
    n_beam: int
    draws: int
    vertex: np.ndarray
    knobs: Knobs = dataclasses.field(default_factory=Knobs)

    @property
    def label(self) -> int:
        return CHANNELS[self.channel].label


@dataclass
class Products:
    """What attpc-engine's detector step tracks: four-momenta [MeV], Z, A, which rows."""

    momenta: np.ndarray
    z: np.ndarray
    a: np.ndarray
    indices: list[int]
    label_offset: int  # added to the detector's row index to make the per-point label


class ExcitationCut:
    """Gaussian excitation cut at ``high`` [MeV] (attpc-engine's `ExcitationDistribution`
    protocol); when almost all of the Gaussian lies above, uniform in [0, high]."""

    def __init__(self, mean: float, sigma: float, high: float):
        self.mean, self.sigma, self.high = mean, sigma, max(high, 0.0)

    def sample(self, rng: np.random.Generator) -> float:
        if self.high < self.mean - 3.0 * self.sigma:
            return float(rng.uniform(0.0, self.high))
        while True:
            value = rng.normal(self.mean, self.sigma)
            if 0.0 <= value <= self.high:
                return float(value)


def _max_excitation(reaction, energy: float) -> float:
    """Highest residual excitation [MeV] open at projectile kinetic energy ``energy``."""
    pz = math.sqrt(energy * (energy + 2.0 * reaction.projectile.mass))
    e_cm = math.sqrt((reaction.target.mass + energy + reaction.projectile.mass) ** 2 - pz**2)
    return 0.999 * (e_cm - reaction.ejectile.mass - reaction.residual.mass)


@dataclass
class Start:
    """Where and with what a reaction starts, drawn before its channel's kinematics.

    The vertex is drawn the same way for every channel (uniform in ``vertex_z_mm``), so a
    channel cannot shift the vertex-z distribution of its class; a draw rejected later
    keeps it and redraws only the reaction.
    """

    vertex: np.ndarray  # m, [x, y, z] on the (tilted) beam line
    energy: float  # MeV, beam kinetic energy at the vertex
    rotation: np.ndarray  # 3x3, beam axis -> the event's beam direction
    entry: np.ndarray  # m, where the beam line crosses the window (z = 0)
    window_energy: float  # MeV, beam kinetic energy at the window


def grazing_angle(energy_cm: float, z1: int, a1: int, z2: int, a2: int, r0: float) -> float:
    """Classical grazing CM angle [rad]: closest approach of the Coulomb orbit = R.

    ``R = r0 (A1^1/3 + A2^1/3)`` fm, ``V_B = 1.44 Z1 Z2 / R`` MeV; the orbit of CM angle
    theta comes within ``a/2 (1 + 1/sin(theta/2))``, ``a = 1.44 Z1 Z2 / E_cm``, so
    ``sin(theta_gr/2) = V_B / (2 E_cm - V_B)``; below the barrier every angle is Rutherford.
    """
    barrier = 1.44 * z1 * z2 / (r0 * (a1 ** (1 / 3) + a2 ** (1 / 3)))
    if energy_cm <= barrier:
        return math.pi
    return 2.0 * math.asin(barrier / (2.0 * energy_cm - barrier))


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
            PolarUniform,
            Reaction,
        )

        from data_prep.sim.ode import use_fast_tracking

        enable_engine_cache()
        use_fast_tracking()  # attpc-engine's tracks, bit for bit, with less overhead
        self.config = config
        d, e, b, r = config.detector, config.electronics, config.beam, config.reactions
        self._gases: dict[float, object] = {}
        gas = self.gas(1.0)
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
        self.fixed = draw_knobs(config, None)
        self.peak_params = {
            "baseline_window_scale": 20.0,  # unused: simulated traces have no baseline
            "peak_separation": e.peak_separation,
            "peak_prominence": e.peak_prominence,
            "peak_max_width": e.peak_max_width,
        }
        self._get_response = get_response
        self._responses: dict[float, tuple[np.ndarray, float]] = {}
        self.response, self.integral_ratio = self.pulse(float(e.shaping_time_ns))
        self.pad_radius = np.hypot(*self.engine.pad_centers.T)
        beam_pads = set(BEAM_PADS_ARRAY.tolist())
        self.noise_pads = np.array(
            [p for p in range(len(self.engine.pad_centers)) if p not in beam_pads], dtype=np.int64
        )
        self.beam_pad = np.zeros(len(self.engine.pad_centers), dtype=bool)
        self.beam_pad[list(beam_pads)] = True
        self._see_through_grid: np.ndarray | None = None
        self._chips: dict[int, np.ndarray] = {}  # chip layout index -> (160, 64) pads
        self.faults = detector_faults(config, self.noise_pads)
        # noise lives where physics can: the drift volume, inside the 512 sampled buckets
        self.noise_tb = (
            float(max(0, e.micromegas_tb)),
            float(min(NUM_TIME_BUCKETS, self.window_tb)),
        )

        nmap = nuclear_map()
        self.beam_za = parse_isotope(b.nucleus, "beam.nucleus")
        self.projectile = nmap.get_data(*self.beam_za)
        self.r0_fm = float(r.carbon_radius_r0_fm)
        p_lo, p_hi = np.radians(r.proton_scattering_deg)
        self.carbon_range = tuple(np.radians(r.carbon_scattering_deg))
        polar = {
            "p_elastic": PolarUniform(math.pi - p_hi, math.pi - p_lo),
            "p_inelastic": PolarUniform(math.pi - p_hi, math.pi - p_lo),
            "c12_elastic": PolarUniform(
                math.pi - self.carbon_range[1], math.pi - self.carbon_range[0]
            ),
            "alpha_43cl": PolarUniform(0.0, math.pi),
            "alpha_54ti": PolarUniform(0.0, math.pi),
        }
        excitation = {
            "p_elastic": ExcitationGaussian(0.0, 0.0),
            "p_inelastic": ExcitationGaussian(float(r.p_inelastic_excitation_mev), 0.0),
            "c12_elastic": ExcitationGaussian(0.0, 0.0),
            "alpha_43cl": ExcitationUniform(*r.alpha_43cl_excitation_mev),
            "alpha_54ti": ExcitationGaussian(*r.alpha_54ti_excitation_mev),
        }
        # lowest excitation a channel can be drawn with: below its threshold it is closed
        self.min_excitation = {
            "p_inelastic": float(r.p_inelastic_excitation_mev),
            "alpha_43cl": float(r.alpha_43cl_excitation_mev[0]),
            "alpha_54ti": 0.0,  # Q = +13.6 MeV: open at every depth (Ex redrawn by the engine)
        }
        self.pipelines = {}
        for name, channel in CHANNELS.items():
            if name not in polar:
                continue
            reaction = Reaction(
                nmap.get_data(*parse_isotope(channel.target)),
                self.projectile,
                nmap.get_data(*parse_isotope(channel.ejectile)),
            )
            pipeline = KinematicsPipeline(
                [reaction],
                [excitation[name]],
                [polar[name]],
                beam_energy=beam_energy_mev(config),
                target_material=None,  # the vertex and its beam energy come from `start`
            )
            self.pipelines[name] = (
                pipeline,
                pipeline.get_proton_numbers(),
                pipeline.get_mass_numbers(),
            )
        self.carbon = nmap.get_data(6, 12)
        weights = channel_weights(config.mix)
        self.weights = {k: w for k, w in weights.items() if w > 0}

    # -- detector and beam settings -----------------------------------------------------

    def gas(self, pressure_factor: float):
        """The gas at ``pressure_factor`` x the configured pressure (cached, 14 ms to build)."""
        key = round(float(pressure_factor), 4)
        if key not in self._gases:
            if len(self._gases) > 512:
                self._gases.clear()
            pressure = self.config.gas.pressure_torr * key
            self._gases[key] = make_gas(
                dataclasses.replace(
                    self.config, gas=dataclasses.replace(self.config.gas, pressure_torr=pressure)
                )
            )
        return self._gases[key]

    def pulse(self, shaping_time_ns: float) -> tuple[np.ndarray, float]:
        """attpc-engine's GET response at ``shaping_time_ns`` and its integral/amplitude
        ratio (a noise hit must look like a real point: same pulse shape, so the same
        ratio); one per setting, cached (a run file draws one of a few settings)."""
        key = float(shaping_time_ns)
        if key not in self._responses:
            engine = copy.copy(self.engine)
            engine.elec_params = dataclasses.replace(self.engine.elec_params, shaping_time=key)
            response = self._get_response(engine).copy()
            self._responses[key] = (response, float(response.sum() / response.max()))
        return self._responses[key]

    def engine_for(self, knobs: Knobs):
        """attpc-engine's `Config` with the knobs' gain, field, diffusion and gas."""
        f = self.fixed
        if (knobs.gain_factor, knobs.field_factor, knobs.diffusion_v, knobs.pressure_factor) == (
            f.gain_factor,
            f.field_factor,
            f.diffusion_v,
            f.pressure_factor,
        ):
            return self.engine
        d = self.config.detector
        engine = copy.copy(self.engine)  # pad maps shared, parameters replaced
        engine.det_params = dataclasses.replace(
            self.engine.det_params,
            mpgd_gain=max(1, round(d.mpgd_gain * knobs.gain_factor)),
            bfield=float(d.magnetic_field_t * knobs.field_factor),
            diffusion=float(knobs.diffusion_v),
            gas_target=self.gas(knobs.pressure_factor),
        )
        return engine

    def see_through(self, engine):
        """``engine`` whose transport keeps the charge that lands on beam pads, under pad ids
        offset by `SEE_THROUGH_OFFSET` (`form` maps them back). attpc-engine drops that
        charge where the electrons are made; with a drift shear (`tilt_deg`) they land
        elsewhere, so the drop must wait for the shear: an ion on the axis then shows as a
        line leaving the axis with the drift length, as the beam does in real data."""
        if self._see_through_grid is None:
            grid = self.engine.pad_grid.copy()  # int16, as the engine's numba code expects
            on_beam = self.beam_pad[np.clip(grid, 0, None)] & (grid >= 0)
            grid[on_beam] += SEE_THROUGH_OFFSET
            self._see_through_grid = grid
        seen = copy.copy(engine)  # parameters shared, the grid replaced
        seen.pad_grid = self._see_through_grid
        return seen

    # -- kinematics ---------------------------------------------------------------------

    def start(self, rng: np.random.Generator, knobs: Knobs) -> Start:
        """Draw the beam energy, vertex and beam direction of one reaction."""
        b = self.config.beam
        energy = (knobs.beam_energy_mev_u - b.window_loss_mev_u) * self.beam_za[1]
        if b.energy_spread > 0:
            energy *= max(1.0 + b.energy_spread * rng.standard_normal(), 0.01)
        rho = abs(rng.normal(0.0, knobs.spot_sigma_mm / 1000.0))
        angle = rng.uniform(0.0, 2.0 * math.pi)
        z = rng.uniform(b.vertex_z_mm[0] / 1000.0, b.vertex_z_mm[1] / 1000.0)
        offset = np.asarray(b.spot_offset_mm, dtype=float) / 1000.0
        vertex = np.array([rho * math.cos(angle) + offset[0], rho * math.sin(angle) + offset[1], z])
        entry = np.array([vertex[0], vertex[1], 0.0])
        rotation = np.eye(3)
        if knobs.divergence_deg > 0:
            # beam direction uniform in a cone; the products turn with it and the vertex
            # moves off axis by z * tan(theta) along the tilted beam line
            theta = math.radians(knobs.divergence_deg) * math.sqrt(rng.uniform())
            phi = rng.uniform(0.0, 2.0 * math.pi)
            rotation = _rotation_to(theta, phi)
            vertex[:2] += z * math.tan(theta) * np.array([math.cos(phi), math.sin(phi)])
        gas = self.gas(knobs.pressure_factor)
        loss = float(gas.get_energy_loss(self.projectile, energy, np.array([z]))[0])
        return Start(vertex, max(energy - loss, 0.0), rotation, entry, energy)

    def is_open(self, name: str, energy: float) -> bool:
        """Whether channel ``name`` can happen at beam energy ``energy`` [MeV]."""
        if name not in self.min_excitation:
            return energy > 0  # elastic and fusion (Q > 0) are open at every energy
        reaction = self.pipelines[name][0].reaction
        return bool(reaction.is_excitation_allowed(energy, self.min_excitation[name]))

    def choose(self, channel: str, start: Start, rng: np.random.Generator) -> str:
        """``channel`` if open at the start's energy, else an open channel of its class.

        Redrawing the vertex instead (attpc-engine's way) would push closed channels
        upstream and make vertex z tell the class; the channel share changes with depth
        instead, as cross sections do.
        """
        if channel not in self.min_excitation or self.is_open(channel, start.energy):
            return channel
        label = CHANNELS[channel].label
        names = [
            n
            for n in self.weights
            if CHANNELS[n].label == label
            and (n in self.pipelines or n == "fusion_evap")
            and self.is_open(n, start.energy)
        ]
        if not names:
            return channel  # refused in `kinematics`: `signal` then draws a new start
        w = np.array([self.weights[n] for n in names])
        return names[int(rng.choice(len(names), p=w / w.sum()))]

    def kinematics(self, name: str, start: Start, rng: np.random.Generator) -> Products | None:
        """The products of one reaction at ``start``; None if the draw is refused."""
        from attpc_engine.kinematics.pipeline import PipelineError

        if name == "fusion_evap":
            return self.evaporation(start, rng)
        pipeline, z_numbers, a_numbers = self.pipelines[name]
        pipeline.rng = rng
        pipeline.beam_energy = start.energy
        if name == "c12_elastic":
            pipeline.polar_dists[0] = self.carbon_polar(start.energy, pipeline)
        if name == "alpha_54ti":
            # the broad 54Ti* excitation, cut at what this beam energy can make: deep in
            # the gas attpc-engine's own redraws would almost never find an allowed one
            mean, sigma = self.config.reactions.alpha_54ti_excitation_mev
            pipeline.excitations[0] = ExcitationCut(
                mean, sigma, _max_excitation(pipeline.reaction, start.energy)
            )
        try:
            _, momenta = pipeline.run()
        except (ValueError, PipelineError) as err:
            # attpc-engine's excitation test (invariant mass) and its threshold test in
            # Reaction.calculate disagree within a hair of threshold (seen for 54Ti at
            # ~35 MeV excitation deep in the gas), or no excitation draw was allowed:
            # that draw cannot happen, `generate` draws again and counts the rejection.
            if isinstance(err, ValueError) and "threshold" not in str(err):
                raise
            return None
        momenta = np.array(momenta, dtype=float)  # pipeline reuses its buffer
        momenta[:, :3] = momenta[:, :3] @ start.rotation.T
        return Products(momenta, z_numbers, a_numbers, _PRODUCTS, 0)

    def evaporation(self, start: Start, rng: np.random.Generator) -> Products | None:
        """A fusion-evaporation event with at least one charged light particle (p or α).

        Events evaporating neutrons only leave the residue near the beam axis and are not
        the proton-like background this channel is for; they are redrawn at the same start.
        """
        for _ in range(VERTEX_TRIES):
            momenta, z, a = fusion_evaporation(
                self.projectile,
                self.carbon,
                start.energy,
                rng,
                self.config.reactions.fusion_max_particles,
            )
            if np.any(z[:-1] > 0):
                momenta[:, :3] = momenta[:, :3] @ start.rotation.T
                # labels 2, 3, ... as for two-body (2 = first particle); the residue is last
                return Products(momenta, z, a, list(range(len(z))), 2)
        return None

    def carbon_polar(self, energy: float, pipeline) -> object:
        """Carbon CM angles: Rutherford (or uniform) from the configured minimum up to the
        grazing angle at this beam energy (all angles below the barrier)."""
        from attpc_engine.kinematics import PolarUniform

        lo, hi = self.carbon_range
        if self.config.reactions.carbon_grazing:
            target = pipeline.reaction.target
            e_cm = energy * target.mass / (target.mass + self.projectile.mass)
            za = (self.beam_za[0], self.beam_za[1], target.Z, target.A)
            hi = min(hi, grazing_angle(e_cm, *za, self.r0_fm))
        hi = max(hi, lo + 1e-6)
        if self.config.reactions.carbon_rutherford:
            return PolarRutherford(lo, hi)
        return PolarUniform(math.pi - hi, math.pi - lo)

    # -- detector -----------------------------------------------------------------------

    def detect(
        self,
        products: Products,
        start: Start,
        knobs: Knobs,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """attpc-engine's detector + GET response for the products; points above threshold."""
        from attpc_engine.detector.simulator import simulate as detector_step

        engine = self.engine_for(knobs)
        if knobs.tilt_deg != 0:
            engine = self.see_through(engine)
        raw, labels = detector_step(
            products.momenta, start.vertex, products.z, products.a, engine, rng, products.indices
        )
        return self.form(raw, labels + products.label_offset, engine, knobs, rng)

    def visible_points(
        self,
        candidate: tuple[np.ndarray, np.ndarray],
        products: Products,
        start: Start,
        knobs: Knobs,
    ) -> int:
        """Points of the reaction's light products (not the heavy residue, which follows
        the beam) at least ``min_signal_radius_mm`` from the reacting ion's line at their
        depth, the drift shear included: what shows outside the beam's own charge."""
        points, labels = candidate
        radius = self.config.min_signal_radius_mm
        if radius <= 0 or len(points) == 0:
            return len(points)
        heaviest = max(products.indices, key=lambda i: products.a[i])
        light = labels != heaviest + products.label_offset
        direction = start.rotation @ np.array([0.0, 0.0, 1.0])
        depth = points[:, 2]
        line = start.entry[:2] * 1000.0 + np.outer(depth / direction[2], direction[:2])
        if knobs.tilt_deg != 0:  # the shear of `shear`: drift length L - z
            drift = self.config.detector.length_mm - depth
            line = line + self.shear_offset(drift, knobs.tilt_deg)
        far = np.hypot(*(points[:, :2] - line).T) >= radius
        return int(np.sum(light & far))

    def form(
        self,
        raw: np.ndarray,
        labels: np.ndarray,
        engine,
        knobs: Knobs,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Charge per (pad, bucket) -> Spyral point rows by `electronics.point_formation`,
        above threshold, on pads that read out."""
        from attpc_engine.detector.writer import convert_to_spyral

        if len(raw) == 0:
            return np.empty((0, 8)), np.empty(0, dtype=np.int64)
        if knobs.tilt_deg != 0:
            raw = raw.copy()  # beam-pad charge kept by `see_through`: its real pad ids
            raw[raw[:, 0] >= SEE_THROUGH_OFFSET, 0] -= SEE_THROUGH_OFFSET
            raw, labels = self.shear(raw, labels, knobs.tilt_deg)
            if len(raw) == 0:
                return np.empty((0, 8)), np.empty(0, dtype=np.int64)
        if knobs.pad_gain_spread > 0:
            raw = raw.copy()  # each pad's own gain (lognormal, fixed for the detector)
            raw[:, 2] *= self.faults_of(knobs).pad_gain[raw[:, 0].astype(np.int64)]
        e = self.config.electronics
        response = self.pulse(knobs.shaping_time_ns)[0]
        if knobs.point_mode == "bucket":
            cloud = convert_to_spyral(
                raw,
                int(self.window_tb),
                int(e.micromegas_tb),
                engine.det_params.length,
                response,
                engine.pad_centers,
                engine.pad_sizes,
            )
        else:
            rows, labels = trace_points(
                raw,
                labels,
                response,
                mode=knobs.point_mode,
                threshold=knobs.adc_threshold,
                spyral=self.peak_params,
                rng=rng,
            )
            cloud = self.spyral_rows(
                rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3]
            )
        keep = (cloud[:, 3] > knobs.adc_threshold) & self.readable(cloud[:, 5], knobs)
        return cloud[keep], labels[keep].astype(np.int64)

    def shear(
        self, raw: np.ndarray, labels: np.ndarray, tilt_deg: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Move each charge to the pad it reaches when the drift is ``tilt_deg`` off the
        detector axis: ``drift length x tan(tilt)`` along ``tilt_azimuth_deg``. Charge
        pushed off the pad plane or onto a beam pad is lost."""
        d, e = self.config.detector, self.config.electronics
        mm_per_tb = d.length_mm / float(self.window_tb - e.micromegas_tb)
        drift = np.clip(raw[:, 1] - e.micromegas_tb, 0.0, None) * mm_per_tb
        offset = self.shear_offset(drift, tilt_deg)
        xy = self.engine.pad_centers[raw[:, 0].astype(np.int64)]
        x = np.floor(xy[:, 0] + offset[:, 0])
        y = np.floor(xy[:, 1] + offset[:, 1])
        engine = self.engine  # the real pad map (not `see_through`'s)
        low, high, step = (float(v) for v in engine.pad_grid_edges)
        on_grid = (x >= low) & (x < high) & (y >= low) & (y < high)
        ix = ((np.where(on_grid, x, low) - low) / step).astype(np.int64)
        iy = ((np.where(on_grid, y, low) - low) / step).astype(np.int64)
        pads = engine.pad_grid[ix, iy].astype(np.int64)
        keep = on_grid & (pads >= 0)
        keep[keep] &= ~self.beam_pad[pads[keep]]
        moved = raw[keep].copy()
        moved[:, 0] = pads[keep]
        return moved, labels[keep]

    def shear_offset(self, drift_mm: np.ndarray, tilt_deg: float) -> np.ndarray:
        """``(N, 2)`` mm: how far charge that drifts ``drift_mm`` lands from where it was
        made when the drift is ``tilt_deg`` off the detector axis (along
        ``tilt_azimuth_deg``)."""
        azimuth = math.radians(self.config.detector.tilt_azimuth_deg)
        shift = np.asarray(drift_mm, dtype=np.float64) * math.tan(math.radians(tilt_deg))
        return np.outer(shift, [math.cos(azimuth), math.sin(azimuth)])

    def spyral_rows(
        self, pads: np.ndarray, tb: np.ndarray, amplitude: np.ndarray, integral: np.ndarray
    ) -> np.ndarray:
        """``(N, 8)`` Spyral point rows (x, y, z, amplitude, integral, pad, tb, scale), z
        from the time bucket between the micromegas and window edges as attpc-engine's
        `convert_to_spyral` computes it."""
        e, d = self.config.electronics, self.config.detector
        rows = np.empty((len(pads), 8))
        rows[:, 0:2] = self.engine.pad_centers[pads]
        rows[:, 2] = (self.window_tb - tb) / (self.window_tb - e.micromegas_tb) * d.length_mm
        rows[:, 3] = amplitude
        rows[:, 4] = integral
        rows[:, 5] = pads
        rows[:, 6] = tb
        rows[:, 7] = self.engine.pad_sizes[pads]
        return rows

    def beam_ions(
        self, rng: np.random.Generator, knobs: Knobs, start: Start | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points of the beam along the axis (`data_prep.sim.beam`): the reacting ion from
        the window to ``start``'s vertex (no ``start``, a noise event: the ion that
        triggered, unreacted, through the whole drift length), and ``extra_ions`` other
        ions of the readout window, a share of them scattered by a small angle somewhere
        on the way."""
        axis = self.config.beam_axis
        engine = self.engine_for(knobs)
        core_m = BEAM_CORE_M
        if knobs.tilt_deg != 0:  # the shear moves charge off the beam pads: transport it all
            engine, core_m = self.see_through(engine), 0.0
        gas = self.gas(knobs.pressure_factor)
        segments: list[tuple[np.ndarray, np.ndarray, float, float, float]] = []
        length = self.config.detector.length_mm / 1000.0
        if axis.incoming and (start is not None or axis.trigger_ion):
            # Every trigger comes with a beam ion, so every class shows one: a noise event
            # without it made "visible beam" mean "a reaction" (REAL_DATA.md: a beam region
            # that only some classes populate is a shortcut), and its beam-like clusters
            # were called carbon.
            ion = start if start is not None else self.start(rng, knobs)
            end = start.vertex[2] if start is not None else length
            direction = ion.rotation @ np.array([0.0, 0.0, 1.0])
            segments.append((ion.entry, direction, ion.window_energy, end, 0.0))
        lo, hi = axis.extra_ions
        span = float(self.window_tb - self.config.electronics.micromegas_tb)
        n_ions = int(rng.integers(int(lo), int(hi) + 1))  # drawn always: same stream
        if knobs.extra_ions >= 0:
            n_ions = knobs.extra_ions
        for _ in range(n_ions):
            ion = self.start(rng, knobs)  # its own spot, direction and energy
            direction = ion.rotation @ np.array([0.0, 0.0, 1.0])
            shift = float(rng.uniform(-span, span))  # arrived before or after the trigger
            if rng.uniform() < knobs.scattered_fraction:
                z_s = float(rng.uniform(0.0, length))
                point = ion.entry + direction * z_s / direction[2]
                theta = small_angle(rng, *axis.scattering_deg)
                turned = _rotation_to(theta, rng.uniform(0.0, 2.0 * math.pi)) @ direction
                path = np.array([np.linalg.norm(point - ion.entry)])
                energy = float(
                    ion.window_energy
                    - gas.get_energy_loss(self.projectile, ion.window_energy, path)[0]
                )
                segments.append((ion.entry, direction, ion.window_energy, z_s, shift))
                if turned[2] > 0.05:
                    segments.append((point, turned, energy, length, shift))
            else:
                segments.append((ion.entry, direction, ion.window_energy, length, shift))
        raws = [
            straight_track(
                engine,
                gas,
                self.projectile,
                entry,
                direction,
                energy,
                z_end,
                shift,
                rng,
                BEAM_POINT_LABEL,
                core_m,
            )
            for entry, direction, energy, z_end, shift in segments
        ]
        if not raws:
            return np.empty((0, 8)), np.empty(0, dtype=np.int64)
        raw = np.concatenate([r[0] for r in raws])
        labels = np.concatenate([r[1] for r in raws]).astype(np.int64)
        # an ion off the trigger time drifts its charge in or out of the window: keep what
        # falls between micromegas and window, where the z of a point means a place
        inside = (raw[:, 1] >= self.noise_tb[0]) & (raw[:, 1] < self.noise_tb[1])
        return self.form(raw[inside], labels[inside], engine, knobs, rng)

    def chips(self, layout: int) -> np.ndarray:
        """(160, 64) the pads of each chip for the layout index ``layout`` (cached)."""
        if layout not in self._chips:
            centres = np.asarray(self.engine.pad_centers)[:, :2]
            self._chips[layout] = chip_pads(CHIP_LAYOUTS[layout], centres)
        return self._chips[layout]

    def faults_of(self, knobs: Knobs) -> DetectorFaults:
        """The detector of this event: its run file's own faults, or the fixed detector."""
        return knobs.faults if knobs.faults is not None else self.faults

    def readable(self, pads: np.ndarray, knobs: Knobs) -> np.ndarray:
        """Mask of points on pads that read out: not dead, outside the beam-pad radius."""
        pads = pads.astype(np.int64)
        dead_chip = self.faults_of(knobs).dead_mask
        ok = (self.pad_radius[pads] >= knobs.beam_pad_radius_mm) & ~dead_chip[pads]
        if len(knobs.dead_pads):
            ok &= ~np.isin(pads, knobs.dead_pads)
        return ok

    def reaction(
        self, name: str, rng: np.random.Generator, knobs: Knobs | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kinematics + detector for one reaction of ``name`` at a new start (one draw).

        Returns
        -------
        points, labels, vertex
            ``(N, 8)`` Spyral rows, ``(N,)`` nucleus index, vertex [mm].
        """
        knobs = knobs or self.fixed
        start = self.start(rng, knobs)
        name = self.choose(name, start, rng)
        products = self.kinematics(name, start, rng)
        if products is None:
            return np.empty((0, 8)), np.empty(0, dtype=np.int64), start.vertex * 1000.0
        points, labels = self.detect(products, start, knobs, rng)
        return points, labels, start.vertex * 1000.0

    def noise_hits(
        self, n: int, rng: np.random.Generator, knobs: Knobs | None = None
    ) -> np.ndarray:
        """``n`` random hits on distinct non-beam pads at random times in the drift window."""
        if n == 0:
            return np.empty((0, 8))
        pads = rng.choice(self.noise_pads, size=n, replace=n > len(self.noise_pads))
        return self.hits(pads, rng.uniform(*self.noise_tb, size=n), rng, knobs or self.fixed)

    def hits(
        self, pads: np.ndarray, tb: np.ndarray, rng: np.random.Generator, knobs: Knobs
    ) -> np.ndarray:
        """Noise points on ``pads`` at ``tb``: amplitude threshold + Exp(amplitude_adc), the
        GET pulse's integral; beam pads, dead pads and buckets outside the window dropped."""
        amp = np.minimum(
            knobs.adc_threshold + rng.exponential(self.config.noise.amplitude_adc, size=len(pads)),
            _ADC_MAX,
        )
        rows = self.spyral_rows(pads, tb, amp, amp * self.pulse(knobs.shaping_time_ns)[1])
        inside = (tb >= self.noise_tb[0]) & (tb < self.noise_tb[1]) & ~self.beam_pad[pads]
        return rows[inside & self.readable(pads, knobs)]

    def structured_noise(self, rng: np.random.Generator, knobs: Knobs) -> np.ndarray:
        """Noise with structure: AGET chips whose 64 channels fire at one time, hot pads
        in every event, and time-bunched bursts on random pads."""
        n = self.config.noise
        hot = self.faults_of(knobs).hot_pads
        parts = [self.hits(hot, rng.uniform(*self.noise_tb, size=len(hot)), rng, knobs)]
        chips = self.chips(knobs.chip_layout)
        for _ in range(int(rng.poisson(knobs.chip_rate))):
            pads = chips[int(rng.integers(NUM_PADS // CHIP_CHANNELS))]
            t0 = rng.uniform(*self.noise_tb)
            parts.append(self.hits(pads, t0 + rng.normal(0.0, 1.0, size=len(pads)), rng, knobs))
        for _ in range(int(rng.poisson(knobs.burst_rate))):
            size = int(rng.integers(int(n.burst_hits[0]), int(n.burst_hits[1]) + 1))
            pads = rng.choice(self.noise_pads, size=size, replace=False)
            t0 = rng.uniform(*self.noise_tb)
            parts.append(self.hits(pads, t0 + rng.normal(0.0, 3.0, size=size), rng, knobs))
        return np.concatenate(parts)

    # -- one event ----------------------------------------------------------------------

    def signal(
        self, channel: str, rng: np.random.Generator, knobs: Knobs, *, detect: bool = True
    ) -> tuple[str, list[tuple[np.ndarray, np.ndarray]], Start, int]:
        """The reaction part of an event: (channel used, [(points, labels)], first start,
        draws).

        A reaction leaving fewer than ``min_signal_points`` points is drawn again at the
        same start (vertex, beam energy, direction); after `VERTEX_TRIES` refused draws at
        one start a new start is drawn (a start that cannot show the channel at all).
        ``detect=False`` stops after the kinematics (no points): the vertex stage alone,
        cheap enough to sample thousands of events in a test.
        """
        cfg = self.config
        draws = 0
        names = [channel]
        if channel == "pileup":
            pool = cfg.reactions.pileup_channels
            names = [pool[int(i)] for i in rng.integers(0, len(pool), size=2)]
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        used: list[str] = []
        starts: list[Start] = []
        # each reaction of the event (two for pile-up) is accepted on its own
        for wanted in names:
            part = None
            while part is None:
                start = self.start(rng, knobs)
                name = self.choose(wanted, start, rng)
                for _ in range(VERTEX_TRIES):
                    draws += 1
                    if draws > cfg.max_draws:
                        raise InputError(
                            f"channel {channel!r}: no event with >= {cfg.min_signal_points} "
                            f"points above threshold >= {cfg.min_signal_radius_mm:g} mm from "
                            f"the beam in {cfg.max_draws} draws; raise detector.mpgd_gain or "
                            "lower electronics.adc_threshold or min_signal_radius_mm"
                        )
                    products = self.kinematics(name, start, rng)
                    if products is None:
                        continue
                    if not detect:
                        part = (np.empty((0, 8)), np.empty(0, dtype=np.int64))
                        break
                    candidate = self.detect(products, start, knobs, rng)
                    if (
                        self.visible_points(candidate, products, start, knobs)
                        >= cfg.min_signal_points
                    ):
                        part = candidate
                        break
            parts.append(part)
            used.append(name)
            starts.append(start)
        kept = "pileup" if channel == "pileup" else used[0]
        return kept, parts, starts[0], draws

    def generate(
        self, channel: str, rng: np.random.Generator, knobs: Knobs | None = None
    ) -> SimEvent:
        """Simulate one event of ``channel`` with its own generator.

        Reactions leaving fewer than ``min_signal_points`` points above threshold are
        redrawn (counted in ``draws``): the label must describe what the detector saw.
        For pile-up each of the two reactions must pass. A channel closed at the drawn
        vertex is replaced by an open channel of the same class (`choose`).

        Raises
        ------
        InputError
            No acceptable draw within ``max_draws`` (threshold too high, gain too low...).
        """
        cfg = self.config
        knobs = knobs or self.fixed
        if channel not in CHANNELS:
            raise InputError(f"unknown channel {channel!r} (known: {', '.join(CHANNEL_NAMES)})")
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        vertex = np.full(3, np.nan)
        draws = 1
        start = None
        if channel == "noise":
            lo, hi = cfg.noise.noise_event_hits
            n_noise = int(rng.integers(int(lo), int(hi) + 1))
        else:
            channel, parts, start, draws = self.signal(channel, rng, knobs)
            vertex = start.vertex * 1000.0
            parts = [(pts, lab + PILEUP_OFFSET * k) for k, (pts, lab) in enumerate(parts)]
            lo, hi = cfg.noise.hits_per_event
            n_noise = int(rng.integers(int(lo), int(hi) + 1))
            if knobs.noise_hits >= 0:
                n_noise = knobs.noise_hits

        beam = self.beam_ions(rng, knobs, start)
        noise = np.concatenate(
            [self.noise_hits(n_noise, rng, knobs), self.structured_noise(rng, knobs)]
        )
        points = np.concatenate([p[0] for p in parts] + [beam[0], noise])
        labels = np.concatenate(
            [p[1] for p in parts]
            + [beam[1], np.full(len(noise), NOISE_POINT_LABEL, dtype=np.int64)]
        )
        if (knobs.z_scale, knobs.z_offset_mm) != (1.0, 0.0):
            # z calibration: the data's z is computed with a drift velocity and offset off
            # by a few per cent; the time bucket (column 6) is what was measured
            points[:, 2] = knobs.z_scale * points[:, 2] + knobs.z_offset_mm
        order = np.argsort(points[:, 2], kind="stable")  # Spyral clouds are sorted in z
        return SimEvent(
            points=np.ascontiguousarray(points[order]),
            point_labels=labels[order],
            channel=channel,
            n_signal=int(len(points) - len(noise) - len(beam[0])),
            n_noise=len(noise),
            n_beam=len(beam[0]),
            draws=max(draws, 1),
            vertex=vertex,
            knobs=knobs,
        )
