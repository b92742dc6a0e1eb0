"""Train -> evaluate -> classify end to end through the CLI, prediction files, mismatches.

One tiny CNN is trained once per session on the synthetic image file (a few seconds) and
shared by every test here; the point-cloud files are written by the real format writers
of tests/_formats.py from the same clouds, so classifying them must reproduce, event for
event, the predictions made from the image file (the training-time transform, exactly).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import threading
from concurrent.futures import ProcessPoolExecutor

import h5py
import numpy as np
import pytest
from _formats import write_root, write_spyral
from _synthetic import SMALL_CONFIG, make_events, make_image_file, train_tiny_cnn

from attpc_classify.cli import main
from attpc_classify.predict import PredictionWriter, prediction_columns, read_predictions
from data_prep.events import CLASS_NAMES, Event
from data_prep.images import ImageConfig

THREE = ["run", "event_id", "label", "p_proton", "p_carbon", "p_other"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-class CNN run trained 2 epochs on 3 x 40 synthetic events, and a test file."""
    root = tmp_path_factory.mktemp("classify")
    train = make_image_file(root / "train.h5", n_per_class=40, seed=0)
    test = make_image_file(root / "test.h5", n_per_class=20, seed=1, unknown=3)
    run = root / "runs" / "cnn"
    train_tiny_cnn(train, run)
    return {"root": root, "run": run, "train": train, "test": test}


def _raw_events(seed: int, n_per_class: int) -> list[Event]:
    """The clouds `make_image_file(seed=...)` projects, as `Event`s with ids 0..N-1."""
    clouds, labels = make_events(n_per_class, np.random.default_rng(seed))
    return [
        Event(run=7, event_id=i, points=pts, label=int(lab))
        for i, (pts, lab) in enumerate(zip(clouds, labels, strict=True))
    ]


def test_prediction_writers_have_exactly_the_required_columns(tmp_path):
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    for name in ("p.csv", "p.h5"):
        with PredictionWriter(tmp_path / name, CLASS_NAMES) as w:
            w.append(np.array([3, 3]), np.array([10, 11]), proba)
            w.commit()
        got = read_predictions(tmp_path / name)
        assert list(got) == THREE
        assert got["label"].tolist() == ["proton", "other"]
        assert got["event_id"].tolist() == [10, 11]
        np.testing.assert_allclose(got["p_other"], [0.1, 0.8], atol=1e-6)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == ",".join(THREE)
    with h5py.File(tmp_path / "p.h5") as f:
        assert set(f) == set(THREE) and f["label"].asstr()[0] == "proton"
    assert prediction_columns(("proton", "rest"))[3:] == ["p_proton", "p_rest"]
    # an aborted writer leaves nothing, not even its temporary file
    with PredictionWriter(tmp_path / "gone.csv", CLASS_NAMES) as w:
        w.append(np.array([1]), np.array([1]), proba[:1])
    assert list(tmp_path.glob("*gone*")) == []


def test_train_evaluate_classify_end_to_end(trained, capsys):
    run, test = trained["run"], trained["test"]
    assert main(["evaluate", str(run), "--data", str(test), "--n-boot", "200", "--quiet"]) == 0
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert metrics["n_labelled"] == 60 and metrics["n_unlabelled"] == 3
    multi = metrics["tasks"]["multiclass"]
    lo, hi = multi["macro_f1"]["ci95"]
    assert lo <= multi["macro_f1"]["value"] <= hi
    assert "binary" in metrics["tasks"]  # a 3-class run is also scored proton vs rest
    figures = {p.name for p in (run / "eval" / "test").glob("*.png")}
    assert {"confusion_multiclass.png", "roc_pr.png", "learning_curves.png"} <= figures

    out = trained["root"] / "pred.csv"
    assert main(["classify", str(run), str(test), "--out", str(out), "--quiet"]) == 0
    got = read_predictions(out)
    assert list(got) == THREE and len(got["event_id"]) == 63
    np.testing.assert_allclose(got["p_proton"] + got["p_carbon"] + got["p_other"], 1, atol=1e-4)
    assert "63 events classified" in capsys.readouterr().out


def test_evaluate_several_files_matches_one_call_per_file(trained, tmp_path, capsys):
    run, test = trained["run"], trained["test"]
    other = make_image_file(tmp_path / "other.h5", n_per_class=15, seed=5)
    base = ["--n-boot", "50", "--no-figures", "--quiet"]
    singles = {}
    for f in (test, other):
        out = tmp_path / "single" / f.stem
        assert main(["evaluate", str(run), "--data", str(f), "--out", str(out), *base]) == 0
        singles[f.stem] = json.loads((out / "metrics.json").read_text())
    both = tmp_path / "both"
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(test), str(other), "--out", str(both),
                 *base]) == 0  # fmt: skip
    out = capsys.readouterr().out
    for f, single in zip((test, other), singles.values(), strict=True):
        got = json.loads((both / f.stem / "metrics.json").read_text())
        assert got["n_labelled"] == single["n_labelled"]
        assert got["tasks"] == single["tasks"]  # same model, same bootstrap seed
        # the closing side-by-side line of this file, from the single call's numbers
        f1 = single["tasks"]["binary"]["per_class"]["proton"]["f1"]
        lo, hi = f1["ci95"]
        assert f"  {f}: {single['n_labelled']}, {f1['value']:.3f} [{lo:.3f}, {hi:.3f}], " in out
    # a bad second file stops the call before the first is scored: one line, exit 2
    capsys.readouterr()
    gone = tmp_path / "bad"
    assert main(["evaluate", str(run), "--data", str(test), str(tmp_path / "none.h5"),
                 "--out", str(gone), *base]) == 2  # fmt: skip
    assert "not found" in capsys.readouterr().err and not gone.exists()
    # two files of one name would write one directory
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "test.h5").write_bytes(test.read_bytes())
    assert main(["evaluate", str(run), "--data", str(test), str(twin / "test.h5"), *base]) == 2
    assert "share the name 'test'" in capsys.readouterr().err


def test_evaluate_breaks_errors_down_by_simulated_channel(trained, tmp_path, capsys):
    # real simulate run files -> image file with the run's preprocessing -> evaluate --sim
    sim, data = tmp_path / "sim", tmp_path / "sim.h5"
    assert main(["simulate", "--config", "tiny", "--events", "12", "--seed", "3",
                 "--events-per-file", "6", "--out", str(sim), "--quiet"]) == 0  # fmt: skip
    cfg = tmp_path / "prep.yaml"
    cfg.write_text(json.dumps(SMALL_CONFIG.to_dict()))  # JSON is YAML
    assert main(["preprocess", str(sim), "--config", str(cfg), "--out", str(data), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "eval"
    argv = ["evaluate", str(trained["run"]), "--data", str(data), "--out", str(out),
            "--n-boot", "0", "--no-figures", "--quiet", "--sim", str(sim)]  # fmt: skip
    assert main(argv) == 0
    by_channel = json.loads((out / "metrics.json").read_text())["by_channel"]
    assert set(by_channel) == {"multiclass", "binary"}
    assert sum(r["n"] for r in by_channel["multiclass"].values()) == 12
    assert "multiclass errors by simulated channel:" in capsys.readouterr().out
    # several data files take one --sim entry each, in order: the same table per file
    twin = tmp_path / "twin.h5"
    twin.write_bytes(data.read_bytes())
    both = tmp_path / "both"
    assert main(["evaluate", str(trained["run"]), "--data", str(data), str(twin), "--out",
                 str(both), "--n-boot", "0", "--no-figures", "--quiet", "--sim", str(sim),
                 str(sim)]) == 0  # fmt: skip
    for stem in ("sim", "twin"):
        got = json.loads((both / stem / "metrics.json").read_text())["by_channel"]
        assert got == by_channel
    # run files of another simulation do not name these events: one line, exit 2
    other = tmp_path / "other"
    main(["simulate", "--config", "tiny", "--events", "6", "--seed", "4", "--out", str(other),
          "--quiet"])  # fmt: skip
    other_run = next(other.glob("run_*.h5"))
    assert main([*argv[:-1], str(other_run)]) == 2
    assert "has no simulated channel" in capsys.readouterr().err


def test_raw_point_clouds_give_the_image_file_predictions(trained, tmp_path):
    """Spyral and ROOT files of the same clouds -> the same rows as the image file."""
    run, train = trained["run"], trained["train"]
    events = _raw_events(seed=0, n_per_class=40)  # the clouds of train.h5
    spyral = write_spyral(tmp_path / "run_0007.h5", events)
    root = write_root(tmp_path / "events.root", events)
    ref = tmp_path / "ref.csv"
    assert main(["classify", str(run), str(train), "--out", str(ref), "--precision", "fp32",
                 "--quiet"]) == 0  # fmt: skip
    expected = read_predictions(ref)
    for raw in (spyral, root):
        out = tmp_path / f"pred_{raw.stem}.h5"
        rc = main(["classify", str(run), str(raw), "--out", str(out), "--precision", "fp32",
                   "--batch-size", "50", "--quiet"])  # fmt: skip
        assert rc == 0
        got = read_predictions(out)
        np.testing.assert_array_equal(got["event_id"], expected["event_id"])
        np.testing.assert_array_equal(got["run"], expected["run"])
        np.testing.assert_array_equal(got["label"], expected["label"])
        for name in ("p_proton", "p_carbon", "p_other"):
            np.testing.assert_allclose(got[name], expected[name], atol=1e-5)


def test_preprocess_with_model_makes_the_run_s_own_images(trained, tmp_path, capsys):
    """``preprocess --model RUN`` on the raw clouds of test.h5 writes test.h5's images
    (made by the synthetic writer with the settings the run trained on), and evaluate
    takes the file; image settings beside --model are refused."""
    run, test = trained["run"], trained["test"]
    raw = write_spyral(tmp_path / "run_0007.h5", _raw_events(seed=1, n_per_class=20))
    out = tmp_path / "mine.h5"
    assert main(["preprocess", str(raw), "--out", str(out), "--model", str(run), "--workers",
                 "1", "--quiet"]) == 0  # fmt: skip
    with h5py.File(out) as got, h5py.File(test) as ref:
        n = len(got["images"])
        np.testing.assert_array_equal(got["images"][()], ref["images"][:n])
    assert main(["evaluate", str(run), "--data", str(out), "--n-boot", "50", "--no-figures",
                 "--out", str(tmp_path / "ev"), "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    argv = ["preprocess", str(raw), "--out", str(tmp_path / "x.h5"), "--model", str(run)]
    assert main([*argv, "--size", "16"]) == 2
    assert "no --config, --set" in capsys.readouterr().err


def test_mismatches_are_one_line_errors_before_any_work(trained, tmp_path, capsys):
    run = trained["run"]
    other_size = make_image_file(
        tmp_path / "big.h5", n_per_class=2, config=ImageConfig(views=("xy",), size=16)
    )
    other_scale = make_image_file(
        tmp_path / "scale.h5",
        n_per_class=2,
        config=ImageConfig(**{**SMALL_CONFIG.to_dict(), "charge_scale": 5000.0}),
    )
    spyral = write_spyral(tmp_path / "run_0001.h5", _raw_events(seed=3, n_per_class=2))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all")
    cases = [
        (
            [str(other_size)],
            "views ['xy'] (model: ['xy', 'zy']); size 16 (model: 32)",
        ),  # wrong views and size
        ([str(other_scale)], "charge_scale"),
        ([str(spyral), str(junk)], "junk.h5"),  # the bad second input fails first
        ([str(spyral), str(tmp_path / "missing.h5")], "not found"),
    ]
    for inputs, needle in cases:
        out = tmp_path / "p.csv"
        rc = main(["classify", str(run), *inputs, "--out", str(out), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert rc == 2
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err
        assert not out.exists() and list(tmp_path.glob(".p.csv.tmp*")) == []
    # wrong output suffix, and evaluate on a file preprocessed differently
    assert main(["classify", str(run), str(spyral), "--out", str(tmp_path / "p.txt")]) == 2
    assert main(["evaluate", str(run), "--data", str(other_size), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "size 16 (model: 32)" in err[1]


def test_skip_bad_counts_and_goes_on(trained, tmp_path, capsys):
    events = _raw_events(seed=4, n_per_class=3)
    events[2] = Event(run=7, event_id=2, points=np.full((5, 4), np.nan), label=0)
    raw = write_spyral(tmp_path / "run_0002.h5", events)
    out = tmp_path / "p.csv"
    assert main(["classify", str(trained["run"]), str(raw), "--out", str(out), "--quiet"]) == 2
    assert "event 2" in capsys.readouterr().err and not out.exists()
    rc = main(["classify", str(trained["run"]), str(raw), "--out", str(out), "--skip-bad",
               "--quiet"])  # fmt: skip
    assert rc == 0
    assert len(read_predictions(out)["event_id"]) == 8
    assert "skipped 1 bad event (" in capsys.readouterr().out


def test_binary_run_and_compare(trained, tmp_path, capsys):
    """A binary ViT beside the 3-class CNN: columns p_proton,p_rest; one comparison table."""
    binary = trained["root"] / "runs" / "vit_binary"
    rc = main(
        ["train", "--data", str(trained["train"]), "--task", "binary", "--out", str(binary),
         "--quiet", "model.name=vit", "model.depth=1", "model.width=16", "model.heads=2",
         "model.patch=8", "optim.epochs=1"]
    )  # fmt: skip
    assert rc == 0
    out = tmp_path / "p.csv"
    assert main(["classify", str(binary), str(trained["test"]), "--out", str(out), "--quiet"]) == 0
    assert out.read_text().splitlines()[0] == "run,event_id,label,p_proton,p_rest"
    assert set(read_predictions(out)["label"]) <= {"proton", "rest"}

    # a run without an evaluation and no --data: one-line error before any work
    assert main(["compare", str(binary), "--out", str(tmp_path / "c")]) == 2
    assert "pass --data" in capsys.readouterr().err
    runs = [str(trained["run"]), str(binary)]
    cmp_dir = tmp_path / "cmp"
    rc = main(["compare", *runs, "--data", str(trained["test"]), "--out", str(cmp_dir),
               "--n-boot", "100"])  # fmt: skip
    assert rc == 0
    table = (cmp_dir / "compare.md").read_text()
    assert "| cnn | 3-class |" in table and "| vit_binary | binary |" in table
    rows = (cmp_dir / "compare.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("name,run,task,model,params,data,n_labelled")
    assert (cmp_dir / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_prefetch_thread_gives_the_same_rows_and_raises_errors(trained, tmp_path):
    """The read-ahead thread (on by default on GPUs) changes nothing but the timing."""
    from attpc_classify.checkpoint import load_run
    from attpc_classify.predict import classify_files
    from data_prep.errors import InputError

    model = load_run(trained["run"], device="cpu")
    events = _raw_events(seed=5, n_per_class=10)
    raw = write_spyral(tmp_path / "run_0003.h5", events)
    rows = {}
    for prefetch in (False, True):
        out = tmp_path / f"p_{prefetch}.csv"
        classify_files(model, [raw], out, batch_size=7, prefetch=prefetch, precision="fp32")
        rows[prefetch] = out.read_text()
    assert rows[True] == rows[False] and len(rows[True].splitlines()) == 31
    events[20] = Event(run=7, event_id=20, points=np.full((3, 4), np.inf), label=1)
    bad = write_spyral(tmp_path / "run_0004.h5", events)
    with pytest.raises(InputError, match="event 20"):
        classify_files(model, [bad], tmp_path / "bad.csv", batch_size=7, prefetch=True)
    assert list(tmp_path.glob("*bad.csv*")) == []


class _LastFirst(cf.Executor):
    """Runs each call at once but finishes its futures in reverse order of submission, as
    a cluster may: the merge must still write file order, then event order."""

    def __init__(self) -> None:
        self.finished: list[int] = []
        self._timers: list[threading.Timer] = []

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        value, i = fn(*args, **kwargs), len(self._timers)

        def finish() -> None:
            self.finished.append(i)
            future.set_result(value)

        self._timers.append(threading.Timer(0.6 - 0.04 * i, finish))
        self._timers[-1].start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for timer in self._timers:
            timer.join()


def test_tasks_on_any_executor_give_the_same_table(trained, tmp_path):
    """One path: tasks here, tasks finishing last-first, event ranges on a process pool."""
    from attpc_classify.checkpoint import load_run
    from attpc_classify.predict import classify_files

    model = load_run(trained["run"], device="cpu")
    events = [
        Event(run=8, event_id=e.event_id, points=e.points, label=e.label)
        for e in _raw_events(seed=6, n_per_class=10)
    ]
    events[4] = Event(run=8, event_id=4, points=np.full((3, 4), np.nan), label=0)
    inputs = [write_spyral(tmp_path / "run_0008.h5", events), trained["test"]]
    kw = dict(batch_size=8, precision="fp32", skip_bad=True)
    here = classify_files(model, inputs, tmp_path / "here.csv", **kw)
    with _LastFirst() as late:
        shuffled = classify_files(
            model, inputs, tmp_path / "late.csv", executor=late, events_per_task=8, **kw
        )
    assert len(late.finished) == 4 + 8 and late.finished[0] > late.finished[-1]
    with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:
        pooled = classify_files(
            model, inputs, tmp_path / "pool.csv", executor=pool, events_per_task=20, **kw
        )
    table = (tmp_path / "here.csv").read_bytes()
    assert len(table.splitlines()) == 1 + 29 + 63
    for name, summary in (("late", shuffled), ("pool", pooled)):
        assert (tmp_path / f"{name}.csv").read_bytes() == table, name
        assert (summary.n_events, summary.skipped, summary.predicted) == (
            here.n_events, {"non-finite values": 1}, here.predicted)  # fmt: skip
        assert summary.predicted_by_run == here.predicted_by_run, name
    # the per-run counts are the written table's labels counted by run
    rows = read_predictions(tmp_path / "here.csv")
    by_run = {}
    for r in np.unique(rows["run"]):
        labels, counts = np.unique(rows["label"][rows["run"] == r], return_counts=True)
        by_run[int(r)] = {str(k): int(v) for k, v in zip(labels, counts, strict=True)}
    assert sorted(here.predicted_by_run) == [7, 8]
    for run, counts in here.predicted_by_run.items():
        assert {k: v for k, v in counts.items() if v} == by_run[run], run


def test_classify_says_when_no_health_report_is_there_to_check(trained, tmp_path, capsys):
    """Point-cloud inputs and no RUN/health.json: one line says the check was not made
    (silence would read as healthy); image files have no points to check: nothing."""
    run, test = trained["run"], trained["test"]
    assert not (run / "health.json").exists()
    raw = write_spyral(tmp_path / "run_0007.h5", _raw_events(seed=1, n_per_class=2))
    assert main(["classify", str(run), str(raw), "--out", str(tmp_path / "a.csv"), "--quiet"]) == 0
    assert f"health not checked: {run / 'health.json'} is missing" in capsys.readouterr().err
    assert main(["classify", str(run), str(test), "--out", str(tmp_path / "b.csv"), "--quiet"]) == 0
    assert "health not checked" not in capsys.readouterr().err
