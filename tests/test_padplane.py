"""The pad at a position (data_prep.padplane) against a brute-force nearest centre."""

from __future__ import annotations

from importlib import resources

import numpy as np

from data_prep.padplane import PAD_MATCH_MM, pad_centres, pads_at


def test_pad_centres_are_attpc_engines_and_spyrals_file():
    """Row = pad id of attpc-engine's padxy.csv, which Spyral ships too, read by hand."""
    rows = []
    for package in ("attpc_engine.detector.data", "spyral.data"):
        text = resources.files(package).joinpath("padxy.csv").read_text()
        rows.append([[float(v) for v in line.split(",")] for line in text.split()[1:]])
    assert rows[0] == rows[1] and len(rows[0]) == 10240
    np.testing.assert_array_equal(pad_centres(), rows[0])


def test_pads_at_is_the_nearest_centre_within_the_tolerance():
    centres = pad_centres()
    rng = np.random.default_rng(0)
    pads = rng.integers(0, len(centres), 300)
    # at a centre, a little off it, mirrored (the plane's symmetry), and anywhere
    xy = np.concatenate([
        centres[pads],
        centres[pads] + rng.normal(0.0, 0.4, (300, 2)),
        centres[pads] * [1.0, -1.0],
        rng.uniform(-280.0, 280.0, (600, 2)),
    ])  # fmt: skip
    distance = np.hypot(*(xy[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    nearest = distance.argmin(axis=1)
    want = np.where(distance.min(axis=1) <= PAD_MATCH_MM, nearest, -1)
    got = pads_at(xy)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[:300], pads)  # exactly at a centre: that pad
    assert (got[600:900] >= 0).all()  # a mirrored centre is a centre
    assert 0 < (got[900:] < 0).sum() < 600  # anywhere: some near a centre, some not
    assert len(pads_at(np.zeros((0, 2)))) == 0


def _write_map(path, rows, header="cobo,asad,aget,aget channel,pad"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_electronics_order_by_hand(tmp_path):
    """Chips in sorted (cobo, asad, aget) order, channels ranked within a chip (the map's
    gaps, the fixed-pattern-noise channels, skipped), pads not in the map -1."""
    from data_prep.padplane import electronics_order

    rows = [(3, 1, 2, 40, 7), (1, 0, 0, 5, 100), (3, 1, 2, 10, 9), (1, 0, 0, 2, 50),
            (1, 0, 0, 67, 8)]  # fmt: skip
    order = electronics_order(_write_map(tmp_path / "map.csv", rows))
    # chip (1,0,0): channels 2, 5, 67 -> pads 50, 100, 8 ranks 0, 1, 2; chip (3,1,2): 9, 7
    want = {50: 0, 100: 1, 8: 2, 9: 64, 7: 65}
    assert {int(p): int(order[p]) for p in np.flatnonzero(order >= 0)} == want
    assert len(order) == 10240 and (order < 0).sum() == 10240 - 5


def test_a_bad_electronics_map_is_one_line_error(tmp_path, capsys):
    import pytest

    from attpc_classify.cli import main
    from data_prep.errors import InputError
    from data_prep.padplane import electronics_order

    bad = {
        "columns.csv": ("cobo,asad,aget,pad", [(1, 0, 0, 5)]),
        "twice.csv": (None, [(1, 0, 0, 1, 5), (1, 0, 0, 2, 5)]),
        "range.csv": (None, [(1, 0, 0, 1, 10240)]),
        "text.csv": (None, [(1, 0, "x", 1, 5)]),
        "big_chip.csv": (None, [(1, 0, 0, c, c) for c in range(65)]),
    }
    for name, (header, rows) in bad.items():
        path = _write_map(tmp_path / name, rows, *(() if header is None else (header,)))
        with pytest.raises(InputError, match="electronics map"):
            electronics_order(path)
    with pytest.raises(InputError, match="cannot read"):
        electronics_order(tmp_path / "missing.csv")
    from _formats import make_events, write_spyral

    run = write_spyral(tmp_path / "run_0001.h5", make_events(np.random.default_rng(0), 3))
    code = main(["preprocess", str(run), "--out", str(tmp_path / "x.h5"), "--quiet",
                 "--pad-electronics", str(tmp_path / "twice.csv")])  # fmt: skip
    assert code == 2 and not (tmp_path / "x.h5").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "twice.csv" in err[0]
