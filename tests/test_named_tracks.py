"""models.gbt.NamedTracksGBT: the tensor model gives what scikit-learn's two stages give,
with the event columns computed here by hand (numpy), and survives save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attpc_classify.models.gbt import N_KINDS, NamedTracksGBT, fit_named_tracks

#: three tracks of two columns each (the first: its points, NaN where there is no track)
COLS = [[1, 2], [3, 4], [5, 6]]
TRACK_PARAMS = {"max_leaf_nodes": 31, "learning_rate": 0.1, "max_iter": 30}  # small: fast


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 7))
    kinds = rng.integers(0, N_KINDS, size=(n, 3))
    for k in range(3):  # a track's kind shows in its second column
        x[:, COLS[k][1]] += 2.0 * kinds[:, k]
        gone = rng.random(n) < 0.2 * k  # fewer second and third tracks
        x[gone, COLS[k][0]] = x[gone, COLS[k][1]] = np.nan
        kinds[gone, k] = -1
    y = ((kinds == 0).any(axis=1)).astype(np.int64)  # "proton": a light product somewhere
    return x, y, kinds


def _by_hand(x: np.ndarray, p: np.ndarray, light_counts: bool = False) -> np.ndarray:
    """The event columns, one event at a time (models.gbt.identity_columns' contract, then
    with ``light_counts`` light_columns': light products above p 0.5, second p(light))."""
    out = []
    for xi, pi in zip(x, p, strict=True):
        light = pi[:, 0]
        have = ~np.isnan(light)
        row = list(light)
        if have.any():
            best = int(np.nanargmax(light))
            row += [light[best], best]
            chosen = list(xi[COLS[best]])
        else:
            row += [np.nan, np.nan]
            chosen = [np.nan] * 2
        row += list(pi[0, 1:3]) + chosen
        if light_counts:
            shown = [*sorted((v for v in light if not np.isnan(v)), reverse=True), 0.0, 0.0]
            row += [sum(v > 0.5 for v in shown), shown[1]]
        out.append(row)
    return np.array(out)


def _track_stage(x: np.ndarray, kinds: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """The track stage again, independently: scikit-learn's trees fitted on every existing
    track of ``x`` (rank first), then ``(B, 3, N_KINDS)`` probabilities of ``xt``'s tracks,
    NaN for a missing track."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rows = np.concatenate([np.column_stack([np.full(len(x), k), x[:, COLS[k]]])
                           for k in range(3)])  # fmt: skip
    labels = kinds.T.reshape(-1)
    track_clf = HistGradientBoostingClassifier(**TRACK_PARAMS, random_state=0,
                                               early_stopping=False)  # fmt: skip
    track_clf.fit(rows[labels >= 0], labels[labels >= 0])
    t_rows = np.concatenate([np.column_stack([np.full(len(xt), k), xt[:, COLS[k]]])
                             for k in range(3)])  # fmt: skip
    p = track_clf.predict_proba(t_rows).reshape(3, len(xt), N_KINDS).transpose(1, 0, 2)
    p[np.isnan(np.stack([xt[:, c[0]] for c in COLS], axis=1))] = np.nan
    return p


@pytest.mark.parametrize("light_counts", [False, True])
def test_the_tensor_model_is_the_two_sklearn_stages(tmp_path, light_counts):

    x, y, kinds = _data(600, 0)
    model = NamedTracksGBT(7, 2, COLS, light_counts=light_counts)
    event_clf = fit_named_tracks(model, x, y, kinds, params={"max_iter": 40},
                                 track_params=TRACK_PARAMS, seed=0)  # fmt: skip
    xt, _, _ = _data(200, 1)
    p = _track_stage(x, kinds, xt)
    want = event_clf.predict_proba(np.hstack([xt, _by_hand(xt, p, light_counts)]))
    with torch.no_grad():
        got = model(torch.from_numpy(xt)).softmax(-1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)  # the event logits are float32
    # a state dict round trip into a model built from the recorded shapes
    again = NamedTracksGBT(7, 2, COLS, track=_shape(model.track), event=_shape(model.event),
                           light_counts=light_counts)  # fmt: skip
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        np.testing.assert_array_equal(again(torch.from_numpy(xt)).numpy(),
                                      model(torch.from_numpy(xt)).numpy())  # fmt: skip


#: tracks_v6's pair columns of the three tracks: (1, 2), (1, 3), (2, 3), two columns each
#: (the first: the angle between the circles' centres)
PAIR_COLS = [[7, 8], [9, 10], [11, 12]]
PAIR_OF = {(0, 1): 0, (0, 2): 1, (1, 2): 2}


def _likeliest_pair(xi: np.ndarray, pi: np.ndarray) -> list[float]:
    """The pair columns of the two tracks with the highest p(light), NaN with fewer than
    two tracks."""
    have = [k for k in range(3) if not np.isnan(pi[k, 0])]
    if len(have) < 2:
        return [np.nan, np.nan]
    a, b = sorted(sorted(have, key=lambda k: -pi[k, 0])[:2])
    return list(xi[PAIR_COLS[PAIR_OF[(a, b)]]])


def _widest_pair(xi: np.ndarray, pi: np.ndarray) -> list[float]:
    """Among the tracks with p(light) > 0.5, the pair with the largest centre angle (one
    without an angle last); the likeliest pair with fewer than two such tracks."""
    light = [k for k in range(3) if pi[k, 0] > 0.5]
    pairs = [(a, b) for a in light for b in light if a < b]
    if not pairs:
        return _likeliest_pair(xi, pi)
    angle = {q: xi[PAIR_COLS[PAIR_OF[q]][0]] for q in pairs}
    best = max(pairs, key=lambda q: -1.0 if np.isnan(angle[q]) else angle[q])
    return list(xi[PAIR_COLS[PAIR_OF[best]]])


@pytest.mark.parametrize("light_pair", ["likeliest", "widest", "both"])
def test_the_light_pair_columns_against_pairs_picked_by_hand(light_pair):
    """With ``pair_columns`` the event trees also read the pair columns of two light
    tracks: the two likeliest (NaN with fewer than two tracks), or the two of the likely
    ones (p > 0.5) whose circles lie widest apart, or both. The tensor model against the
    two sklearn stages, the pairs picked here by hand."""

    x, y, kinds = _data(600, 3)
    rng = np.random.default_rng(4)
    x = np.hstack([x, rng.normal(size=(len(x), 6))])
    model = NamedTracksGBT(13, 2, COLS, light_counts=True, pair_columns=PAIR_COLS,
                           light_pair=light_pair)  # fmt: skip
    event_clf = fit_named_tracks(model, x, y, kinds, params={"max_iter": 40},
                                 track_params=TRACK_PARAMS, seed=0)  # fmt: skip
    xt, _, kt = _data(200, 5)
    for k in range(3):  # half the events: every track looks light, so the choices differ
        half = (rng.random(len(xt)) < 0.5) & (kt[:, k] > 0)
        xt[half, COLS[k][1]] -= 2.0 * kt[half, k]
    xt = np.hstack([xt, rng.normal(size=(200, 6))])
    xt[rng.random(len(xt)) < 0.2, PAIR_COLS[1][0]] = np.nan  # circles that failed to fit
    p = _track_stage(x, kinds, xt)
    likeliest = np.array([_likeliest_pair(xi, pi) for xi, pi in zip(xt, p, strict=True)])
    widest = np.array([_widest_pair(xi, pi) for xi, pi in zip(xt, p, strict=True)])
    assert 0 < np.isnan(likeliest[:, 0]).sum() < len(xt)  # both cases occur
    differ = ~np.isclose(likeliest, widest, equal_nan=True).all(axis=1)
    assert differ.sum() > 5  # the two choices differ on some events
    pairs = {"likeliest": [likeliest], "widest": [widest], "both": [likeliest, widest]}
    hand = np.hstack([xt, _by_hand(xt, p, light_counts=True), *pairs[light_pair]])
    with torch.no_grad():
        got = model(torch.from_numpy(xt)).softmax(-1).numpy()
    np.testing.assert_allclose(got, event_clf.predict_proba(hand), atol=1e-6)
    # a run without pair columns keeps its state dict: no pair buffers
    assert "pair_cols" in model.state_dict()
    assert "pair_cols" not in NamedTracksGBT(7, 2, COLS).state_dict()


def _shape(trees) -> dict[str, int]:
    n_trees, max_nodes = trees.feature.shape
    return {"n_trees": int(n_trees), "max_nodes": int(max_nodes), "max_depth": trees.max_depth}


def test_early_track_trees_stop_on_held_out_events():
    """``early_tracks``: the track trees are scikit-learn's, fitted on the tracks of 90 % of
    the events and stopped by the tracks of the other 10 % (a whole event held out: no
    track of a stopping event is trained on), well before a generous ``max_iter``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y, kinds = _data(1500, 2)
    params = TRACK_PARAMS | {"max_iter": 300, "learning_rate": 0.3}
    model = NamedTracksGBT(7, 2, COLS)
    fit_named_tracks(model, x, y, kinds, params={"max_iter": 20}, track_params=params,
                     seed=0, early_tracks=True)  # fmt: skip
    # independently: rows in models.gbt's order (event-major, rank first), events held out
    # by the same seeded split of event ids
    rows = np.stack([np.column_stack([np.full(len(x), k), x[:, COLS[k]]])
                     for k in range(3)], axis=1).reshape(-1, 3)  # fmt: skip
    labels, event = kinds.reshape(-1), np.repeat(np.arange(len(x)), 3)
    keep = labels >= 0
    from sklearn.model_selection import GroupShuffleSplit

    a, b = next(GroupShuffleSplit(1, test_size=0.1, random_state=0).split(
        rows[keep], labels[keep], event[keep]))  # fmt: skip
    assert not set(event[keep][a]) & set(event[keep][b])  # whole events held out
    clf = HistGradientBoostingClassifier(**params, random_state=0, early_stopping=True)
    clf.fit(rows[keep][a], labels[keep][a], X_val=rows[keep][b], y_val=labels[keep][b])
    assert clf.n_iter_ < 300
    assert model.track.feature.shape[0] == clf.n_iter_ * N_KINDS
    t_rows = rows[keep][:50]
    with torch.no_grad():
        got = model.track.raw_scores(torch.from_numpy(t_rows)).softmax(-1).numpy()
    np.testing.assert_allclose(got, clf.predict_proba(t_rows), atol=1e-9)


def test_light_columns_count_light_products_by_hand():
    from attpc_classify.models.gbt import light_columns

    nan = float("nan")
    p_light = [[0.9, 0.6, 0.2], [0.7, nan, nan], [nan, nan, nan], [0.5, 0.3, 0.51]]
    p = torch.zeros(4, 3, N_KINDS, dtype=torch.float64)
    p[:, :, 0] = torch.tensor(p_light, dtype=torch.float64)
    p[torch.isnan(p[:, :, 0])] = nan  # a missing track: NaN in every kind
    # (light products above 0.5, the second-largest p(light), 0 for a missing track)
    want = [[2, 0.6], [1, 0.0], [0, 0.0], [1, 0.5]]
    np.testing.assert_allclose(light_columns(p).numpy(), want)
