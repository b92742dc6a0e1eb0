"""scripts/paired_f1.py: the paired difference by hand, and a refusal of unequal files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from _scripts import load_script


def test_paired_difference_by_hand() -> None:
    pf = load_script("paired_f1")
    # truth 0 0 0 1 2; A calls 0 1 1 1 2 (proton: 1 TP, 2 FN: F1 1/2; class 1: 1 TP, 2 FP:
    # 1/2), B calls 0 0 1 1 2 (proton: 2 TP, 1 FN: 4/5; class 1: 1 TP, 1 FP: 2/3); class 2
    # right in both: macro-F1 of A (1/2 + 1/2 + 1) / 3, of B (4/5 + 2/3 + 1) / 3
    y = np.array([0, 0, 0, 1, 2])
    a = np.array([0, 1, 1, 1, 2])
    b = np.array([0, 0, 1, 1, 2])
    got = pf.paired(y, a, b, n_boot=200)
    assert got["a"] == [0.5, round(2 / 3, 4)]
    assert got["proton_f1"][0] == pytest.approx(0.8 - 0.5, abs=1e-4)
    assert got["macro_f1"][0] == pytest.approx((0.8 + 2 / 3 + 1) / 3 - 2 / 3, abs=1e-4)
    low, high = got["proton_f1"][1:]
    assert low <= got["proton_f1"][0] <= high
    # the same calls twice: every draw differs by 0
    same = pf.paired(y, a, a, n_boot=50)
    assert same["proton_f1"] == [0.0, 0.0, 0.0] and same["macro_f1"] == [0.0, 0.0, 0.0]


def test_files_of_other_events_are_refused(tmp_path, monkeypatch) -> None:
    pf = load_script("paired_f1")
    for name, events in (("a.h5", [0, 1, 2]), ("b.h5", [0, 1, 3])):
        with h5py.File(tmp_path / name, "w") as f:
            f["label"] = np.zeros(3, dtype=np.int8)
            f["run"] = np.zeros(3, dtype=np.int32)
            f["event_id"] = np.array(events)
    (ya, ka), (yb, kb) = pf.events(tmp_path / "a.h5"), pf.events(tmp_path / "b.h5")
    assert np.array_equal(ya, yb) and not np.array_equal(ka, kb)
    argv = ["paired_f1", "run_a", str(tmp_path / "a.h5"), "run_b", str(tmp_path / "b.h5")]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit, match="do not hold the same events"):
        pf.main()  # refused before either run classifies


def test_validation_is_the_runs_own_split_of_the_labelled_events(tmp_path) -> None:
    import yaml

    pf = load_script("paired_f1")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 3, "data": {"val_fraction": 0.25}}))
    y = np.array([0] * 40 + [1] * 20 + [2] * 40 + [-1] * 10)
    got = pf.held_out(run, y)
    assert (y[got] >= 0).all()  # an unlabelled event is never scored
    # a quarter of each class, as train's stratified split holds out
    assert [int((y[got] == c).sum()) for c in (0, 1, 2)] == [10, 5, 10]
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 4, "data": {"val_fraction": 0.25}}))
    assert not np.array_equal(pf.held_out(run, y), got)  # the run's own seed
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"val_path": "val.h5"}}))
    with pytest.raises(SystemExit, match="validated on its own file"):
        pf.held_out(run, y)


def test_unseen_keeps_b_s_held_out_events_from_files_a_never_read(tmp_path) -> None:
    import yaml

    pf = load_script("paired_f1")
    run = tmp_path / "run_b"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "data": {"val_fraction": 0.5}}))
    # B's file: runs 1 and 2 (A's as well) and run 7 (new), 20 events each
    y = np.tile([0, 1, 2, 2, 0], 12)
    keys = np.column_stack([np.repeat([1, 2, 7], 20), np.tile(np.arange(20), 3)])
    keys_a = np.column_stack([np.repeat([1, 2], 20), np.tile(np.arange(20), 2)])
    got = pf.unseen(run, y, keys, keys_a)
    held = pf.held_out(run, y)
    # by hand: B's held-out events whose run is 7, in B's order
    want = [i for i in held if keys[i, 0] == 7]
    assert list(got) == want and len(want) > 0
    assert not set(got) & set(np.flatnonzero(keys[:, 0] != 7))
