"""gbt on tracks_v3 features end to end: simulate (with per-point truth) -> preprocess ->
train names the tracks -> the run reloads and classifies the raw run files as the image
file; refitting such trees is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from attpc_classify.cli import main

pytestmark = pytest.mark.heavy


def test_named_track_trees_train_reload_and_classify(tmp_path, capsys):
    from attpc_classify.checkpoint import load_run
    from attpc_classify.models.gbt import NamedTracksGBT
    from attpc_classify.predict import read_predictions

    sim, data, run = tmp_path / "sim", tmp_path / "train.h5", tmp_path / "run"
    assert main(["simulate", "--config", "tiny", "--events", "60", "--seed", "5",
                 "--events-per-file", "30", "--out", str(sim), "--quiet"]) == 0  # fmt: skip
    assert main(["preprocess", str(sim), "--config", "configs/prep/features.yaml", "--set",
                 "features=tracks_v3", "--out", str(data), "--quiet"]) == 0  # fmt: skip
    assert main(["train", "--config", "configs/train/gbt.yaml", "--data", str(data), "--out",
                 str(run), "model.max_iter=20", "--quiet"]) == 0  # fmt: skip
    model = load_run(run).model
    assert isinstance(model, NamedTracksGBT) and model.track.feature.shape[0] > 0
    raw, stored = tmp_path / "raw.csv", tmp_path / "stored.csv"
    assert main(["classify", str(run), *map(str, sorted(sim.glob("run_*.h5"))), "--out",
                 str(raw), "--quiet"]) == 0  # fmt: skip
    assert main(["classify", str(run), str(data), "--out", str(stored), "--quiet"]) == 0
    got, want = read_predictions(raw), read_predictions(stored)
    np.testing.assert_allclose(got["p_proton"], want["p_proton"], atol=1e-5)
    capsys.readouterr()
    argv = ["train", "--config", "configs/train/gbt.yaml", "--data", str(data), "--out",
            str(tmp_path / "refit"), f"model.init=run:{run}", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tracks_v3" in err
