"""Helices wound by hand: a track from the beam axis as the solenoid's field curls it,
for tests of the features' circles, vertices and joins."""

from __future__ import annotations

import math

import numpy as np


def wound(z0: float, radius: float, centre_dir: float, cot: float, turns: float) -> np.ndarray:
    """Points 2 mm apart along a helix from the beam axis at z0: a circle through the
    origin (centre ``radius`` away at angle ``centre_dir``), z = z0 + cot R phi, phi from
    0 to 2 pi ``turns``; charge 100."""
    c = radius * np.array([math.cos(centre_dir), math.sin(centre_dir)])
    phi = np.arange(0.0, 2.0 * math.pi * turns, 2.0 / radius)
    a0 = centre_dir + math.pi  # the origin as seen from the centre
    xy = c + radius * np.column_stack([np.cos(a0 + phi), np.sin(a0 + phi)])
    return np.column_stack([xy, z0 + cot * radius * phi, np.full(len(phi), 100.0)])
