"""scripts/error_budget.py: the binned tables, counted by hand."""

from __future__ import annotations

import itertools

import pytest
from _scripts import load_script


def test_binned_counts_events_and_errors_per_bin() -> None:
    eb = load_script("error_budget")
    # points shown and whether the event was called wrong: 0-19 has 3 events (2 wrong),
    # 20-39 none, 40-79 one (right), >= 80 two (one wrong); 20 and 80 open their bins
    values = [(0, True), (19, True), (5, False), (40, False), (80, True), (500, False)]
    table = eb.binned("points", "missed", eb.SHOWN_BINS, values).splitlines()
    assert table[:2] == ["| points | events | missed |", "|---|---|---|"]
    assert table[2:] == ["| 0-19 | 3 | 2 (67%) |", "| 20-39 | 0 | 0 |",
                         "| 40-79 | 1 | 0 (0%) |", "| >= 80 | 2 | 1 (50%) |"]  # fmt: skip


def test_the_angle_bins_cover_every_cot_once() -> None:
    eb = load_script("error_budget")
    edges = [(lo, hi) for lo, hi, _ in eb.COT_BINS]
    assert edges[0][0] == float("-inf") and edges[-1][1] == float("inf")
    assert all(a[1] == b[0] for a, b in itertools.pairwise(edges))


def test_the_floor_reads_both_reactions_of_a_pile_up_only() -> None:
    eb = load_script("error_budget")
    # a pile-up is above the floor only if both reactions are; one reaction: its own
    assert min(eb.shown({"channel": "pileup", "reactions": [120, 12]})) == 12
    assert eb.shown({"channel": "p_elastic", "reactions": [50, 0]}) == [50]


def test_band_scale_is_each_run_files_median_on_its_band() -> None:
    import numpy as np

    eb = load_script("error_budget")
    runs = np.array([1, 1, 1, 1, 1, 2, 2, 2])
    dedx = np.array([1.0, 2.0, 9.0, 4.0, 100.0, 5.0, 6.0, 7.0])
    band = np.array([True, True, False, True, False, True, True, False])
    got = eb.band_scale(dedx, runs, band)
    # file 1: median of 1, 2, 4 for every one of its events; file 2: two band tracks, too few
    np.testing.assert_array_equal(got[:5], [2.0] * 5)
    assert np.isnan(got[5:]).all() and eb.BAND_MIN_TRACKS == 3


def test_products_shown_counts_each_product_with_ten_far_points() -> None:
    import numpy as np

    eb = load_script("error_budget")
    # product 2: 12 far points; product 3: 9 far (+5 near); product 4: 10 far; the beam
    # (label 1) and the second reaction of a pile-up (12) are not the first reaction's
    lab = np.array([2] * 12 + [3] * 14 + [4] * 10 + [1] * 30 + [12] * 20)
    far = np.ones(len(lab), dtype=bool)
    far[12:17] = False
    assert eb.products_shown(far, lab) == 2
    assert eb.products_shown(np.zeros(len(lab), dtype=bool), lab) == 0


def test_by_knob_counts_each_quarter_by_hand() -> None:
    import numpy as np

    eb = load_script("error_budget")
    # eight events, values 1..8: quarters [1, 2.75), [2.75, 4.5), [4.5, 6.25), [6.25, 8]
    values = np.arange(1.0, 9.0)
    proton = np.array([1, 1, 1, 0, 0, 0, 1, 0], dtype=bool)
    said = np.array([1, 0, 1, 1, 0, 0, 1, 1], dtype=bool)
    rows = eb.by_knob(values, proton, said)
    assert [r[1:4] for r in rows] == [(2, 1, 0), (2, 0, 1), (2, 0, 0), (2, 0, 1)]
    # quarter 1: one proton found, one missed: F1 2/3; quarter 3: no proton, none called
    assert rows[0][4] == pytest.approx(2 / 3) and rows[0][0] == "1-2.75"
    assert rows[1][4] == pytest.approx(2 / 3)  # one found, one other called proton
    assert rows[3][4] == pytest.approx(2 / 3)
    assert eb.by_knob(np.full(5, 3.0), proton[:5], said[:5]) == []  # not varied: no table
