"""attpc-engine's electron transport to the pad plane, the same numbers in less time.

attpc-engine drifts the electrons of every track point to the pads in
`attpc_engine.detector.transporter.transport_track` (numba): a 10 x 10 mesh over +-3
sigma of the transverse diffusion, each mesh pixel's share of the electrons (the
bivariate normal density times the pixel's area, truncated to an integer) added to a
typed dict keyed on (time bucket, pad). Profiled on 200 randomised events it was about a
third of the simulation's time, spent mostly on two things that make no number:

* ``pad not in BEAM_PADS_ARRAY``, a scan of the 122 beam pads for every pixel; here a
  lookup in a boolean table of pad ids (the same answer);
* one dict read and one dict write per pixel; here the pixels of one track point (which
  share its time bucket) are first summed per pad, then each pad's sum is added to the
  dict once, in the order of the pad's first pixel.

Everything that makes a number is attpc-engine's own: its `position_to_index`,
`bivariate_normal_pdf` and `pair` are called, with the same arguments in the same
order, and the mesh is its `np.linspace` of the same limits. The electron counts are
integers, so summing them per pad first gives the same totals; the dict's keys are made
in the same order (a key enters the dict when its first pixel arrives, in both); and
every value carries the label of this call, as the last write gives it there. So the
dict, and every event made from it, is bit for bit attpc-engine's
(tests/test_sim_shortcuts.py compares the dicts of many tracks and whole events).

numba caches the compiled code on disk and re-checks only this file's source, not the
attpc-engine functions it calls: attpc-engine is pinned (pyproject), and the beam-pad
table is an argument, not a global frozen into the cache.
"""

from __future__ import annotations

import numpy as np
from attpc_engine.detector.beam_pads import BEAM_PADS_ARRAY
from attpc_engine.detector.pairing import pair
from attpc_engine.detector.transporter import (
    STEPS,
    bivariate_normal_pdf,
    position_to_index,
)
from numba import njit

#: True at the id of each beam pad; ids past its end (none of the 10,240 pads, but
#: `see_through`'s offset ids) are not beam pads. An argument of the compiled code, not a
#: global it would freeze into numba's on-disk cache.
BEAM_PAD = np.zeros(int(BEAM_PADS_ARRAY.max()) + 1, dtype=np.bool_)
BEAM_PAD[BEAM_PADS_ARRAY] = True


@njit(cache=True)
def _reads_out(pad: int, beam_pad: np.ndarray) -> bool:
    """attpc-engine's ``pad != -1 and pad not in BEAM_PADS_ARRAY`` by table lookup."""
    if pad == -1:
        return False
    return not (0 <= pad < beam_pad.size and beam_pad[pad])


@njit(cache=True)
def _point(pad_grid, grid_edges, time, center, electrons, points, label, beam_pad) -> None:
    """attpc-engine's `point_transport` (no diffusion): all electrons to one pad."""
    index_x, index_y = position_to_index(grid_edges, center)
    if index_x == -1 or index_y == -1:
        return
    pad = int(pad_grid[index_x, index_y])
    if _reads_out(pad, beam_pad):
        key = pair(int(time), pad)
        charge, _ = points.get(key, (0, 0))
        points[key] = (charge + electrons, label)


@njit(cache=True)
def _diffused(
    pad_grid, grid_edges, time, center, electrons, sigma_t, points, label, beam_pad, pads, sums
):
    """attpc-engine's `transverse_transport`, its pixels summed per pad before the dict.

    ``pads``/``sums`` are scratch arrays of at least STEPS**2 entries.
    """
    xsteps = np.linspace(center[0] - 3 * sigma_t, center[0] + 3 * sigma_t, STEPS)
    ysteps = np.linspace(center[1] - 3 * sigma_t, center[1] + 3 * sigma_t, STEPS)
    step_sizex = 2 * 3 * sigma_t / (STEPS - 1)
    step_sizey = 2 * 3 * sigma_t / (STEPS - 1)
    n = 0  # pads hit by this point, in the order of their first pixel
    for x in xsteps:  # the engine's meshgrid order: x outer, y inner
        for y in ysteps:
            pixel = (x, y)
            index_x, index_y = position_to_index(grid_edges, pixel)
            if index_x == -1 or index_y == -1:
                continue
            pad = int(pad_grid[index_x, index_y])
            if not _reads_out(pad, beam_pad):
                continue
            pixel_electrons = int(
                bivariate_normal_pdf(pixel, center, sigma_t) * (step_sizex * step_sizey) * electrons
            )
            k = 0
            while k < n and pads[k] != pad:
                k += 1
            if k == n:
                pads[n] = pad
                sums[n] = 0
                n += 1
            sums[k] += pixel_electrons
    tb = int(time)
    for k in range(n):
        key = pair(tb, pads[k])
        charge, _ = points.get(key, (0, 0))
        points[key] = (charge + sums[k], label)


def transport_track(
    pad_grid, grid_edges, diffusion, efield, dv, track, electrons, points, label
) -> None:
    """attpc-engine's `transport_track` (same arguments, same dict), faster."""
    _transport(pad_grid, grid_edges, diffusion, efield, dv, track, electrons, points, label,
               BEAM_PAD)  # fmt: skip


@njit(cache=True)
def _transport(
    pad_grid, grid_edges, diffusion, efield, dv, track, electrons, points, label, beam_pad
) -> None:
    """`transport_track`'s loop over the track points, compiled."""
    pads = np.empty(STEPS * STEPS, dtype=np.int64)
    sums = np.empty(STEPS * STEPS, dtype=np.int64)
    for idx, row in enumerate(track):
        time = row[2]
        center = (row[0], row[1])
        point_electrons = electrons[idx]
        sigma_t = np.sqrt(2.0 * diffusion * dv * time / efield)
        if sigma_t == 0.0:
            _point(pad_grid, grid_edges, time, center, point_electrons, points, label, beam_pad)
        else:
            _diffused(pad_grid, grid_edges, time, center, point_electrons, sigma_t, points,
                      label, beam_pad, pads, sums)  # fmt: skip
