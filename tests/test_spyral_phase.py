"""ClassifyPhase in a real Spyral Pipeline on a small simulated workspace.

The workspace's ``Pointcloud/run_000N.h5`` are files of our simulator (Spyral's
point-cloud layout plus labels), PointcloudPhase is inactive (its artifacts exist), and
``start_pipeline`` runs ClassifyPhase then Spyral's own ClusterPhase on two processes.
The predictions are checked against ``attpc-classify classify`` on the same files and
against the run's decision rule worked out by hand; the selected file against the
predictions and the source file, dataset by dataset; ClusterPhase's output against the
selection. A fourth run holds a bad event: it fails alone, with a one-line message in
Spyral's log, and the other runs go on.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from _synthetic import train_tiny_cnn
from spyral import (
    DEFAULT_MAP,
    ClusterParameters,
    ClusterPhase,
    ContinuityJoinParameters,
    DetectorParameters,
    FribParameters,
    GetParameters,
    HdbscanParameters,
    PadParameters,
    Pipeline,
    PointcloudPhase,
    start_pipeline,
)

from attpc_classify.checkpoint import set_decision
from attpc_classify.cli import main
from attpc_classify.predict import read_predictions
from attpc_classify.spyral_phase import PREDICTIONS, ClassifyPhase
from data_prep.errors import InputError
from data_prep.events import CLASS_NAMES

pytestmark = [
    pytest.mark.heavy,
    # Spyral's own spyral_warn calls Logger.warn
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning"),
]

RUNS = (1, 2, 3)
BAD_RUN = 4
PREP = {"views": ["xy", "zy"], "size": 32, "voxel_grid": 0}

DET = DetectorParameters(
    magnetic_field=1.68, electric_field=9500.0, detector_length=1000.0,
    beam_region_radius=25.0, micromegas_time_bucket=10.0, window_time_bucket=560.0,
    get_frequency=12.5, garfield_file_path=Path("unused"), do_garfield_correction=False,
)  # fmt: skip


def cluster_parameters(min_cloud_size: int = 50) -> ClusterParameters:
    """Spyral's example clustering, with continuity joining: its overlap joining raises
    TypeError in attpc-spyral 1.1.2 as soon as two clusters merge (LabeledCloud built
    without its direction in ``join_clusters_overlap_step``)."""
    return ClusterParameters(
        min_cloud_size=min_cloud_size,
        hdbscan_parameters=HdbscanParameters(
            min_points=3,
            min_size_scale_factor=0.05,
            min_size_lower_cutoff=10,
            cluster_selection_epsilon=10.0,
        ),
        tripclust_parameters=None,
        overlap_join=None,
        continuity_join=ContinuityJoinParameters(join_radius_fraction=0.4, join_z_fraction=0.4),
        direction_threshold=0.5,
        outlier_scale_factor=0.05,
    )


#: ClusterPhase in the fast test reads every selected cloud and writes its event group,
#: but clusters none (clouds below min_cloud_size): clustering compiles Spyral's numba
#: circle fit in every process (no cache; 28 s measured here), so it runs only in the
#: slow variant.
NO_CLUSTERING = 10**9


def pointcloud_phase() -> PointcloudPhase:
    """Spyral's first phase with its documented example settings (inactive here)."""
    pads = PadParameters(DEFAULT_MAP, DEFAULT_MAP, DEFAULT_MAP)
    get = GetParameters(20.0, 50.0, 20.0, 50.0, 40.0)
    frib = FribParameters(100.0, 50.0, 20.0, 500.0, 100.0, 1100, 1)
    return PointcloudPhase(get, frib, DET, pads)


@pytest.fixture
def spyral_logs():
    """start_pipeline adds file handlers to the "spyral" logger: close them afterwards."""
    logger = logging.getLogger("spyral")
    before, level = list(logger.handlers), logger.level
    yield
    for handler in logger.handlers[:]:
        if handler not in before:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """24 simulated events in run_0001..0003, a tiny CNN trained on them, and its
    proton threshold set to the median p(proton) so both labels occur."""
    root = tmp_path_factory.mktemp("spyral")
    sim, images, run = root / "sim", root / "images.h5", root / "run"
    assert main(["simulate", "--config", "tiny", "--events", "24", "--events-per-file", "8",
                 "--first-run", "1", "--seed", "5", "--out", str(sim), "--quiet"]) == 0  # fmt: skip
    prep = root / "prep.yaml"
    prep.write_text(json.dumps(PREP))  # JSON is YAML
    argv = ["preprocess", str(sim), "--config", str(prep), "--out", str(images), "--quiet"]
    assert main(argv) == 0
    train_tiny_cnn(images, run)
    first = root / "first.h5"
    assert main(["classify", str(run), str(sim), "--out", str(first), "--quiet"]) == 0
    threshold = float(np.median(read_predictions(first)["p_proton"]))
    set_decision(run, {"rule": "proton_threshold", "proton_threshold": threshold,
                       "chosen_on": "test: median p(proton) of the simulated events"})  # fmt: skip
    return {"root": root, "sim": sim, "run": run, "threshold": threshold}


def _workspace(sim: dict, path: Path) -> tuple[Path, int]:
    """Pointcloud/ with the simulated runs, and run 4: run 1 with a NaN in one event."""
    clouds = path / "Pointcloud"
    clouds.mkdir(parents=True)
    for r in RUNS:
        shutil.copy(sim["sim"] / f"run_{r:04d}.h5", clouds)
    bad = clouds / f"run_{BAD_RUN:04d}.h5"
    shutil.copy(sim["sim"] / "run_0001.h5", bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["run"] = BAD_RUN
        bad_event = int(f["cloud"].attrs["min_event"]) + 3
        data = f[f"cloud/cloud_{bad_event}"]
        data[1, 0] = np.nan
    return clouds, bad_event


def _logs(workspace: Path) -> str:
    return "".join(p.read_text() for p in sorted((workspace / "log").glob("log_proc*.txt")))


@pytest.mark.parametrize(
    "min_cloud_size", [NO_CLUSTERING, pytest.param(50, marks=pytest.mark.slow)]
)
def test_pipeline_classifies_selects_and_clusters(
    sim, tmp_path, spyral_logs, capsys, min_cloud_size
):
    ws = tmp_path / "workspace"
    clouds, bad_event = _workspace(sim, ws)
    classify = ClassifyPhase(sim["run"], keep=["proton"], device="cpu")
    pipe = Pipeline(
        [pointcloud_phase(), classify, ClusterPhase(cluster_parameters(min_cloud_size), DET)],
        [False, True, True],
        ws,
        clouds,  # no GET traces: the point clouds are the runs to process
    )
    start_pipeline(pipe, RUNS[0], BAD_RUN, n_procs=2, disable_display=True)
    assert "Pipeline successfully validated" in capsys.readouterr().out

    # `attpc-classify classify` on the same files: the independent path.
    ref_path = tmp_path / "reference.h5"
    argv = ["classify", str(sim["run"]), *[str(clouds / f"run_{r:04d}.h5") for r in RUNS]]
    assert main([*argv, "--out", str(ref_path), "--quiet"]) == 0
    ref = read_predictions(ref_path)
    n_kept = n_clusters = 0
    for r in RUNS:
        got = read_predictions(ws / "Classify" / f"run_{r:04d}.h5")
        assert list(got) == ["run", "event_id", "label", "p_proton", "p_carbon", "p_other"]
        mine = ref["run"] == r
        np.testing.assert_array_equal(got["run"], np.full(mine.sum(), r))
        np.testing.assert_array_equal(got["event_id"], ref["event_id"][mine])
        np.testing.assert_array_equal(got["label"], ref["label"][mine])
        proba = np.stack([got[f"p_{c}"] for c in CLASS_NAMES], axis=1)
        ref_proba = np.stack([ref[f"p_{c}"][mine] for c in CLASS_NAMES], axis=1)
        np.testing.assert_allclose(proba, ref_proba, atol=1e-6)
        # The run's rule, by hand: proton iff p(proton) >= threshold, else the likelier other.
        other = np.array(CLASS_NAMES)[1 + proba[:, 1:].argmax(1)]
        by_hand = np.where(proba[:, 0] >= sim["threshold"], "proton", other)
        np.testing.assert_array_equal(got["label"], by_hand)

        # The selected file: PointcloudPhase's layout, exactly the proton events, as stored.
        protons = got["event_id"][got["label"] == "proton"]
        n_kept += len(protons)
        with (
            h5py.File(clouds / f"run_{r:04d}.h5") as src,
            h5py.File(ws / "Classify" / f"run_{r:04d}_pointcloud.h5") as sel,
        ):
            assert list(sel) == ["cloud"]
            assert dict(sel["cloud"].attrs) == dict(src["cloud"].attrs)
            assert set(sel["cloud"]) == {f"cloud_{e}" for e in protons}
            for name in sel["cloud"]:
                a, b = sel["cloud"][name], src["cloud"][name]
                assert a.dtype == b.dtype and a.chunks == b.chunks
                np.testing.assert_array_equal(a[()], b[()])
                assert dict(a.attrs) == dict(b.attrs)
        # Spyral's ClusterPhase ran on the selection, and only on it.
        with h5py.File(ws / "Cluster" / f"run_{r:04d}.h5") as f:
            assert set(f["cluster"]) == {f"event_{e}" for e in protons}
            n_clusters += sum(int(g.attrs["nclusters"]) for g in f["cluster"].values())
    assert 0 < n_kept < len(ref["event_id"])  # the selection selects
    assert (n_clusters > 0) == (min_cloud_size != NO_CLUSTERING)

    # Run 4 failed alone: one line naming the file and the event, no output, no clusters.
    logs = _logs(ws)
    assert f"{clouds / 'run_0004.h5'}: event {bad_event}: " in logs
    assert "NaN or infinite" in logs
    assert not list((ws / "Classify").glob("run_0004*"))
    assert not (ws / "Cluster" / "run_0004.h5").exists()
    assert "Phase Cluster complete for run 4" not in logs
    assert all(f"Phase Cluster complete for run {r}" in logs for r in RUNS)


def test_progress_messages_fill_spyral_bars(sim, tmp_path):
    """Spyral's parent resets a bar to ``total`` on a new (phase, run), then adds the
    increments: they must add up to the total, for a run of more and fewer than 100."""
    ws = tmp_path / "ws"
    clouds, _ = _workspace(sim, ws)
    (ws / "Classify").mkdir()
    phase = ClassifyPhase(sim["run"], batch_size=3, device="cpu")
    payload = pointcloud_phase().construct_artifact(_Result(1), ws)

    q = Queue()
    stale = ws / "Classify" / "run_0001_pointcloud.h5"  # a keep=... pass with another model
    stale.write_text("earlier selection")
    result = phase.run(payload, ws, q, np.random.default_rng(0))
    assert not stale.exists()
    assert result.successful
    n = len(read_predictions(result.artifacts[PREDICTIONS])["event_id"])
    assert {(m.phase, m.run, m.total) for m in q} == {("Classify", 1, n)}
    assert sum(m.increment for m in q) == n and len(q) >= 3  # per batch of 3
    assert result.artifacts["pointcloud"] == clouds / "run_0001.h5"  # no keep: handed on


class Queue(list):
    """Spyral's ``SimpleQueue`` as the phase uses it (``put``), kept for inspection."""

    put = list.append


def _Result(run: int):
    from spyral.core.schema import PhaseResult

    return PhaseResult({}, True, run)


def test_missing_run_or_unknown_label_stops_before_any_process(sim, tmp_path, spyral_logs, capsys):
    ws = tmp_path / "ws"
    clouds, _ = _workspace(sim, ws)
    unknown = f"{sim['run']}: keep ['pion'] is not a label of this run"
    no_map = tmp_path / "pad_electronics.csv"
    for phase, message in [
        (ClassifyPhase(tmp_path / "nope"), f"{tmp_path / 'nope'}: run directory not found"),
        (ClassifyPhase(sim["run"], keep="pion"), unknown),
        (ClassifyPhase(sim["run"], pad_electronics=no_map),
         f"{no_map}: cannot read the electronics map"),
    ]:  # fmt: skip
        pipe = Pipeline([pointcloud_phase(), phase], [False, True], ws, clouds)
        start_pipeline(pipe, 1, 3, n_procs=1, disable_display=True)
        out = capsys.readouterr()
        assert "Pipeline validation failed!" in out.out
        assert f"error: ClassifyPhase: {message}" in out.err
        assert not list((ws / "Classify").iterdir())  # no run was started


def test_the_electronics_map_reaches_the_reader(sim, tmp_path):
    """``pad_electronics`` is classify's reader option: the phase's table equals
    ``classify --pad-electronics`` on the same file (a map that moves every chip)."""
    from attpc_classify.spyral_phase import classify_pointcloud

    rows = [(k // 16, (k // 4) % 4, k % 4, p // 160, p) for p in range(10240) for k in [p % 160]]
    electronics = tmp_path / "map.csv"
    electronics.write_text("cobo,asad,aget,aget channel,pad\n"
                           + "\n".join(",".join(map(str, r)) for r in rows))  # fmt: skip
    cloud = sim["sim"] / "run_0001.h5"
    classify_pointcloud(sim["run"], cloud, tmp_path / "phase.h5", device="cpu",
                        pad_electronics=electronics)  # fmt: skip
    assert main(["classify", str(sim["run"]), str(cloud), "--out", str(tmp_path / "cli.h5"),
                 "--quiet", "--pad-electronics", str(electronics)]) == 0  # fmt: skip
    got, want = read_predictions(tmp_path / "phase.h5"), read_predictions(tmp_path / "cli.h5")
    np.testing.assert_array_equal(got["event_id"], want["event_id"])
    np.testing.assert_allclose(got["p_proton"], want["p_proton"])


def test_chips_learned_from_the_run_reach_the_reader(sim, tmp_path):
    """``learn_chips``: a copy of run 1 with 3 chips of a random wiring firing (about 5
    times each, scripts/chip_check.py) is read with the map ``attpc-classify chips``
    learns from it: the phase writes that map beside its table, and its table equals
    ``classify --learn-chips`` and ``classify --pad-electronics`` with the map."""
    from _scripts import load_script

    from attpc_classify.spyral_phase import classify_pointcloud

    chip_check = load_script("chip_check")
    wiring = list(np.random.default_rng(2).permutation(10240).reshape(160, 64)[:3])
    cloud = tmp_path / "run_0001.h5"
    chip_check.add_fires(sim["sim"] / "run_0001.h5", cloud, wiring, np.random.default_rng(0), 2.0)
    assert main(["chips", str(cloud), "--out", str(tmp_path / "chips.csv")]) == 0
    learned = (tmp_path / "chips.csv").read_text()
    assert learned.count("\n0,0,") >= 2 * 48  # at least two chips learned
    classify_pointcloud(sim["run"], cloud, tmp_path / "phase.h5", device="cpu", learn_chips=True)
    assert (tmp_path / "phase_chips.csv").read_text() == learned
    for extra in (["--learn-chips"], ["--pad-electronics", str(tmp_path / "chips.csv")]):
        out = tmp_path / f"cli{len(extra)}.h5"
        assert main(["classify", str(sim["run"]), str(cloud), "--out", str(out), "--quiet",
                     *extra]) == 0  # fmt: skip
        got, want = read_predictions(tmp_path / "phase.h5"), read_predictions(out)
        np.testing.assert_array_equal(got["event_id"], want["event_id"])
        np.testing.assert_allclose(got["p_proton"], want["p_proton"])
    assert (tmp_path / "cli1_chips.csv").read_text() == learned
    with pytest.raises(InputError, match="not both"):
        ClassifyPhase(sim["run"], pad_electronics=tmp_path / "chips.csv", learn_chips=True)


def test_health_against_the_runs_report(sim, tmp_path, caplog):
    """With ``RUN/health.json`` (the health of run 2) beside the model, the phase
    measures a copy of run 1 whose rule chips fire twice per event against it: the
    report is written beside the table and names the chip fires; without the check,
    nothing is written."""
    from _scripts import load_script

    from attpc_classify.spyral_phase import classify_pointcloud

    run = shutil.copytree(sim["run"], tmp_path / "run")
    assert main(["health", str(sim["sim"] / "run_0002.h5"), "--model", str(run),
                 "--out", str(run / "health.json")]) == 0  # fmt: skip
    blocks = [np.arange(64 * c, 64 * c + 64) for c in range(20, 40)]
    cloud = tmp_path / "run_0001.h5"
    load_script("chip_check").add_fires(
        sim["sim"] / "run_0001.h5", cloud, blocks, np.random.default_rng(0), 2.0
    )
    done = classify_pointcloud(run, cloud, tmp_path / "phase.h5", device="cpu")
    assert done.health == tmp_path / "phase_health.json"
    assert "chip_fires_per_event" in [name for name, *_ in done.outside]
    report = json.loads(done.health.read_text())
    assert [f["path"] for f in report["files"]] == [str(cloud)]
    assert len(report["reference"]["files"]) == 1
    classify_pointcloud(run, cloud, tmp_path / "off.h5", device="cpu", check_health=False)
    assert not (tmp_path / "off_health.json").exists()
    # a file whose health cannot be measured: a warning, the calls stand
    from _formats import write_spyral

    from data_prep.events import Event

    empty = write_spyral(
        tmp_path / "run_0009.h5", [Event(9, i, np.zeros((0, 4))) for i in range(3)]
    )
    with caplog.at_level(logging.WARNING, logger="spyral.attpc_classify"):
        done = classify_pointcloud(run, empty, tmp_path / "empty.h5", device="cpu", skip_bad=True)
    assert done.health is None and (tmp_path / "empty.h5").exists()
    assert not (tmp_path / "empty_health.json").exists()
    assert f"health not measured: {empty}: no readable event to measure" in caplog.text


def test_phase_pickles_small_for_spawn(sim):
    """Spyral's docs start processes with "spawn": the phase travels pickled, no model."""
    phase = ClassifyPhase(sim["run"], keep=["proton"])
    phase.create_assets(Path("."))
    blob = pickle.dumps(phase)
    assert len(blob) < 4096
    back = pickle.loads(blob)
    assert back.keep == ("proton",) and back.problem is None and back.run_dir == phase.run_dir


def test_a_file_that_is_not_a_point_cloud_fails_its_run_alone(sim, tmp_path, caplog):
    """One line naming the file in Spyral's log; the run marked failed with its paths
    kept (ClusterPhase reads them before ``successful``); an earlier pass's outputs gone."""
    ws = tmp_path / "ws"
    (ws / "Classify").mkdir(parents=True)
    wrong = ws / "Pointcloud" / "run_0001.h5"
    wrong.parent.mkdir()
    with h5py.File(wrong, "w") as f:
        f["traces"] = np.zeros((2, 512))
    stale = [ws / "Classify" / "run_0001.h5", ws / "Classify" / "run_0001_pointcloud.h5"]
    for path in stale:
        path.write_text("from an earlier pass")
    phase = ClassifyPhase(sim["run"], keep=["proton"], device="cpu")
    payload = pointcloud_phase().construct_artifact(_Result(1), ws)
    with caplog.at_level(logging.INFO, logger="spyral"):
        result = phase.run(payload, ws, Queue(), np.random.default_rng(0))
    assert not result.successful
    assert result.artifacts == {"pointcloud": stale[1], PREDICTIONS: stale[0]}
    assert not any(p.exists() for p in stale)
    assert wrong.exists()  # the input is never touched
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.name.startswith("spyral.")  # lands in Spyral's per-process log files
    assert record.getMessage() == (
        f"ClassifyPhase failed for run 1: {wrong}: no group 'cloud' (not a Spyral point-cloud file)"
    )
    # Spyral's own next phase skips the failed run instead of stopping the process
    cluster = ClusterPhase(cluster_parameters(NO_CLUSTERING), DET).run(result, ws, [], None)
    assert not cluster.successful


def test_the_documented_script_builds_a_valid_pipeline():
    """docs/spyral.md's script, as printed, builds a pipeline Spyral validates."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "spyral.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"__name__": "spyral_doc"}  # not __main__: builds, does not start
    exec(compile(code, "docs/spyral.md", "exec"), namespace)
    pipe = namespace["pipe"]
    assert [type(p).__name__ for p in pipe.phases] == [
        "PointcloudPhase", "ClassifyPhase", "ClusterPhase"
    ]  # fmt: skip
    assert pipe.phases[1].keep == ("proton",)
    assert all(pipe.validate().values())


def test_skip_bad_drops_the_bad_event_and_counts_it(sim, tmp_path, caplog):
    ws = tmp_path / "ws"
    clouds, bad_event = _workspace(sim, ws)
    (ws / "Classify").mkdir()
    phase = ClassifyPhase(sim["run"], keep=["proton"], skip_bad=True, device="cpu")
    payload = pointcloud_phase().construct_artifact(_Result(BAD_RUN), ws)
    with caplog.at_level(logging.INFO, logger="spyral"):
        result = phase.run(payload, ws, Queue(), np.random.default_rng(0))
    assert result.successful
    got = read_predictions(result.artifacts[PREDICTIONS])
    with h5py.File(clouds / "run_0004.h5") as f:
        ids = sorted(int(k[6:]) for k in f["cloud"] if k.startswith("cloud_"))
    assert got["event_id"].tolist() == [e for e in ids if e != bad_event]
    with h5py.File(result.artifacts["pointcloud"]) as f:
        assert f"cloud_{bad_event}" not in f["cloud"]
    assert "skipped 1 bad event" in caplog.text
