"""attpc-engine's particle tracking, the same numbers in less time.

attpc-engine tracks each reaction product by solving its equation of motion with SciPy's
Radau (`attpc_engine.detector.solver.generate_trajectory`). Timed on 24 events of four
channels, that solve is about a third of an event's time, and much of it is Python
overhead around 6x6 arrays: SciPy's ``lu_factor``/``lu_solve`` wrappers (input
validation and batching for every 6x6 solve) and the right-hand side's small NumPy
temporaries.

This module removes the overhead and keeps every operation that makes a number:

* `Radau` is SciPy's solver with its two LU helpers calling LAPACK's ``getrf``/``getrs``
  directly, chosen by dtype exactly as ``scipy.linalg`` chooses them, with the same
  finite check and singular-matrix warning. Same algorithm, same LAPACK calls.
* `equation_of_motion` is attpc-engine's right-hand side with the 3-vectors written as
  scalars: every product and quotient is the same IEEE operation on the same operands,
  in the same order.
* `generate_trajectory` is attpc-engine's function with those two swapped in.
* `generate_electrons` is attpc-engine's, its Fano smearing drawn in one call.
* `data_prep.sim.transport.transport_track`, the electron drift to the pads, is
  attpc-engine's with its pixels summed per pad before its dict (see that module).

So the tracks, and every event made from them, are bit for bit those of attpc-engine's
own function (tests/test_sim_shortcuts.py compares tracks of several nuclei exactly, and
whole events of five channels).
`use_fast_tracking` installs the three in attpc-engine's solver module, the one place its
``generate_point_cloud`` looks them up (`data_prep.sim.beam` looks the transport up there
too).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from scipy.integrate import Radau as _ScipyRadau
from scipy.linalg import LinAlgWarning, get_lapack_funcs


@functools.cache
def _getrf(dtype: np.dtype):
    return get_lapack_funcs(("getrf",), (np.empty((1, 1), dtype),))[0]


@functools.cache
def _getrs(lu_dtype: np.dtype, b_dtype: np.dtype):
    return get_lapack_funcs(("getrs",), (np.empty((1, 1), lu_dtype), np.empty(1, b_dtype)))[0]


def lu_factor(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.linalg.lu_factor(a, overwrite_a=True)`` for a dense 2-D float array."""
    a = np.asarray_chkfinite(a)
    lu, piv, info = _getrf(a.dtype)(a, overwrite_a=True)
    if info < 0:
        raise ValueError(f"illegal value in {-info}th argument of internal getrf (lu_factor)")
    if info > 0:
        warnings.warn(
            f"Diagonal number {info} is exactly zero. Singular matrix.", LinAlgWarning, stacklevel=2
        )
    return lu, piv


def lu_solve(lu_and_piv: tuple[np.ndarray, np.ndarray], b: np.ndarray) -> np.ndarray:
    """``scipy.linalg.lu_solve(lu_and_piv, b, overwrite_b=True)`` for a 1-D ``b``."""
    lu, piv = lu_and_piv
    b = np.asarray_chkfinite(b)
    x, info = _getrs(lu.dtype, b.dtype)(lu, piv, b, trans=0, overwrite_b=True)
    if info != 0:
        raise ValueError(f"illegal value in {-info}th argument of internal gesv|posv")
    return x


class Radau(_ScipyRadau):
    """SciPy's Radau IIA solver; its dense LU helpers call LAPACK without the wrappers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.I, np.ndarray):  # dense Jacobian (a sparse one keeps SciPy's)

            def lu(a: np.ndarray):
                self.nlu += 1
                return lu_factor(a)

            self.lu = lu
            self.solve_lu = lu_solve


def equation_of_motion(t, state, bfield, efield, target, ejectile) -> np.ndarray:
    """attpc-engine's equation of motion (`attpc_engine.detector.solver`), scalar form.

    The state is (x, y, z, gamma*vx/c, gamma*vy/c, gamma*vz/c); the particle turns in the
    solenoid's field, is pushed by the drift field and slows by its stopping power.
    """
    gv = math.sqrt(state[3] ** 2.0 + state[4] ** 2.0 + state[5] ** 2.0)
    beta = math.sqrt(gv**2.0 / (1.0 + gv**2.0))
    gamma = gv / beta
    # state[3:] / gv and unit_vector * beta * C of the original, element by element
    u0, u1, u2 = state[3] / gv, state[4] / gv, state[5] / gv
    v0, v1, v2 = u0 * beta * _C, u1 * beta * _C, u2 * beta * _C
    kinetic_energy = ejectile.mass * (gamma - 1.0)  # MeV
    charge_c = ejectile.Z * _E_CHARGE
    mass_kg = ejectile.mass * _MEV_2_KG
    q_m = charge_c / mass_kg
    deceleration = (
        target.get_dedx(ejectile, kinetic_energy) * _MEV_2_JOULE * target.density * 100.0
    ) / mass_kg
    results = np.empty(6)
    results[0] = v0
    results[1] = v1
    results[2] = v2
    results[3] = (q_m * v1 * bfield - deceleration * u0) / _C
    results[4] = (q_m * (-1.0 * v0 * bfield) - deceleration * u1) / _C
    results[5] = (q_m * efield - deceleration * u2) / _C
    return results


def generate_trajectory(vertex, momentum, nucleus, params) -> np.ndarray:
    """attpc-engine's `generate_trajectory` with `Radau` and `equation_of_motion` above:
    the (N, 6) track at attpc-engine's fixed time steps, until a stop condition."""
    from attpc_engine.detector import solver
    from scipy.integrate import solve_ivp

    initial_state = np.zeros(6)
    initial_state[:3] = vertex  # m
    initial_state[3:] = momentum[:3] / nucleus.mass  # unitless (gamma * beta)
    # attpc-engine sets these attributes in its own function; the same conditions here
    for condition, direction in (
        (solver.stop_condition, -1.0),
        (solver.forward_z_bound_condition, 1.0),
        (solver.backward_z_bound_condition, -1.0),
        (solver.rho_bound_condition, 1.0),
    ):
        condition.terminal = True
        condition.direction = direction
    track = solve_ivp(
        equation_of_motion,
        (0.0, 1.0),
        initial_state,
        method=Radau,
        events=[
            solver.stop_condition,
            solver.forward_z_bound_condition,
            solver.backward_z_bound_condition,
            solver.rho_bound_condition,
        ],
        t_eval=solver.TIME_STEPS,
        args=(params.bfield * -1.0, params.efield * -1.0, params.gas_target, nucleus),
    )
    return track.y.T


def generate_electrons(track, nucleus, params, rng) -> np.ndarray:
    """attpc-engine's `generate_electrons` with the Fano smearing drawn in one call.

    NumPy's ``normal`` with array arguments draws element by element, in order, with the
    same routine as the original's one call per track point; the counts and the random
    stream after them are the same."""
    gv = np.linalg.norm(track[:, 3:], axis=1)
    beta = np.sqrt(gv**2.0 / (1.0 + gv**2.0))
    gamma = gv / beta
    energy = nucleus.mass * (gamma - 1.0)  # MeV
    electrons = np.zeros_like(energy)
    electrons[1:] = abs(np.diff(energy))  # energy lost per step
    electrons *= 1.0e6 / params.w_value  # eV / W: electrons made
    smeared = rng.normal(electrons, np.sqrt(params.fano_factor * electrons))
    return smeared.astype(np.int64)  # truncated toward zero, as np.array(..., int64)


@functools.cache
def engine_functions() -> dict:
    """attpc-engine's own ``generate_trajectory``, ``generate_electrons`` and
    ``transport_track``, kept before `use_fast_tracking` replaces them (the reference
    the tests compare with)."""
    from attpc_engine.detector import solver

    return {
        "generate_trajectory": solver.generate_trajectory,
        "generate_electrons": solver.generate_electrons,
        "transport_track": solver.transport_track,
    }


def use_functions(which: str) -> None:
    """Put ``"ours"`` or ``"engine"`` (attpc-engine's own) tracking functions into
    attpc-engine's solver module (tests and benchmarks/sim_overhead.py switch)."""
    from attpc_engine.detector import solver

    from data_prep.sim.transport import transport_track

    ours = {
        "generate_trajectory": generate_trajectory,
        "generate_electrons": generate_electrons,
        "transport_track": transport_track,
    }
    for name, function in (ours if which == "ours" else engine_functions()).items():
        setattr(solver, name, function)


@functools.cache
def use_fast_tracking() -> bool:
    """Make attpc-engine's ``generate_point_cloud`` (and `data_prep.sim.beam`) use
    `generate_trajectory`, `generate_electrons` and `data_prep.sim.transport`'s
    ``transport_track``.

    Process-wide and idempotent, like `data_prep.sim.physics.enable_engine_cache`: every
    caller of attpc-engine's detector step in this process gets the same numbers faster.
    """
    engine_functions()
    use_functions("ours")
    return True


def _constants() -> tuple[float, float, float, float]:
    from attpc_engine.detector.constants import E_CHARGE, MEV_2_JOULE, MEV_2_KG, C

    return C, E_CHARGE, MEV_2_JOULE, MEV_2_KG


_C, _E_CHARGE, _MEV_2_JOULE, _MEV_2_KG = _constants()
