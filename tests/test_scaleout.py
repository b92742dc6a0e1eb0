"""``preprocess`` and ``classify`` on a Dask LocalCluster against single-process runs.

One cluster of two one-thread worker processes, started by `open_client("local:2")`,
serves the whole module; the commands reach it through ``--scheduler ADDRESS``. The
inputs are Spyral files written by the real writer (tests/_formats.py), one of them with
a bad event. Identical counts, identical image arrays and byte-identical prediction CSVs
are required, including after a worker is killed in the middle of writing a part. The
tasks reach the cluster through Dask's own executor (`dask_executor`) and the task loop
of `data_prep.tasks`, as in the commands.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from _formats import make_events, write_spyral
from _scaleout_helpers import KillWorkerMidTask, flaky, refuse
from _synthetic import make_image_file

from attpc_classify.cli import main
from attpc_classify.scaleout import build_images_on, dask_executor, open_client, parse_scheduler
from data_prep.build import build_images
from data_prep.errors import InputError
from data_prep.images import ImageConfig
from data_prep.tasks import run_tasks

CONFIG = ImageConfig(views=("xy", "zy"), size=32, voxel_grid=0)
PREP = ["--views", "xy,zy", "--size", "32", "--set", "voxel_grid=0", "--events-per-task", "128",
        "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def client():
    with open_client("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """Three Spyral runs of 300 events; run 1's event 1005 has a NaN coordinate."""
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(11)
    paths = []
    for i in range(3):
        events = make_events(rng, 300, first_id=1000 * i, run=i)
        if i == 1:
            events[5].points[0, 2] = np.nan
        paths.append(write_spyral(root / f"run_{i:04d}.h5", events))
    return paths


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in ("images", "event_id", "run", "label")}


def _counts(line: str) -> str:
    """A summary line without its timing and output path."""
    return re.sub(r" to \S+|; \d+ file.*$", "", line)


def test_parse_scheduler(tmp_path) -> None:
    assert parse_scheduler("local:3").target == 3
    assert parse_scheduler("head:8786").target == "tcp://head:8786"
    assert parse_scheduler("tls://head:8786").target == "tls://head:8786"
    (tmp_path / "sched.json").write_text("{}")
    assert parse_scheduler(str(tmp_path / "sched.json")).kind == "file"
    for bad in ("local:0", "local:x", "", str(tmp_path / "missing.json")):
        with pytest.raises(InputError):
            parse_scheduler(bad)


def test_unreachable_scheduler_is_one_line_error() -> None:
    with (
        pytest.raises(InputError, match="cannot reach the Dask scheduler"),
        open_client("tcp://127.0.0.1:9", timeout_s=1),
    ):
        pass


@pytest.mark.heavy
def test_executor_retries_errors_but_never_bad_input(client, tmp_path) -> None:
    def run(fn, path: Path, *args, retries: int) -> list:
        got: list = []
        ex = dask_executor(client, retries)
        run_tasks(ex, fn, [str(path)], *args, on_result=lambda task, r: got.append(r))
        return got

    assert run(flaky, tmp_path / "a", 2, retries=2) == [3]  # 2 failures, 1 success
    with pytest.raises(OSError, match="flaky"):
        run(flaky, tmp_path / "b", 5, retries=1)
    assert len((tmp_path / "b").read_text().splitlines()) == 2  # tried 1 + 1 times
    with pytest.raises(InputError, match="event 3: bad event"):
        run(refuse, tmp_path / "c", retries=2)
    assert len((tmp_path / "c").read_text().splitlines()) == 1  # bad input: never retried
    with pytest.raises(InputError, match="retries must be >= 0"):
        dask_executor(client, -1)


@pytest.mark.heavy
def test_preprocess_on_cluster_matches_single_process(client, runs, tmp_path, capsys) -> None:
    local = build_images(runs, tmp_path / "one.h5", CONFIG, skip_bad=True, events_per_task=128)
    out = tmp_path / "dask.h5"
    argv = ["preprocess", *map(str, runs), "--out", str(out), *PREP, "--skip-bad",
            "--scheduler", client.scheduler.address]  # fmt: skip
    assert main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert _counts(line) == _counts(local.describe())
    assert "899 events written" in line and "skipped 1 (1 non-finite values)" in line
    one, two = _arrays(tmp_path / "one.h5"), _arrays(out)
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask.h5", "one.h5"]  # no parts


@pytest.mark.heavy
def test_bad_event_on_cluster_is_one_line_and_exit_2(client, runs, tmp_path, capsys) -> None:
    out = tmp_path / "dask.h5"
    argv = ["preprocess", *map(str, runs), "--out", str(out), *PREP,
            "--scheduler", client.scheduler.address]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        f"{runs[1]}: event 1005: NaN or infinite x, y, z or charge"
    )
    assert not out.exists()


def test_long_lived_workers_never_read_a_rewritten_file_through_an_old_reader(tmp_path) -> None:
    # Dask workers keep run_task's reader cache between runs; a rewritten input must be
    # opened afresh (the cache key holds the file's identity), here checked in-process.
    from data_prep.build import _cached_reader, close_cached_readers

    path = write_spyral(tmp_path / "run.h5", make_events(np.random.default_rng(0), 5))
    first = _cached_reader(str(path), "spyral", {})
    assert _cached_reader(str(path), "spyral", {}) is first  # reused while unchanged
    # rewritten as writers here do (simulate, preprocess): a new file renamed into place
    tmp = write_spyral(tmp_path / "new.h5", make_events(np.random.default_rng(1), 7, first_id=50))
    os.replace(tmp, path)
    second = _cached_reader(str(path), "spyral", {})
    assert second is not first and len(second) == 7
    close_cached_readers()


@pytest.mark.heavy
def test_worker_killed_mid_task_loses_and_duplicates_nothing(client, runs, tmp_path) -> None:
    out = tmp_path / "dask.h5"
    marker = tmp_path / "killed.txt"
    parts = out.with_name(f".{out.name}.parts")
    client.register_plugin(KillWorkerMidTask(str(marker), str(parts)))
    try:
        summary = build_images_on(
            client.scheduler.address, runs, out, CONFIG, skip_bad=True, events_per_task=128
        )
    finally:
        client.unregister_worker_plugin(KillWorkerMidTask.name)
    assert "while writing ['.part_" in marker.read_text()  # killed with a half-written part
    local = build_images(runs, tmp_path / "one.h5", CONFIG, skip_bad=True, events_per_task=128)
    assert (summary.written, summary.skipped_by_reason) == (local.written, local.skipped_by_reason)
    one, two = _arrays(tmp_path / "one.h5"), _arrays(out)
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)
    assert not parts.exists()


@pytest.mark.heavy
def test_classify_on_cluster_matches_single_process(client, runs, tmp_path, capsys) -> None:
    train = make_image_file(tmp_path / "train.h5", n_per_class=20, seed=2)
    run = tmp_path / "cnn"
    argv = ["train", "--data", str(train), "--out", str(run), "--quiet", "model.name=cnn",
            "model.width=4", "model.depth=2", "optim.epochs=1", "precision=fp32"]  # fmt: skip
    assert main(argv) == 0
    inputs = [*map(str, runs), str(train)]  # point clouds and an image file
    common = ["classify", str(run), *inputs, "--skip-bad", "--quiet", "--batch-size", "64"]
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "one.csv")]) == 0
    single = capsys.readouterr().out.splitlines()
    dask = ["--scheduler", client.scheduler.address, "--events-per-task", "100"]
    assert main([*common, "--out", str(tmp_path / "dask.csv"), *dask]) == 0
    lines = capsys.readouterr().out.splitlines()
    # same counts (first line without timing), the same per-run lines and skipped line;
    # the same bytes on disk
    assert lines[0].split(" in ")[0] == single[0].split(" in ")[0]
    assert lines[1:-1] == single[1:-1]
    assert [s for s in single if s.startswith("  run ")] == single[1:-2]  # one per run
    assert single[-2] == "skipped 1 bad event (non-finite values 1)"
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert len((tmp_path / "one.csv").read_text().splitlines()) == 1 + 899 + 60
    # without --skip-bad: the bad event stops the run with its one line, nothing written
    argv = ["classify", str(run), *inputs, "--quiet", "--out", str(tmp_path / "bad.csv"), *dask]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run_0001.h5: event 1005:" in err[0]
    assert not (tmp_path / "bad.csv").exists()


@pytest.mark.heavy
def test_proton_threshold_applies_on_the_cluster(client, runs, tmp_path) -> None:
    """A run with a validation-chosen proton threshold labels the same on the cluster as in
    one process, and each label follows the rule recomputed from the probabilities."""
    from attpc_classify.checkpoint import load_run
    from attpc_classify.predict import read_predictions

    train = make_image_file(tmp_path / "train.h5", n_per_class=40, seed=0)
    run = tmp_path / "cnn"
    argv = ["train", "--data", str(train), "--out", str(run), "--quiet", "model.name=cnn",
            "model.width=4", "model.depth=2", "optim.epochs=2", "precision=fp32",
            "proton_threshold=val_f1"]  # fmt: skip
    assert main(argv) == 0
    info = load_run(run).info
    threshold = info.decision["proton_threshold"]
    common = ["classify", str(run), str(runs[0]), "--quiet"]
    assert main([*common, "--out", str(tmp_path / "one.csv")]) == 0
    dask = ["--scheduler", client.scheduler.address, "--events-per-task", "100"]
    assert main([*common, "--out", str(tmp_path / "dask.csv"), *dask]) == 0
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()

    got = read_predictions(tmp_path / "dask.csv")
    names = list(info.output_names)
    p = np.stack([got[f"p_{n}"] for n in names], axis=1)
    others = [i for i, n in enumerate(names) if n != "proton"]
    # the rule by hand: proton when p(proton) >= threshold, else the likeliest other class
    rest = np.array(names)[others][np.argmax(p[:, others], axis=1)]
    want = np.where(p[:, names.index("proton")] >= threshold, "proton", rest)
    assert (got["label"].astype(str) == want).all()
    argmax = np.array(names)[np.argmax(p, axis=1)]
    assert (want != argmax).any(), "threshold equals argmax here: the test shows nothing"
