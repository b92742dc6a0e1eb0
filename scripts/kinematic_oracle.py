"""What knowing a run's field, beam energy, gas density and drift calibration is worth.

    .venv/bin/python scripts/kinematic_oracle.py IMAGE_FILE OUT_FILE

IMAGE_FILE: a feature file (`tracks_v7`, `v8` or `v9`) made by `preprocess` from run
files of `simulate --config e15503b_randomized` (it names them: its ``sources``), whose
event tables hold what the simulation drew for each event: the field factor, the beam
energy before the window, the gas pressure factor, the z scale and offset. The
randomised simulation draws these per event, so they smear the elastic line the trees
read (`data_prep.features.VERTEX_HELIX_FEATURES`); a real run has one field, one beam
tune and one gas fill, which a per-run calibration could find. This script asks what
the best such calibration could give: OUT_FILE is IMAGE_FILE with every described
track's kinematic columns computed as if each event's own values were known (what no
run knows):

* the radius at the nominal field: ``log10 R + log10 field_factor`` (R ~ p / B);
* cot of the polar angle in true z: ``cot / z_scale`` (z = z_scale z_true + offset),
  the invariants ``log10 R (1 + cot^2) / |cot|`` recomputed with both;
* the own-vertex invariant over the beam's speed at the vertex's true depth
  ``(z - offset) / z_scale``, at the event's beam energy and gas density (pycatima's
  energy loss through spyral-utils, as the simulation computes it; a grid over energy,
  density and depth, interpolated), instead of the nominal table `BEAM_SPEED`.

Train on OUT_FILE with the recipe's command and compare with `scripts/paired_f1.py`
(test files corrected the same way). Printed: the elastic protons' first-track window
invariant (27-63 deg) before and after, percentiles. ~2 min for 180,000 events. Last
line: JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
from proton_misses import event_rows  # the run files' event tables
from scipy.interpolate import RegularGridInterpolator

from attpc_classify.config import load_config
from data_prep.features import BAND_COT, BEAM_SPEED, BEAM_SPEED_Z_MM, N_NAMED
from data_prep.sim.physics import EventGenerator, make_gas
from data_prep.simulate import SimConfig

KNOBS = ("field_factor", "beam_energy_mev_u", "pressure_factor", "z_scale", "z_offset_mm")
#: the grid the beam's speed is computed on: beyond the randomised ranges (4.45-4.75
#: MeV/u, x0.95-1.05) so that interpolation never extrapolates
ENERGY_GRID = np.linspace(4.40, 4.80, 17)  # MeV/u before the window
PRESSURE_GRID = np.linspace(0.94, 1.06, 13)  # x the preset's pressure
DEPTH_GRID = np.arange(0.0, 1201.0, 5.0)  # mm from the window
PERCENTILES = (10, 25, 50, 75, 90)


def speed_grid(config: SimConfig) -> RegularGridInterpolator:
    """sqrt(E(z) / E0) of the beam at (energy before the window [MeV/u], pressure factor,
    depth [mm]); E0 the preset's energy past the window (the frame of `BEAM_SPEED`)."""
    generator = EventGenerator(config)
    beam = config.beam
    a = round(generator.projectile.mass / 931.494)
    e0 = (beam.energy_mev_u - beam.window_loss_mev_u) * a
    out = np.zeros((len(ENERGY_GRID), len(PRESSURE_GRID), len(DEPTH_GRID)))
    for j, factor in enumerate(PRESSURE_GRID):
        gas = dataclasses.replace(config.gas, pressure_torr=config.gas.pressure_torr * factor)
        target = make_gas(dataclasses.replace(config, gas=gas))
        for i, energy_u in enumerate(ENERGY_GRID):
            energy = (energy_u - beam.window_loss_mev_u) * a
            depth_m = DEPTH_GRID / 1e3
            loss = np.asarray(target.get_energy_loss(generator.projectile, energy, depth_m))
            out[i, j] = np.sqrt(np.clip(energy - loss, 1e-6, None) / e0)
    return RegularGridInterpolator((ENERGY_GRID, PRESSURE_GRID, DEPTH_GRID), out)


def event_knobs(image_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 5)`` `KNOBS` and ``(N,)`` channel names of the image file's events, from the
    event tables of the run files it was made from."""
    with h5py.File(image_file, "r") as f:
        sources = json.loads(f.attrs["sources"])
        keys = list(zip(f["run"][()].tolist(), f["event_id"][()].tolist(), strict=True))
    table = event_rows(sources)
    rows = [table[k] for k in keys]
    knobs = np.array([[float(r[k]) for k in KNOBS] for r in rows])
    return knobs, np.array([r["channel"].decode() for r in rows])


def _log_shape(cot: np.ndarray) -> np.ndarray:
    """log10 (1 + cot^2) / |cot|: the invariant over the radius."""
    return np.log10((1.0 + cot**2) / np.abs(cot))


def corrected(
    x: np.ndarray, names: list[str], knobs: np.ndarray, speed: RegularGridInterpolator
) -> np.ndarray:
    """A copy of the features ``x`` with each described track's kinematic columns read
    with the event's own `KNOBS` (module docstring)."""
    x = x.copy()
    field, energy, pressure, z_scale, z_offset = knobs.T
    index = {n: i for i, n in enumerate(names)}
    for k in range(1, N_NAMED + 1):
        if f"t{k}_helix_cot_polar" in index:  # about the run's beam line
            radius, cot, inv = (index[f"t{k}_helix_{n}"] for n in
                                ("log10_radius_mm", "cot_polar", "log10_invariant"))  # fmt: skip
            log_r = x[:, inv] - _log_shape(x[:, cot]) + np.log10(field)
            x[:, radius] += np.log10(field)
            x[:, cot] /= z_scale
            x[:, inv] = log_r + _log_shape(x[:, cot])
        if f"t{k}_vhelix_cot_polar" in index:  # about the track's own vertex
            own = ("cot_polar", "log10_invariant", "log10_invariant_window")
            cot, inv, win = (index[f"t{k}_vhelix_{n}"] for n in own)
            # the vertex depth the features used, from the nominal speed they divided by
            # (`BEAM_SPEED` falls with depth: inverted by interpolation)
            nominal = 10.0 ** (x[:, inv] - x[:, win])
            depth = np.interp(-nominal, -np.asarray(BEAM_SPEED), BEAM_SPEED_Z_MM)
            true_depth = np.clip((depth - z_offset) / z_scale, 0.0, DEPTH_GRID[-1])
            log_r = x[:, inv] - _log_shape(x[:, cot]) + np.log10(field)
            x[:, cot] /= z_scale
            x[:, inv] = log_r + _log_shape(x[:, cot])
            ok = np.isfinite(true_depth)
            true_speed = np.full(len(x), np.nan)
            true_speed[ok] = speed(np.column_stack([energy, pressure, true_depth])[ok])
            x[:, win] = x[:, inv] - np.log10(true_speed)
    return x


def band_percentiles(x: np.ndarray, names: list[str], elastic: np.ndarray) -> list[float]:
    """Percentiles of the elastic protons' first-track window invariant, 27-63 deg."""
    cot = x[:, names.index("t1_vhelix_cot_polar")]
    win = x[:, names.index("t1_vhelix_log10_invariant_window")]
    band = elastic & (cot >= BAND_COT[0]) & (cot <= BAND_COT[1]) & np.isfinite(win)
    return [round(float(v), 4) for v in np.percentile(win[band], PERCENTILES)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image_file", type=Path)
    ap.add_argument("out_file", type=Path)
    args = ap.parse_args()
    knobs, channels = event_knobs(args.image_file)
    speed = speed_grid(load_config(SimConfig, "e15503b_randomized", []))
    tmp = args.out_file.with_name(args.out_file.name + ".tmp")
    shutil.copyfile(args.image_file, tmp)
    with h5py.File(tmp, "r+") as f:
        x = f["features"][()]
        names = json.loads(f["features"].attrs["feature_names"])
        new = corrected(x, names, knobs, speed)
        f["features"][...] = new.astype(np.float32)
    os.replace(tmp, args.out_file)  # atomic: a killed run leaves no half-corrected file
    elastic = channels == "p_elastic"
    before, after = band_percentiles(x, names, elastic), band_percentiles(new, names, elastic)
    head = " | ".join(f"{p} %" for p in PERCENTILES)
    print(f"| elastic protons' t1 window invariant, 27-63 deg | {head} |")
    print("|---|" + "---|" * len(PERCENTILES))
    for what, values in (("as the features read it", before),
                         ("each event's field, beam, gas and z known", after)):  # fmt: skip
        print(f"| {what} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    print(json.dumps({"events": len(x), "percentiles": PERCENTILES, "before": before,
                      "after": after, "out": str(args.out_file)}))  # fmt: skip


if __name__ == "__main__":
    main()
