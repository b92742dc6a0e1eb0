"""Chips learned from a run's own chip fires (`data_prep.chipmap`, ``attpc-classify chips``)."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
from _formats import WRITERS
from _scripts import load_script
from _synthetic import make_image_file

from attpc_classify.cli import main
from attpc_classify.config import load_config
from data_prep.chipmap import ChipLearning, dense_instants, learn_chips
from data_prep.padplane import electronics_order, pad_centres
from data_prep.readers import open_events
from data_prep.simulate import SimConfig, simulate

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"


def _wiring(seed: int) -> list[np.ndarray]:
    """160 chips of 64 pads drawn at random: a wiring neither the simulation's blocks nor
    any layout the code knows."""
    return list(np.random.default_rng(seed).permutation(10240).reshape(160, 64))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    """Two simulated run files (the simulator's writer) without chip fires."""
    out = tmp_path_factory.mktemp("clean")
    config = load_config(SimConfig, CONFIGS / "tiny.yaml", ["noise.chip_rate=0"])
    simulate(config, 40, out, seed=3, events_per_file=20)
    return out


def test_dense_instants_by_hand():
    """Two instants of 50 pads at z 100 and 400 (+-3 mm) and a steep track of 60 points
    between them (150-350 mm, ~5 within any +-12 mm): the two pad sets come back, the
    track is none."""
    rules = ChipLearning()
    z = np.concatenate([100 + np.linspace(-3, 3, 50), 400 + np.linspace(-3, 3, 50),
                        np.linspace(150, 350, 60)])  # fmt: skip
    pads = np.concatenate([np.arange(50), np.arange(1000, 1050), np.arange(5000, 5060)])
    found = sorted(dense_instants(z, pads, rules), key=lambda s: s[0])
    assert [s.tolist() for s in found] == [list(range(50)), list(range(1000, 1050))]


def test_learn_chips_keeps_pads_that_fire_whole_again_and_again():
    """Chip A fires whole 4 times, chip B twice (under ``min_fires``); a hot pad is in all
    20 instants and a busy pad in all of A's and 6 of the 16 others (present in A's fires
    only 2.7 times as often as elsewhere, under `LIFT`): A alone is learned, without
    them. Chips C and D (128 pads) always fire together, 3 times: two chips of 64, each
    whole 3 times. A chip that fires in every instant of a run is one chip."""
    a, b, hot, busy = np.arange(100, 164), np.arange(500, 564), 9000, 50
    cd = np.arange(3000, 3128)
    instants = (
        [np.r_[a, hot, busy]] * 4
        + [np.r_[b, hot]] * 2
        + [np.r_[hot, busy]] * 2
        + [np.r_[hot, np.arange(5000 + 100 * i, 5050 + 100 * i)] for i in range(8)]
        + [np.r_[hot, busy, np.arange(5800 + 100 * i, 5850 + 100 * i)] for i in range(4)]
    )
    learned = learn_chips(instants, 10240, ChipLearning())
    assert learned.n_chips == 1 and learned.whole_fires.tolist() == [4]
    assert np.flatnonzero(learned.chip == 0).tolist() == a.tolist()
    assert (learned.chip[np.r_[b, hot, busy]] == -1).all()
    learned = learn_chips(instants + [cd] * 3, 10240, ChipLearning())
    parts = sorted(np.flatnonzero(learned.chip == c).tolist() for c in range(learned.n_chips))
    assert parts == [a.tolist(), cd[:64].tolist(), cd[64:].tolist()]
    assert sorted(learned.whole_fires.tolist()) == [3, 3, 4]
    assert learn_chips([], 10240, ChipLearning()).n_chips == 0  # a run with no dense instant
    always = learn_chips([a] * 10, 10240, ChipLearning())
    assert always.n_chips == 1 and np.flatnonzero(always.chip == 0).tolist() == a.tolist()


def test_chips_cli_learns_the_fired_chips_of_a_run(tmp_path, clean_run):
    """Fires on a random wiring added to a simulated run (scripts/chip_check.py): every
    chip learned is one of the wiring's chips (all its pads from one), each chip that
    fired whole 3 or more times is learned, and the map read back groups its pads as one
    chip (64 consecutive ids in `electronics_order`); pads of no chip keep id // 64."""
    chip_check = load_script("chip_check")
    wiring = _wiring(1)[:6]  # six chips fire, ~2.7 times each in 40 events
    rng = np.random.default_rng(0)
    fired_dir = tmp_path / "fired"
    fired_dir.mkdir()
    for path in sorted(clean_run.glob("run_*.h5")):
        chip_check.add_fires(path, fired_dir / path.name, wiring, rng, 0.4)
    truth = np.full(10240, -1)
    for i, pads in enumerate(wiring):
        truth[pads] = i
    outside = np.hypot(*pad_centres().T) > chip_check.BEAM_PAD_RADIUS_MM
    fires = np.zeros(len(wiring), int)  # whole fires per chip, counted from the truth -1
    for path in sorted(fired_dir.glob("run_*.h5")):
        with h5py.File(path) as f:
            for name in (k for k in f["cloud"] if k.startswith("cloud_")):
                points = f["cloud"][name][...]
                noise = f["cloud"]["labels_" + name[6:]][...] == -1
                pads = np.unique(np.rint(points[noise, 5]).astype(int))
                for c in np.unique(truth[pads][truth[pads] >= 0]):
                    fires[c] += np.isin(wiring[c][outside[wiring[c]]], pads).mean() > 0.75
    out = tmp_path / "chips.csv"
    assert main(["chips", str(fired_dir), "--out", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10240
    learned: dict[int, list[int]] = {}
    for r in rows:
        if r["cobo"] == "0":
            learned.setdefault(int(r["aget"]), []).append(int(r["pad"]))
        else:
            assert int(r["aget"]) == int(r["pad"]) // 64 and r["cobo"] == "1"
    for pads in learned.values():
        assert len(set(truth[pads].tolist())) == 1 and truth[pads[0]] >= 0
    got = {int(truth[pads[0]]) for pads in learned.values()}
    assert got == {c for c in range(len(wiring)) if fires[c] >= 3} and got
    order = electronics_order(out)
    for pads in learned.values():
        ids = np.sort(order[pads])
        assert ids[0] % 64 == 0 and np.array_equal(ids, ids[0] + np.arange(len(pads)))
    # the same run in pytpc's layout (pad ids in column 4) and as an ATTPCROOT export (no
    # pad ids: the pad at each hit's x, y) teaches the same chips
    for fmt in ("pytpc", "attpcroot"):
        copies = tmp_path / fmt
        copies.mkdir()
        for path in sorted(fired_dir.glob("run_*.h5")):
            with open_events(path) as reader:
                WRITERS[fmt](copies / path.name, list(reader.iter_events(0, len(reader))))
        again = tmp_path / f"{fmt}.csv"
        assert main(["chips", str(copies), "--out", str(again), "--format", fmt]) == 0
        assert again.read_text() == out.read_text(), fmt


def test_chips_cli_on_a_run_without_fires_learns_nothing(tmp_path, clean_run, capsys):
    """No chip fires: no chip is learned and the map groups every pad as without a map
    (each pad's id in the electronics is its own id)."""
    out = tmp_path / "chips.csv"
    assert main(["chips", str(clean_run), "--out", str(out)]) == 0
    assert "0 chips learned" in capsys.readouterr().out
    assert np.array_equal(electronics_order(out), np.arange(10240))


def test_chips_cli_bad_input_is_one_line(tmp_path, clean_run, capsys):
    """A map given to learn from, a file that is not a run, or an image file: exit 2, one
    line."""
    electronics = tmp_path / "map.csv"
    electronics.write_text("cobo,asad,aget,aget channel,pad\n0,0,0,0,1\n")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    images = make_image_file(tmp_path / "images.h5", n_per_class=2, seed=0)
    for argv in (["chips", str(clean_run), "--out", str(tmp_path / "o.csv"),
                  "--pad-electronics", str(electronics)],
                 ["chips", str(bad), "--out", str(tmp_path / "o.csv")],
                 ["chips", str(images), "--out", str(tmp_path / "o.csv")]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0]
    assert not (tmp_path / "o.csv").exists()


def test_chip_check_scores_a_learned_map_against_the_real_one(tmp_path):
    """scripts/chip_check.py's `learned_stats`, by hand: chip 0 all of map chip 3, chip 1
    half map chip 5 and half map chip 6 (its most common: the first, by np.unique's order);
    cobo 1 rows (pads of no learned chip) are not chips."""
    chip_check = load_script("chip_check")
    truth = np.full(10240, -1)
    truth[0:10], truth[10:14], truth[14:18] = 3, 5, 6
    rows = [(0, 0, 0, i, p) for i, p in enumerate(range(10))]
    rows += [(0, 0, 1, i, p) for i, p in enumerate(range(10, 18))]
    rows += [(1, 0, 0, 0, 100)]
    path = tmp_path / "learned.csv"
    path.write_text(
        "cobo,asad,aget,aget channel,pad\n" + "\n".join(",".join(map(str, r)) for r in rows)
    )
    assert chip_check.learned_stats(path, truth) == (2, 2, "50%-100%")
