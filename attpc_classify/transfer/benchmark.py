"""The transfer-strategy benchmark: which initialisation gives the best classifier for the
least training when the new experiment has few labelled events?

`run_benchmark` runs the whole protocol of a `BenchConfig`
(``configs/benchmark/transfer_cpu.yaml``)::

    source sim (nominal) -> source images ----------------+
    target sims (shifted): labelled pool, test set -> images
    source images -> ViTs pre-trained per depth (the deepest = the ancestry)
    ancestry -> learngenes: TLEG, LeTs (Aux-Nets distilled on the source), inherit,
                weight selection
    grid: strategy x size x task x labelled-set size x seed -> fine-tune on the target
          pool subset, evaluate on the target test set at every budget -> results.csv
    results.csv -> results.md + figures

Every stage is cached under ``CACHE/<stage>-<hash>/`` (`attpc_classify.transfer.stages`) and
every finished cell is in ``results.csv`` before the next one starts, so a killed run
resumes where it stopped, and a second run with the same config adds nothing.

The learngenes, the ancestry and Pre-Fin's source models are trained once for the 3-class
task and shared by both tasks: a descendant fine-tuned for the binary task gets a fresh
head (its 0-epoch scores are chance), a 3-class one keeps the learngene's head.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attpc_classify.checkpoint import read_json, write_json
from attpc_classify.config import config_hash, save_config, to_dict
from attpc_classify.stagecache import Stage, StageCache
from attpc_classify.transfer.config import LEARNGENE_OF, BenchConfig
from attpc_classify.transfer.grid import (
    Artifacts,
    Cell,
    Evaluator,
    plan_cells,
    run_cell,
    train_subset,
)
from attpc_classify.transfer.report import write_report
from attpc_classify.transfer.results import ResultsFile, read_rows
from attpc_classify.transfer.stages import (
    distill_key,
    images_stage,
    learngene_stage,
    pretrain_stage,
    simulate_stage,
)
from data_prep.atomic import atomic_path
from data_prep.errors import InputError

logger = logging.getLogger(__name__)


@dataclass
class BenchCallbacks:
    """How the library reports progress (the command draws the bars).

    ``stage(name, total, unit)`` starts a unit of preparatory work, ``work(n)`` advances
    it; ``plan(total_cells, done_cells)`` comes once before the grid, ``cell(cell, rows)``
    after every finished cell.
    """

    stage: Callable[[str, int | None, str], None] = field(default=lambda *_a: None)
    work: Callable[[int], None] = field(default=lambda _n: None)
    plan: Callable[[int, int], None] = field(default=lambda *_a: None)
    cell: Callable[[Cell, list[dict[str, Any]]], None] = field(default=lambda *_a: None)


@dataclass
class BenchSummary:
    """What one call did."""

    out: Path
    cells_total: int
    cells_done: int  # in results.csv now
    cells_run: int  # by this call
    complete: bool
    stages: dict[str, dict[str, Any]]


def _grid_hash(cfg: BenchConfig) -> str:
    """Hash of everything that changes the rows (the grid's selection aside)."""
    data = to_dict(cfg)
    data.pop("grid")
    data.pop("name")
    for key in ("threads", "grid_workers", "worker_threads"):
        data.pop(key)
    for part in ("finetune", "learngene"):  # as the stage keys (`stages.distill_key`)
        data[part]["distill"] = distill_key(getattr(cfg, part).distill)
    if data["vit"]["stem_norm"] == "group":  # the hash from before the option existed
        data["vit"].pop("stem_norm")
    return config_hash(data)


def _check_out(cfg: BenchConfig, out: Path) -> None:
    """``out`` is new, or holds a run of the same config (then it is resumed)."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "benchmark.json"
    want = {"format": "attpc-benchmark", "grid_hash": _grid_hash(cfg)}
    if marker.exists():
        have = read_json(marker)
        if have.get("grid_hash") != want["grid_hash"]:
            raise InputError(
                "holds results of a different benchmark config; choose another --out",
                path=out,
            )
    elif (out / "results.csv").exists():
        raise InputError("holds a results.csv of unknown origin; choose another --out", path=out)
    kept = read_json(marker).get("invocations", []) if marker.exists() else []
    write_json(marker, want | {"name": cfg.name, "invocations": kept})
    save_config(cfg, out / "config.yaml")


def _needed(cfg: BenchConfig) -> tuple[set[int], set[str]]:
    """Depths to pre-train on the source, and learngene methods to make."""
    strategies = set(cfg.grid.strategies)
    depths: set[int] = set()
    if "prefin" in strategies:
        depths.update(cfg.vit.depths)
    methods = {LEARNGENE_OF[s] for s in strategies if s in LEARNGENE_OF}
    if methods:
        depths.add(cfg.pretrain.ancestry_depth)
    return depths, methods


def prepare(
    cfg: BenchConfig, cache: StageCache, cb: BenchCallbacks, pool=None
) -> tuple[dict[str, Stage], Artifacts]:
    """Build (or reuse) every stage the grid needs; the source-side trainings run in
    ``pool`` (worker processes) when one is given."""
    d = cfg.data
    specs = {"source": d.source, "target_train": d.target_train, "target_test": d.target_test}
    seeds = [(s.preset, s.seed, tuple(s.overrides)) for s in specs.values()]
    if len({s[1] for s in seeds}) < len(seeds):
        raise InputError(
            "data.source, target_train and target_test need different seeds "
            "(one seed gives the same random events)"
        )
    stages: dict[str, Stage] = {}
    for role, spec in specs.items():
        cb.stage(f"simulate {role}", spec.events, "ev")
        sim = simulate_stage(cache, cfg, role, spec, progress=cb.work)
        cb.stage(f"images {role}", None, "ev")
        stages[f"sim_{role}"] = sim
        stages[f"images_{role}"] = images_stage(cache, cfg, sim)
    source = stages["images_source"]
    n_source = int(source.info["written"] * (1 - d.source_val_fraction))

    depths, methods = _needed(cfg)
    jobs = _training_jobs(cfg, depths, methods)
    if pool is not None and len(jobs) > 1:
        done = _run_jobs_parallel(cfg, cache, source, jobs, cb, pool)
    else:
        done = {}
        for job in jobs:
            kind, what = job
            total = None
            if kind == "vit":
                total = cfg.pretrain.optim.epochs * n_source
            elif what in ("tleg", "lets", "ldr", "pool", "mmlg"):
                # pool: one run per instance and one for the stitches
                runs = len(cfg.learngene.pool_widths or (1, 2, 3)) + 1 if what == "pool" else 1
                total = runs * cfg.learngene.optim.epochs * n_source
            cb.stage(_job_name(job), total, "img")
            done[job] = _run_job(
                cfg,
                cache,
                source,
                done.get(("vit", cfg.pretrain.ancestry_depth)),
                job,
                progress=cb.work,
            )
            _log_stage(done[job])
    pretrained: dict[int, str] = {}
    learngenes: dict[str, str] = {}
    for (kind, what), st in done.items():
        stages[st.name] = st
        if kind == "vit":
            pretrained[what] = str(st.path)
        else:
            learngenes[what] = st.info["file"]
    from data_prep.imagefile import read_info

    class_names = tuple(read_info(source.info["file"])["class_names"])
    return stages, Artifacts(pretrained, learngenes, class_names)


Job = tuple[str, Any]  # ("vit", depth) | ("learngene", method)


def _training_jobs(cfg: BenchConfig, depths: set[int], methods: set[str]) -> list[Job]:
    """Source-side trainings in priority order: the ancestry, the learngenes that need it
    (longest first), then the other pre-trained depths (deepest first)."""
    anc = cfg.pretrain.ancestry_depth
    jobs: list[Job] = [("vit", anc)] if anc in depths else []
    order = ("tleg", "lets", "ldr", "pool", "mmlg", "inherit", "weight_select")
    jobs += [("learngene", m) for m in order if m in methods]
    jobs += [("vit", d) for d in sorted(depths - {anc}, reverse=True)]
    return jobs


def _job_name(job: Job) -> str:
    kind, what = job
    return f"pre-train ViT depth {what}" if kind == "vit" else f"learngene {what}"


def _run_job(cfg, cache, source, ancestry, job, progress=None) -> Stage:
    kind, what = job
    if kind == "vit":
        return pretrain_stage(cache, cfg, source, what, progress=progress)
    return learngene_stage(cache, cfg, source, ancestry, what, progress=progress)


def _log_stage(st: Stage) -> None:
    f1 = st.info.get("best_val_macro_f1")
    logger.info(
        f"{st.name}: "
        + ("" if f1 is None else f"source val macro-F1 {f1:.4f}, ")
        + f"{st.info.get('train_images', 0):,} images, {st.info.get('wall_s', 0.0):.0f} s"
        + (" (cached)" if st.reused else "")
    )


def _job_worker(
    cfg_dict: dict, cache_root: str, source: Stage, ancestry: Stage | None, job: Job
) -> Stage:
    """One source-side training in a worker process (threads set by `_worker_init`)."""
    from attpc_classify.config import from_dict

    cfg = from_dict(BenchConfig, cfg_dict)
    return _run_job(cfg, StageCache(cache_root), source, ancestry, job)


def _run_jobs_parallel(
    cfg: BenchConfig, cache: StageCache, source: Stage, jobs: list[Job], cb: BenchCallbacks, pool
) -> dict[Job, Stage]:
    """The source-side trainings in ``grid_workers`` processes; learngenes wait for the
    ancestry. Each stage still builds in its own partial directory, so a kill loses only
    the epochs since the last saved state."""
    from concurrent.futures import FIRST_COMPLETED, wait

    anc_job = ("vit", cfg.pretrain.ancestry_depth)
    done: dict[Job, Stage] = {}
    todo = list(jobs)
    running: dict[Any, Job] = {}
    try:
        while todo or running:
            for job in list(todo):
                if len(running) >= cfg.grid_workers:
                    break
                if job[0] == "learngene" and anc_job not in done:
                    continue
                todo.remove(job)
                logger.info(f"{_job_name(job)}: started")
                fut = pool.submit(
                    _job_worker,
                    to_dict(cfg),
                    str(cache.root),
                    source,
                    done.get(anc_job),
                    job,
                )
                running[fut] = job
            if not running:  # a bug, not a user error: nothing runnable is left
                raise RuntimeError(f"stage jobs {todo} wait for a stage that is not planned")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                done[job] = fut.result()
                _log_stage(done[job])
    except BaseException:
        for fut in running:
            fut.cancel()
        raise
    return done


def shared_costs(
    cfg: BenchConfig, stages: dict[str, Stage]
) -> dict[str, tuple[int, float, dict[int, tuple[int, float]]]]:
    """Per strategy: (shared images, shared wall s, per-depth own pre-training cost).

    Learngene strategies share the ancestry's training (and their Aux-Net's) over every
    size and both tasks; Pre-Fin pays a pre-training per depth, counted in that depth's
    own ``train_images``.
    """
    anc = stages.get(f"vit_d{cfg.pretrain.ancestry_depth}")
    out: dict[str, tuple[int, float, dict[int, tuple[int, float]]]] = {}
    for s in cfg.grid.strategies:
        images, wall, per_depth = 0, 0.0, {}
        if s in LEARNGENE_OF:
            gene = stages[f"learngene_{LEARNGENE_OF[s]}"].info
            images = anc.info["train_images"] + gene["train_images"]
            wall = anc.info["wall_s"] + gene["wall_s"]
        if s == "prefin":
            per_depth = {
                dd: (stages[f"vit_d{dd}"].info["train_images"], stages[f"vit_d{dd}"].info["wall_s"])
                for dd in cfg.vit.depths
            }
        out[s] = (images, wall, per_depth)
    return out


def params_stored(cfg: BenchConfig, stages: dict[str, Stage]) -> dict[str, int]:
    """Parameters kept to initialise every grid size, per strategy
    (`learngene.parameters_stored`; the ImageNet model for cnn_imagenet; 0 from scratch).
    """
    import learngene

    v = cfg.vit
    arch = dict(
        img_size=cfg.data.image.size,
        patch_size=v.patch,
        in_chans=cfg.data.image.n_channels,
        num_classes=3,
        embed_dim=v.width,
        num_heads=v.heads,
        mlp_ratio=v.mlp_ratio,
        stem_width=v.stem_width,  # a conv stem is stored with every learngene / model
        stem_norm=v.stem_norm,  # ... a BatchNorm stem with its running statistics
    )
    depths = list(v.depths)
    lets_sizes = [{"depth": dd, "width": w} for dd in depths for w in cfg.learngene.lets_widths]
    out: dict[str, int] = {}
    for s in cfg.grid.strategies:
        if s == "prefin":
            out[s] = learngene.parameters_stored("prefin", depths, **arch)
        elif s == "tleg":
            out[s] = learngene.parameters_stored("tleg", depths, **arch)
        elif s.startswith("lets"):
            out[s] = learngene.parameters_stored(
                "lets",
                lets_sizes,
                **arch,
                learngene_width=cfg.lets_learngene_width,
                learngene_depth=cfg.learngene.lets_learngene_depth,
                aux_depth=cfg.aux_depth,
            )
        elif s == "ldr":
            out[s] = learngene.parameters_stored(
                "ldr", depths, **arch, components=cfg.learngene.ldr_components
            )
        elif s == "pool":
            from attpc_classify.transfer.learngene import pool_widths

            widths = cfg.learngene.pool_widths or pool_widths(v.width, v.head_dim)
            out[s] = learngene.parameters_stored(
                "pool",
                [dd for dd in depths if dd <= cfg.pool_depth],
                **arch,
                pool_widths=list(widths),
                pool_depth=cfg.pool_depth,
            )
        elif s in ("mmlg", "mmlg_xy"):  # the one file serves every view subset
            views = list(cfg.data.image.views)
            c = len(cfg.data.image.pixel_values)
            out[s] = learngene.parameters_stored(
                "mmlg", depths, **arch, views=views, view_channels=c
            )
        elif s == "inherit":
            out[s] = learngene.parameters_stored(
                "inherit", depths, **arch, learngene_depth=cfg.learngene.inherit_depth
            )
        elif s == "weight_select":
            out[s] = learngene.parameters_stored(
                "weight_select", depths, **arch, depth=cfg.pretrain.ancestry_depth
            )
        elif s == "cnn_imagenet":
            from attpc_classify.models.cnn import create_timm_cnn

            net = create_timm_cnn(cfg.finetune.imagenet_model, in_chans=3, num_classes=1000)
            out[s] = sum(p.numel() for p in net.parameters())
        else:
            out[s] = 0
    # the files themselves must agree with the count (they are what a user keeps)
    for s, method in LEARNGENE_OF.items():
        key = f"learngene_{method}"
        if s in out and key in stages and stages[key].info["num_parameters"] != out[s]:
            raise RuntimeError(
                f"{s}: file holds {stages[key].info['num_parameters']} "
                f"parameters, parameters_stored says {out[s]}"
            )
    return out


def run_benchmark(
    cfg: BenchConfig,
    out: str | Path,
    *,
    cache_dir: str | Path | None = None,
    callbacks: BenchCallbacks | None = None,
    max_cells: int | None = None,
    report: bool = True,
) -> BenchSummary:
    """Run (or resume) the benchmark of ``cfg`` into ``out``.

    Parameters
    ----------
    cfg
        The protocol (`BenchConfig`).
    out
        Output directory: ``results.csv``, ``results.md``, ``figures/``, ``learngenes/``,
        ``config.yaml``; it may hold an interrupted run of the same config.
    cache_dir
        Stage cache (default ``out/cache``); several outputs may share one.
    callbacks
        Progress receivers (`BenchCallbacks`; lines go to this module's logger).
    max_cells
        Run at most this many new cells, then return (``complete`` tells whether the
        grid is finished); the report is written only for a complete grid.
    report
        Write results.md and the figures when the grid is complete.
    """
    import torch

    cb = callbacks or BenchCallbacks()
    out = Path(out)
    _check_out(cfg, out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cache = StageCache(cache_dir or out / "cache")
    t0 = time.time()
    pool = _worker_pool(cfg) if cfg.grid_workers > 1 else None
    try:
        summary = _run(cfg, out, cache, cb, pool, max_cells)
    except BaseException as err:
        if pool is not None:
            # running cells are lost (their rows were never written); don't wait for them
            stop_workers(pool)
            pool = None
        _record_invocation(out, t0, f"stopped: {type(err).__name__}")
        raise
    finally:
        if pool is not None:
            pool.shutdown()
    _record_invocation(out, t0, "complete" if summary.complete else "partial", summary.cells_run)
    if summary.complete and report:
        write_report(cfg, out, read_rows(out / "results.csv"), summary.stages)
    return summary


def rewrite_report(cfg: BenchConfig, out: str | Path) -> tuple[Path, int]:
    """results.md and the figures again from ``out/results.csv`` (nothing trained);
    returns the report's path and the number of rows it read."""
    out = Path(out)
    rows = read_rows(out / "results.csv")
    if not rows:
        raise InputError("no results.csv rows to report", path=out)
    stages = read_json(out / "stages.json") if (out / "stages.json").exists() else {}
    return write_report(cfg, out, rows, stages), len(rows)


def _record_invocation(out: Path, t0: float, outcome: str, cells_run: int | None = None) -> None:
    """Append this call's wall time to ``benchmark.json`` (results.md reports the sum)."""
    marker = out / "benchmark.json"
    data = read_json(marker)
    data.setdefault("invocations", []).append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
            "wall_s": round(time.time() - t0, 1),
            "outcome": outcome,
            "cells_run": cells_run,
        }
    )
    write_json(marker, data)


def _run(
    cfg: BenchConfig,
    out: Path,
    cache: StageCache,
    cb: BenchCallbacks,
    pool,
    max_cells: int | None,
) -> BenchSummary:
    """`run_benchmark` once the output and the worker pool are set up."""
    stages, art = prepare(cfg, cache, cb, pool)
    copy_learngenes(stages, out / "learngenes")
    write_json(out / "stages.json", {k: {"path": str(s.path), **s.info} for k, s in stages.items()})

    costs = shared_costs(cfg, stages)
    stored = params_stored(cfg, stages)
    results = ResultsFile(out / "results.csv")
    cells = plan_cells(cfg)
    todo = [c for c in cells if c.key not in results.done]
    cb.plan(len(cells), len(cells) - len(todo))

    files = (stages["images_target_train"].info["file"], stages["images_target_test"].info["file"])

    def finish(cell: Cell, rows: list[dict[str, Any]]) -> None:
        images, wall, per_depth = costs[cell.strategy]
        own_images, own_wall = per_depth.get(cell.depth, (0, 0.0))
        for r in rows:
            r["train_images"] += own_images
            r["wall_s"] += own_wall
            r |= {
                "shared_images": images,
                "shared_wall_s": wall,
                "params_stored": stored[cell.strategy],
            }
        results.add(rows)
        cb.cell(cell, rows)

    if max_cells is not None:
        todo = todo[:max_cells]
    if pool is not None and len(todo) > 1:
        _run_parallel(cfg, art, files, todo, finish, pool)
    else:
        runner = _CellRunner(cfg, art, *files)
        for cell in todo:
            finish(cell, runner(cell))
    run = len(todo)

    complete = all(c.key in results.done for c in cells)
    return BenchSummary(
        out=out,
        cells_total=len(cells),
        cells_done=len(results.done),
        cells_run=run,
        complete=complete,
        stages={k: s.info for k, s in stages.items()},
    )


class _CellRunner:
    """Runs cells with the target data loaded once (in this or a worker process)."""

    def __init__(
        self,
        cfg: BenchConfig,
        art: Artifacts,
        pool_file: str,
        test_file: str,
    ):
        from data_prep.imagefile import read_images

        self.cfg, self.art = cfg, art
        voxels = cfg.data.image.voxel_grid > 0  # only logreg reads them (and says so)
        self.pool = read_images(pool_file, voxels=voxels)
        test = read_images(test_file, voxels=voxels)
        self.evaluators = {task: Evaluator(test, task, cfg) for task in cfg.grid.tasks}
        self.subsets: dict[tuple[int, int], Any] = {}

    def __call__(self, cell: Cell) -> list[dict[str, Any]]:
        key = (cell.n_train, cell.seed)
        if key not in self.subsets:
            seed = self.cfg.data.target_train.seed
            self.subsets[key] = train_subset(self.pool, cell.n_train, cell.seed, seed)
        return run_cell(cell, self.cfg, self.art, self.subsets[key], self.evaluators[cell.task])


def _worker_pool(cfg: BenchConfig):
    """Spawned processes with ``worker_threads`` torch threads each, for stages and cells."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=cfg.grid_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(cfg.worker_threads,),
    )


def stop_workers(pool) -> None:
    """Cancel ``pool``'s queued jobs and end its running ones now. A run that failed or
    was interrupted must not leave a training running in a worker (as a plain shutdown
    does, until the job ends): it would burn the cores, and a later run resuming the same
    stage would find it still writing there."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # gone after shutdown
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.terminate()


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


#: the worker process's cell runner, made on its first cell (data read once per process)
_RUNNER: dict[str, _CellRunner] = {}


def _worker_cell(
    cfg_dict: dict, art: Artifacts, files: tuple[str, str], cell: Cell
) -> list[dict[str, Any]]:
    from attpc_classify.config import from_dict

    key = config_hash({"cfg": cfg_dict, "files": list(files)})
    if key not in _RUNNER:
        _RUNNER.clear()
        _RUNNER[key] = _CellRunner(from_dict(BenchConfig, cfg_dict), art, *files)
    return _RUNNER[key](cell)


def _run_parallel(
    cfg: BenchConfig,
    art: Artifacts,
    files: tuple[str, str],
    todo: list[Cell],
    finish: Callable[[Cell, list[dict[str, Any]]], None],
    pool,
) -> None:
    """Cells in the worker processes of ``pool``; results recorded as they come."""
    from concurrent.futures import FIRST_COMPLETED, wait

    cfg_dict = to_dict(cfg)
    queue = iter(todo)
    running = {}
    # one cell in flight per worker, so an interruption loses at most that many
    for cell in queue:
        running[pool.submit(_worker_cell, cfg_dict, art, files, cell)] = cell
        if len(running) == cfg.grid_workers:
            break
    while running:
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for fut in finished:
            cell = running.pop(fut)
            finish(cell, fut.result())
            nxt = next(queue, None)
            if nxt is not None:
                running[pool.submit(_worker_cell, cfg_dict, art, files, nxt)] = nxt


def copy_learngenes(stages: dict[str, Stage], dest: Path) -> None:
    """``dest/<method>.safetensors`` + ``.json``: the learngene files a user keeps."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, stage in stages.items():
        if not name.startswith("learngene_"):
            continue
        method = name.removeprefix("learngene_")
        # safetensors first, JSON last: the pair is complete once the JSON is there
        for suffix in (".safetensors", ".json"):
            src = stage.path / f"learngene{suffix}"
            with atomic_path(dest / f"{method}{suffix}") as tmp:
                shutil.copyfile(src, tmp)
