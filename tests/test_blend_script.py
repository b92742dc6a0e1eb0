"""scripts/blend.py: the blend's call and the weight chosen, by hand."""

from __future__ import annotations

import numpy as np
from _scripts import load_script

bl = load_script("blend")


def test_blended_call_by_hand_and_blank_rows_uniform() -> None:
    p_a = np.array([[0.6, 0.1, 0.3], [0.2, 0.3, 0.5], [0.4, 0.5, 0.1]])
    p_b = np.array([[0.0, 0.1, 0.9], [np.nan, np.nan, np.nan], [0.9, 0.0, 0.1]])
    # w = 0.7: row 0 -> 0.42 / 0.10 / 0.48 (other); row 1, B uniform -> 0.24 / 0.31 / 0.45
    # (other); row 2 -> 0.55 / 0.35 / 0.10 (proton)
    np.testing.assert_array_equal(bl.blended(p_a, p_b, 0.7), [2, 2, 0])
    np.testing.assert_array_equal(bl.blended(p_a, p_b, 1.0), p_a.argmax(1))


def test_weight_chosen_on_proton_f1_largest_on_a_tie() -> None:
    y = np.array([0, 2, 0])
    p_a = np.array([[0.45, 0.0, 0.55], [0.1, 0.0, 0.9], [0.9, 0.0, 0.1]])
    p_b = np.array([[0.9, 0.0, 0.1], [0.1, 0.0, 0.9], [0.9, 0.0, 0.1]])
    # event 0 turns proton once 0.9 (1 - w) + 0.45 w > 0.1 (1 - w) + 0.55 w, i.e. w < 8/9:
    # every weight below 0.89 calls all three right, so the largest of them is chosen
    w, table = bl.choose_weight(y, p_a, p_b)
    assert w == 0.85
    assert table[list(bl.WEIGHTS).index(0.85)][0] == 1.0
    assert table[list(bl.WEIGHTS).index(1.0)][0] == 2 / 3  # A alone: one proton of two


def test_a_model_alone_calls_a_blank_event_other() -> None:
    p = np.array([[0.2, 0.7, 0.1], [np.nan, np.nan, np.nan], [0.5, 0.2, 0.3]])
    np.testing.assert_array_equal(bl.alone(p), [1, 2, 0])
