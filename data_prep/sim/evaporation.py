"""Fusion-evaporation: the compound nucleus of beam + target cools by emitting n, p and α.

46Ar + 12C fuses to 58Cr* with E* = E_cm + Q (Q = +22 MeV, E* ~ 60 MeV at the window),
which evaporates several particles: protons and α that make proton-like tracks from a
vertex on the beam axis (the real background of the proton class), neutrons (invisible)
and a heavy evaporation residue flying forward. A statistical model kept small:

- competition: width ``Gamma_x ~ (2 s_x + 1) m_x T^2 exp(-(S_x + B_x) / T)`` with
  temperature ``T = sqrt(E* / a)``, level density parameter ``a = A / 8`` MeV^-1,
  separation energies ``S_x`` from the AME 2020 masses and Coulomb barriers
  ``B_x = 1.44 Z_x Z_d / (r0 (A_x^1/3 + A_d^1/3))`` (r0 = 1.5 fm) (Weisskopf);
- kinetic energy in the emitter's frame ``B_x + Gamma(2, T)`` (a Maxwellian surface
  spectrum above the barrier), capped by the energy available; isotropic;
- the emitter recoils (four-momenta conserved, relativistic boosts); emission stops when
  no particle can leave (the rest goes to gammas) or after ``max_particles``.
"""

from __future__ import annotations

import math

import numpy as np

from data_prep.sim.nuclei import nuclear_map

#: Evaporated particles: (name, Z, A, spin degeneracy 2s+1).
PARTICLES = (("n", 0, 1, 2), ("p", 1, 1, 2), ("alpha", 2, 4, 1))
_R0_FM = 1.5


def _barrier(z1: int, a1: int, z2: int, a2: int) -> float:
    if z1 == 0:
        return 0.0
    return 1.44 * z1 * z2 / (_R0_FM * (a1 ** (1 / 3) + a2 ** (1 / 3)))


def _boost(four: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Lorentz boost of ``[px, py, pz, E]`` by velocity ``beta`` (rest frame -> lab)."""
    b2 = float(beta @ beta)
    if b2 <= 0:
        return four.copy()
    gamma = 1.0 / math.sqrt(1.0 - b2)
    p, e = four[:3], four[3]
    bp = float(beta @ p)
    p_out = p + ((gamma - 1.0) * bp / b2 + gamma * e) * beta
    return np.array([*p_out, gamma * (e + bp)])


def fusion_evaporation(
    projectile, target, energy: float, rng: np.random.Generator, max_particles: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Products of one fusion-evaporation event at beam kinetic energy ``energy`` [MeV].

    Parameters
    ----------
    projectile, target
        spyral-utils `NucleusData` (beam and target nucleus).

    Returns
    -------
    momenta, z, a
        ``(N, 4)`` lab four-momenta ``[px, py, pz, E]`` [MeV] (beam along +z) of the
        evaporated particles in emission order and the residue last; their Z and A.
    """
    nmap = nuclear_map()
    z_cn, a_cn = projectile.Z + target.Z, projectile.A + target.A
    compound = nmap.get_data(z_cn, a_cn)
    total_e = energy + projectile.mass + target.mass
    pz = math.sqrt(energy * (energy + 2.0 * projectile.mass))
    lab = np.array([0.0, 0.0, pz, total_e])  # emitter four-momentum in the lab
    invariant = math.sqrt(total_e**2 - pz**2)
    excitation = invariant - compound.mass
    products: list[tuple[np.ndarray, int, int]] = []
    z, a = z_cn, a_cn
    while len(products) < max_particles - 1 and excitation > 0:
        temperature = math.sqrt(excitation / (a / 8.0))
        options = []
        for _, zx, ax, spin in PARTICLES:
            zd, ad = z - zx, a - ax
            if zd < 1 or ad < zd:
                continue
            try:
                daughter, particle = nmap.get_data(zd, ad), nmap.get_data(zx, ax)
            except KeyError:
                continue
            separation = daughter.mass + particle.mass - nmap.get_data(z, a).mass
            barrier = _barrier(zx, ax, zd, ad)
            if excitation <= separation + barrier:
                continue
            weight = spin * ax * temperature**2 * math.exp(-(separation + barrier) / temperature)
            options.append((weight, zx, ax, separation, barrier, particle, daughter))
        if not options:
            break
        weights = np.array([o[0] for o in options])
        _, zx, ax, separation, barrier, particle, daughter = options[
            int(rng.choice(len(options), p=weights / weights.sum()))
        ]
        available = excitation - separation
        kinetic = min(barrier + rng.gamma(2.0, temperature), available)
        # two-body split in the emitter's rest frame: the particle takes `kinetic`
        p = math.sqrt(kinetic * (kinetic + 2.0 * particle.mass))
        cos_t = rng.uniform(-1.0, 1.0)
        phi = rng.uniform(0.0, 2.0 * math.pi)
        sin_t = math.sqrt(1.0 - cos_t**2)
        direction = np.array([sin_t * math.cos(phi), sin_t * math.sin(phi), cos_t])
        beta = lab[:3] / lab[3]
        emitted = _boost(np.array([*(p * direction), math.hypot(p, particle.mass)]), beta)
        lab = lab - emitted
        products.append((emitted, zx, ax))
        z, a = daughter.Z, daughter.A
        # what is left: the daughter's excitation from the invariant mass of the rest
        residual_mass = math.sqrt(max(lab[3] ** 2 - lab[:3] @ lab[:3], 0.0))
        excitation = residual_mass - daughter.mass
    products.append((lab, z, a))
    momenta = np.array([m for m, _, _ in products])
    return (
        momenta,
        np.array([zz for _, zz, _ in products], dtype=np.int64),
        np.array([aa for _, _, aa in products], dtype=np.int64),
    )
