"""Beam ions along the axis: the reacting ion's own track and other ions in the window.

Real events show the beam along the axis, the vertex on it, in every class. Most of the
beam's charge lands on the beam pads (read out as nothing); what leaks past them -- ions
off axis (spot offset, divergence) or scattered by a few degrees on the way -- must be
in every class, or "a dense track just outside the beam pads" tells carbon (whose
forward 46Ar residual scatters up to ~15 deg) from the rest.

A beam ion moves in a straight line here (its radius of curvature in 1.68 T is ~0.4 m
for the full momentum and ~8 mm for 1 deg of transverse momentum: a helix narrower than
the beam pads); its energy loss comes from the gas (pycatima via spyral-utils) and its
charge is transported to the pads by attpc-engine's `transport_track` (diffusion, beam
pads dropped; `data_prep.sim.transport`'s bit-for-bit copy once installed), so a beam
point is made like any other.
"""

from __future__ import annotations

import math

import numpy as np

from data_prep.sim.config import NUM_TIME_BUCKETS

#: Path step of a beam track [m]: 4 mm, about twice the diffusion width after 1 m.
STEP_M = 0.004
#: m: charge whose whole diffusion square (+-3 sigma) lies this close to the axis falls on
#: the beam pads (non-beam pad centres start at 20.2 mm; small pads are ~5 mm): its
#: transport is skipped, which gives the same points at a fraction of the cost.
BEAM_CORE_M = 0.012


def straight_track(
    engine,
    gas,
    ion,
    entry: np.ndarray,
    direction: np.ndarray,
    energy: float,
    z_end: float,
    tb_shift: float,
    rng: np.random.Generator,
    label: int,
    core_m: float = BEAM_CORE_M,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``[pad, tb, electrons]`` points of an ion on a straight line.

    Parameters
    ----------
    engine
        attpc-engine `Config` (gain, diffusion, pad maps, drift velocity).
    gas, ion
        spyral-utils `GasTarget` and `NucleusData` of the beam.
    entry, direction
        Start point [m] and unit direction (``direction[2] > 0``).
    energy
        Kinetic energy at ``entry`` [MeV].
    z_end
        z [m] where the track ends (the vertex, or the end of the drift volume).
    tb_shift
        Added to every time bucket (an ion arriving before or after the trigger).
    core_m
        Charge that cannot reach past this radius is not transported (`BEAM_CORE_M`);
        0 when the beam pads are seen through (a drift shear moves charge off them later).
    """
    from attpc_engine.detector import solver
    from attpc_engine.detector.simulator import dict_to_points
    from numba.core import types
    from numba.typed import Dict

    length = (z_end - entry[2]) / direction[2]
    if length <= STEP_M or energy <= 0:
        return np.empty((0, 3)), np.empty(0, dtype=np.int64)
    path = np.arange(STEP_M, length, STEP_M)
    # energy loss on a coarse grid (pycatima's call per distance dominated the cost),
    # interpolated: dE/dx of a 4 MeV/u ion changes slowly over 4 cm
    coarse = np.linspace(0.0, length, max(2, int(length / 0.04) + 2))
    lost = gas.get_energy_loss(ion, energy, coarse[1:])
    lost = np.concatenate([[0.0], np.nan_to_num(lost, nan=energy)])
    remaining = np.clip(energy - np.interp(path, coarse, lost), 0.0, None)
    deposit = -np.diff(np.concatenate([[energy], remaining]))
    moving = deposit > 0
    path, deposit = path[moving], deposit[moving]
    det = engine.det_params
    mean = deposit * 1.0e6 / det.w_value
    electrons = rng.normal(mean, np.sqrt(det.fano_factor * mean)).astype(np.int64)
    electrons = np.clip(electrons, 0, None) * int(det.mpgd_gain)
    track = np.zeros((len(path), 6))
    track[:, :3] = entry + path[:, None] * direction
    track[:, 2] = (det.length - track[:, 2]) / engine.drift_velocity + (
        engine.elec_params.micromegas_edge + tb_shift
    )
    # engine's sigma_t = sqrt(2 D dv t / E) [m]; the transport spreads over +-3 sigma
    drift_tb = np.clip(track[:, 2] - engine.elec_params.micromegas_edge, 0.0, None)
    sigma = np.sqrt(2.0 * det.diffusion * engine.drift_velocity * drift_tb / det.efield)
    reach = np.hypot(track[:, 0], track[:, 1]) + 3.0 * math.sqrt(2.0) * sigma
    # Only charge that arrives inside the sampled buckets is transported: it is all that
    # could be kept, and attpc-engine's transport needs a time >= 0. Before the trigger its
    # sigma_t = sqrt(... t) is NaN, a NaN pad-grid index reads outside the grid, and a
    # stray point from that read changes how many draws the event's generator makes
    # (one seed, different events from one process to the next).
    kept = (reach >= core_m) & (track[:, 2] >= 0.0) & (track[:, 2] < NUM_TIME_BUCKETS)
    track, electrons = track[kept], electrons[kept]
    points = Dict.empty(key_type=types.int64, value_type=types.Tuple([types.int64, types.int64]))
    # the transport `generate_point_cloud` uses: attpc-engine's, or once
    # `data_prep.sim.ode.use_fast_tracking` ran, `data_prep.sim.transport`'s (same numbers)
    solver.transport_track(
        engine.pad_grid,
        engine.pad_grid_edges,
        det.diffusion,
        det.efield,
        engine.drift_velocity,
        track,
        electrons,
        points,
        label,
    )
    raw, labels = dict_to_points(points)
    raw[:, 1] += rng.uniform(0.0, 1.0, size=len(raw))  # as attpc-engine's simulate
    inside = (raw[:, 1] >= 0) & (raw[:, 1] < NUM_TIME_BUCKETS)
    return raw[inside], labels[inside]


def small_angle(rng: np.random.Generator, lo_deg: float, hi_deg: float) -> float:
    """Lab scattering angle [rad] with the small-angle Rutherford density ~ theta^-3."""
    a, b = math.radians(lo_deg) ** -2, math.radians(hi_deg) ** -2
    return (a - rng.uniform() * (a - b)) ** -0.5
