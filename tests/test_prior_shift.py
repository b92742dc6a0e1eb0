"""EM prior correction (scripts/prior_shift.py) against a mix we set by hand."""

from __future__ import annotations

import numpy as np
from _scripts import load_script
from scipy.stats import norm


def test_em_recovers_the_mix_of_calibrated_probabilities():
    # two unit Gaussians at -1 and +1; exact posteriors for a 50/50 training prior,
    # applied to a run drawn 20/80: EM must land on 20/80, the argmax fractions do not
    rng = np.random.default_rng(0)
    y = (rng.random(20000) < 0.8).astype(int)
    x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
    like = np.stack([norm.pdf(x, -1.0), norm.pdf(x, 1.0)], axis=1)
    proba = like / like.sum(1, keepdims=True)
    pi, q = load_script("prior_shift").em_prior(proba, np.array([0.5, 0.5]))
    assert abs(pi[1] - 0.8) < 0.01
    argmax = (proba.argmax(1) == 1).mean()
    assert abs(argmax - 0.8) > 0.03  # the naive count is biased towards 1/2
    # the corrected posteriors are Bayes' rule with the found prior
    w = like * pi
    np.testing.assert_allclose(q, w / w.sum(1, keepdims=True), rtol=1e-6)
