"""``attpc-classify benchmark`` end to end on ``configs/benchmark/transfer_smoke.yaml``.

Real parts throughout: attpc-engine simulation (``tiny`` preset), the image builder, the
training engine, learngene Aux-Nets and files. One full smoke run is shared by the tests;
the resume tests reuse its stage cache.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import learngene as lg
from attpc_classify.cli import main
from attpc_classify.config import load_config
from attpc_classify.transfer.benchmark import BenchCallbacks, run_benchmark
from attpc_classify.transfer.config import STRATEGIES, BenchConfig
from attpc_classify.transfer.grid import COLUMNS, KEY_COLUMNS, plan_cells
from data_prep.errors import InputError

# the shared smoke run (every strategy, with the LDR stages and the pool's instances) runs
# inside the first test that uses it: ~100 s alone on 2 cores, more on a busy machine
pytestmark = pytest.mark.timeout(400)

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "benchmark" / "transfer_smoke.yaml"
CONFIGS = SMOKE.parent


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _key(row: dict) -> tuple:
    return tuple(str(row[c]) for c in KEY_COLUMNS)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke"
    assert main(["benchmark", "--config", str(SMOKE), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.heavy
def test_smoke_writes_every_strategy_task_and_budget(smoke):
    rows = _rows(smoke / "results.csv")
    with open(smoke / "results.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert {r["strategy"] for r in rows} == set(STRATEGIES)
    assert {r["task"] for r in rows} == {"binary", "multiclass"}
    keys = [_key(r) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate rows"
    cfg = load_config(BenchConfig, SMOKE)
    cells = plan_cells(cfg)
    assert {
        (
            r["strategy"],
            int(r["depth"]),
            int(r["width"]),
            r["task"],
            int(r["n_train"]),
            int(r["seed"]),
        )
        for r in rows
    } == {c.key for c in cells}
    budgets = {(r["strategy"], r["budget_epochs"]) for r in rows}
    assert ("scratch", "0") in budgets and ("scratch", "1") in budgets
    assert ("scratch_full", "2") in budgets and ("logreg", "1") in budgets
    for r in rows:
        assert 0.0 <= float(r["proton_f1"]) <= 1.0 and 0.0 <= float(r["accuracy"]) <= 1.0
        if r["strategy"] in ("scratch", "scratch_full", "cnn_scratch", "logreg"):
            assert int(r["params_stored"]) == 0 and int(r["shared_images"]) == 0
        if r["strategy"] in ("tleg", "lets_continuous", "inherit", "weight_select"):
            assert int(r["shared_images"]) > 0  # the ancestry's training, counted once
    prefin = [r for r in rows if r["strategy"] == "prefin" and r["budget_epochs"] == "0"]
    assert all(int(r["train_images"]) > 0 for r in prefin)  # its source pre-training
    assert len({r["params_stored"] for r in rows if r["strategy"] == "lets_magnitude"}) == 1

    text = (smoke / "results.md").read_text()
    for heading in (
        "## Headline",
        "## The question",
        "## Every size",
        "## Storage and cost",
        "## Labelled-set size",
    ):
        assert heading in text
    for name in (
        "f1_vs_epochs_binary",
        "f1_vs_epochs_multiclass",
        "f1_vs_params",
        "storage_cost",
        "binary_vs_multiclass",
    ):
        png = smoke / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{name}.png" in text


@pytest.mark.heavy
def test_learngene_files_build_descendants(smoke):
    rows = _rows(smoke / "results.csv")
    stored = {r["strategy"]: int(r["params_stored"]) for r in rows}
    x = torch.rand(2, 2, 32, 32)
    for method, strategy in (
        ("tleg", "tleg"),
        ("lets", "lets_continuous"),
        ("ldr", "ldr"),
        ("pool", "pool"),
        ("inherit", "inherit"),
        ("weight_select", "weight_select"),
    ):
        path = smoke / "learngenes" / f"{method}.safetensors"
        assert path.exists() and path.with_suffix(".json").exists()
        gene = lg.load_learngene(path)
        assert gene.num_parameters == stored[strategy]
        assert gene.meta["class_names"] == ["proton", "carbon", "other"]
        assert gene.meta["stem_width"] == 8  # every learngene carries the smoke's conv stem
        model = lg.build_descendant(path, depth=2, num_classes=2).eval()
        assert model(x).shape == (2, 2)
    narrow = lg.build_descendant(
        smoke / "learngenes" / "lets", depth=1, num_classes=3, width=16, selection="magnitude"
    )
    assert narrow.embed_dim == 16
    # LDR: one 1-epoch stage per component (2); pool: 2 instances + stitches, 1 epoch each
    learngenes = smoke / "learngenes"
    assert lg.load_learngene(learngenes / "ldr").meta["aux"]["epochs_run"] == 2
    assert lg.load_learngene(learngenes / "pool").meta["aux"]["epochs_run"] == 3
    stitched = lg.build_descendant(learngenes / "pool", depth=2, num_classes=3)
    assert len(stitched.segments) == 2 and stitched(x).shape == (2, 3)
    # MM-LG: one file for every view subset; the pad-plane descendant reads channel 0 only
    gene = lg.load_learngene(learngenes / "mmlg")
    assert gene.num_parameters == stored["mmlg"] == stored["mmlg_xy"]
    assert gene.meta["views"] == ["xy", "zy"] and gene.meta["aux"]["epochs_run"] == 1
    xy = lg.build_descendant(gene, depth=3, num_classes=3, views=["xy"]).eval()
    y = x.clone()
    y[:, 1] = 1.0
    assert list(xy.encoders) == ["xy"] and torch.equal(xy(x), xy(y))


@pytest.mark.heavy
def test_cnn_teacher_distillation_counts_the_teachers_training(smoke, tmp_path):
    out = tmp_path / "distilled"
    argv = ["benchmark", "--config", str(SMOKE), "--out", str(out), "--cache",
            str(smoke / "cache"), "--quiet", "finetune.teacher=cnn", "grid.strategies=[ldr]",
            "grid.tasks=[binary]", "data.train_sizes=[36]", "vit.depths=[2]",
            "grid.other_size_depths=[2]"]  # fmt: skip
    assert main(argv) == 0
    rows = {
        (r["strategy"], r["budget_epochs"]): r
        for r in _rows(smoke / "results.csv")
        if r["task"] == "binary" and r["n_train"] == "36" and r["depth"] in ("0", "2")
    }
    got = {r["budget_epochs"]: r for r in _rows(out / "results.csv")}
    # the ViT sees the same images; the teacher's training is the cnn_scratch cell's
    cnn_images = int(rows[("cnn_scratch", "1")]["train_images"])
    assert int(got["1"]["train_images"]) == int(rows[("ldr", "1")]["train_images"]) + cnn_images


@pytest.mark.heavy
def test_second_run_reuses_everything(smoke, capsys):
    before = (smoke / "results.csv").read_bytes()
    assert main(["benchmark", "--config", str(SMOKE), "--out", str(smoke)]) == 0
    captured = capsys.readouterr()
    assert "0 run now" in captured.out and "(complete)" in captured.out
    assert "building" not in captured.err  # every stage came from the cache
    assert (smoke / "results.csv").read_bytes() == before
    (smoke / "results.md").unlink()
    assert main(["benchmark", "--config", str(SMOKE), "--out", str(smoke), "--report-only"]) == 0
    assert "## Headline" in (smoke / "results.md").read_text()


@pytest.mark.heavy
def test_interrupted_run_resumes_to_the_same_rows(smoke, tmp_path):
    """Kill after 3 cells (an exception from the progress hook), then run again; with two
    worker processes, as transfer_cpu.yaml runs."""
    over = [
        "grid.strategies=[scratch,tleg,lets_magnitude,logreg]",
        "grid.tasks=[binary]",
        "grid_workers=2",
    ]
    cfg = load_config(BenchConfig, SMOKE, over)
    out = tmp_path / "cut"
    done = []

    def stop(cell, rows):
        done.append(cell)
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_benchmark(cfg, out, cache_dir=smoke / "cache", callbacks=BenchCallbacks(cell=stop))
    cut = _rows(out / "results.csv")
    assert len({_key(r)[:5] + _key(r)[6:] for r in cut}) == 3  # whole cells only
    assert not (out / "results.md").exists()
    summary = run_benchmark(cfg, out, cache_dir=smoke / "cache")
    assert summary.complete and summary.cells_run == summary.cells_total - 3
    rows = _rows(out / "results.csv")
    keys = [_key(r) for r in rows]
    assert len(keys) == len(set(keys))
    # same numbers as the uninterrupted smoke run: the cells are seeded and deterministic
    full = {_key(r): r for r in _rows(smoke / "results.csv")}
    for r in rows:
        for metric in ("proton_f1", "macro_f1", "accuracy", "train_images"):
            assert r[metric] == full[_key(r)][metric], (_key(r), metric)


@pytest.mark.heavy
def test_bad_configs_are_one_line_errors(smoke, tmp_path, capsys):
    assert (
        main(
            [
                "benchmark",
                "--config",
                str(SMOKE),
                "--out",
                str(tmp_path / "x"),
                "grid.headline_size=7",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "headline_size" in err
    # an output directory holding another config's results is refused, not mixed
    assert (
        main(["benchmark", "--config", str(SMOKE), "--out", str(smoke), "finetune.optim.lr=0.01"])
        == 2
    )
    assert "different benchmark config" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["transfer_cpu.yaml", "transfer_gpu.yaml"])
def test_full_scale_configs_load(name):
    cfg = load_config(BenchConfig, CONFIGS / name)
    cells = plan_cells(cfg)
    assert {c.strategy for c in cells} == set(STRATEGIES)
    headline = [c for c in cells if c.headline]
    assert {c.seed for c in headline} == set(range(cfg.grid.seeds)) and cfg.grid.seeds >= 3
    # a cut-short run has the headline table: its cells come first, the first task's first
    first = cells[: len(headline)]
    assert all(c.headline for c in first)
    n_first_task = sum(c.task == cfg.grid.tasks[0] for c in headline)
    assert {c.task for c in first[:n_first_task]} == {cfg.grid.tasks[0]}
    assert {c.seed for c in first[:n_first_task]} == set(range(cfg.grid.seeds))
    assert 2689 in cfg.data.train_sizes and cfg.data.target_test.events >= 2000


def test_mmlg_pilot_config_plans_the_multi_view_comparison():
    cfg = load_config(BenchConfig, CONFIGS / "mmlg_pilot.yaml")
    cells = plan_cells(cfg)
    assert {"mmlg", "mmlg_xy", "scratch_views", "scratch_xy", "prefin"} <= {
        c.strategy for c in cells
    }
    # the xy-only strategies need the xy view among the image channels
    with pytest.raises(InputError, match="need the xy view"):
        load_config(BenchConfig, CONFIGS / "mmlg_pilot.yaml", ["data.image.views=[zy]"])


def test_safetensors_whose_header_length_starts_like_a_pickle(tmp_path):
    """Found by the CPU benchmark: a header length of 0x..80 made checkpoint.read_tensors
    take a valid safetensors file for a pickle."""
    from attpc_classify.checkpoint import read_tensors, save_tensors

    for n in range(1, 400):
        path = tmp_path / f"t{n}.safetensors"
        save_tensors(path, {"w" * n: torch.zeros(2)})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no header length with low byte 0x80 found")
    assert torch.equal(read_tensors(path)["w" * n], torch.zeros(2))
    pickle = tmp_path / "p.safetensors"
    pickle.write_bytes(b"\x80\x04\x95" + bytes(20))
    with pytest.raises(ValueError, match="pickle"):
        read_tensors(pickle)


def test_a_killed_staged_learngene_stage_resumes(tmp_path, monkeypatch):
    """LDR's components and the pool's instances keep their trainer state in
    sub-directories of the Aux-Net directory: a second attempt at the stage must continue
    them (the trainer refuses to start over on top of them), and the finished stage keeps
    no trainer state. The trainer is replaced by one that is killed in its second part."""
    import attpc_classify.transfer.learngene as trainer
    from attpc_classify.stagecache import Stage, StageCache
    from attpc_classify.transfer.stages import learngene_stage

    calls = []

    def killed_once(cfg, *, teacher_dir, out, aux_dir, resume, progress=None):
        calls.append(resume)
        if not resume and any(aux_dir.rglob("last.json")):  # the real trainer's refusal
            raise InputError("holds an Aux-Net training", path=aux_dir)
        (aux_dir / "stage1").mkdir(parents=True, exist_ok=True)
        for name in ("last.json", "last.safetensors"):
            (aux_dir / "stage1" / name).write_text("{}")
        if len(calls) == 1:
            raise KeyboardInterrupt  # killed while training the second component
        out.with_suffix(".json").write_text('{"num_parameters": 7}')
        return out.with_suffix(".json")

    monkeypatch.setattr(trainer, "train_learngene", killed_once)
    cfg = load_config(BenchConfig, SMOKE)
    source = Stage("images_source", tmp_path / "src", {"file": "x.h5"}, reused=True)
    ancestry = Stage("pretrain", tmp_path / "anc", {}, reused=True)
    cache = StageCache(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        learngene_stage(cache, cfg, source, ancestry, "ldr")
    stage = learngene_stage(cache, cfg, source, ancestry, "ldr")
    assert calls == [False, True]
    assert stage.info["num_parameters"] == 7
    assert not list(stage.path.rglob("last.*"))
