"""scripts/sim_to_real.py: the page's short summary and its failure sentences read the
measured values right (counted by hand on made-up values)."""

from __future__ import annotations

from _scripts import load_script


def _values(s2r) -> None:
    trees, cnn = s2r.TREES_LABEL, s2r.CNN_LABEL
    s2r.VALUES.clear()
    s2r.VALUES.update({
        (trees, "stand-in"): (0.93, 0.94),
        (trees, "randomised (in-simulation)"): (0.91, 0.84),  # proton met, macro-F1 not
        (trees, "nominal, gain_x3"): (0.89, 0.90),  # proton F1 short
        (trees, "nominal, tilt_6.5deg"): (0.95, 0.96),
        (cnn, "stand-in"): (0.71, 0.69),
        ("trees refitted with 250 stand-in labels", "stand-in"): (0.92, 0.93),
        ("trees refitted with 1000 stand-in labels", "stand-in"): (0.94, 0.95),
    })  # fmt: skip


def test_in_short_counts_the_sets_met_and_the_knob_range() -> None:
    s2r = load_script("sim_to_real")
    _values(s2r)
    text = s2r.in_short({"train": 6000})
    # met: stand-in and tilt (2 of 4); the knobs' range is 0.89-0.95; the best refit 0.94
    assert "met here on 2 of 4 test sets" in text
    assert "0.89-0.95 on the nominal simulation" in text
    assert "at best 0.94 (trees refitted with 1000 stand-in labels)" in text
    assert "0.93 zero-shot on the stand-in, 0.91 on fresh randomised events" in text
    assert "CNN on the robust images: 0.71" in text
    assert "(6,000 randomised events" in text
    # 0.94 after adaptation and 0.91 in simulation: neither target met here
    assert ">= 0.95 after adaptation is not met here" in text
    assert ">= 0.98 in simulation is not met here" in text
    s2r.VALUES[("trees refitted with 1000 stand-in labels", "stand-in")] = (0.96, 0.95)
    assert ">= 0.95 after adaptation is met here" in s2r.in_short({"train": 6000})


def test_in_short_without_trees_says_so() -> None:
    s2r = load_script("sim_to_real")
    s2r.VALUES.clear()
    assert s2r.in_short({"train": 2000}) == "(no tree results in this run)"


def test_failures_names_this_configs_training_size() -> None:
    s2r = load_script("sim_to_real")
    _values(s2r)
    text = s2r.failures(2000)
    assert "(2,000 events here against the recommended 180,000, README)" in text
    # the trees' zero-shot sentence: 2 of 4 met, the two misses named with their values
    assert "met on 2 of 4 test sets" in text
    assert "nominal, gain_x3 (0.89 / 0.90)" in text
