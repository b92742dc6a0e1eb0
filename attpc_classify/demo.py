"""The demo: simulate -> preprocess -> train -> evaluate -> compare -> classify -> report.

``attpc-classify demo --out DIR`` (``make demo``) runs the whole pipeline on a small
simulated set with the same library calls the sub-commands make, and writes::

    DIR/sim/run_XXXX.h5          simulated Spyral-format run files (e15503b randomised)
    DIR/data/train.h5, test.h5   image + feature files; the test set is whole held-out run files
    DIR/runs/<model>_<task>/     one run directory per model and task it trains on (classify)
    DIR/compare.{md,csv,png}     binary and 3-class results side by side
    DIR/predictions.csv          the best 3-class run applied to a raw test run file
    DIR/report.md                numbers with 95 % intervals, figures, commands to rerun

Every stage records a stamp (``DIR/.stamps/<stage>.json``) holding the settings it ran
with. A rerun with the same settings reuses the stage's outputs; a stage whose settings
changed (or whose outputs are missing) is redone, together with every stage after it.
Simulation resumes run file by run file (`data_prep.simulate.simulate` with
``resume=True``), so a killed demo loses at most the file in progress.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from attpc_classify.config import find_config, git_sha, read_yaml, to_dict
from attpc_classify.plots import markdown_table
from attpc_classify.stagecache import StageCache
from attpc_classify.train_config import DataConfig
from data_prep.errors import InputError

logger = logging.getLogger(__name__)


@dataclass
class DemoModel:
    """One model family of the demo: a train preset plus overrides (``key=value``)."""

    preset: str  # configs/train/<preset>.yaml
    overrides: tuple[str, ...] = ()
    # the demo's tasks this model trains on (a 3-class run is scored on binary too); when
    # none of the demo's tasks is among them, it trains on the demo's tasks
    tasks: tuple[str, ...] = ("multiclass", "binary")

    def tasks_in(self, tasks: tuple[str, ...]) -> tuple[str, ...]:
        """The demo's ``tasks`` this model trains on."""
        return tuple(t for t in tasks if t in self.tasks) or tasks


#: Every model family the demo can train (``--models``): smaller than the presets so that
#: the demo stays under 4 minutes on 2 cores. A 16-channel CNN (72 k parameters) on
#: the robust images; the trees on physics features (configs/train/gbt.yaml, a 15-leaf,
#: class-balanced setting: docs/recommended-model.md), fitted in seconds; a 2-block ViT
#: of width 96 with a 16-channel convolutional stem (0.26 M), the demo's transformer (at
#: this size it calls protons worse than both: docs/demo.md).
DEMO_MODELS: dict[str, DemoModel] = {
    "cnn": DemoModel("cnn_small", ("model.width=16",)),
    "gbt": DemoModel(
        "gbt",
        (
            "optim.balance=weights",
            "model.max_leaf_nodes=15",
            "model.learning_rate=0.1",
            # the run's charge unit hidden for a tenth of the training runs, as the
            # recommended model (docs/sim-to-real.md, "A run's charge unit")
            "data.unit_dropout=0.1",
            # the track trees stop where held-out tracks stop improving (28-43 of 300
            # iterations): 27 -> 17 s per run on the AVX-512 host, at a validation
            # proton F1 0.005 lower over five training sets of this size
            # (docs/sim-to-real.md, "The trees' features at the demo's size")
            "model.track_early_stopping=true",
            # of the tracks likelier a light product than not, the pair whose circles lie
            # widest apart, not the two likeliest: a pile-up's proton cut in two no longer
            # hides the other reaction (validation proton F1 0.846 -> 0.857 over five
            # training sets of this size, docs/sim-to-real.md "Two light tracks: one
            # particle or two reactions")
            "model.light_pair=widest",
            # a tenth of the training events stops the trees instead of a fifth: 150 more
            # to learn from (validation proton F1 0.857 -> 0.864 over five training sets
            # of this size; a twentieth, 0.860: docs/demo.md)
            "data.val_fraction=0.1",
        ),
    ),
    "vit": DemoModel(
        "vit_tiny",
        (
            "model.depth=2",
            "model.width=96",
            "model.heads=3",
            # a convolutional stem (vit.stem_width): on the demo's images the patch
            # embedding barely learned (validation macro-F1 0.31 / 0.37, seeds 0 / 1), the
            # stem did (0.55 / 0.52) for 17 % more training time (docs/demo.md)
            "model.stem_width=16",
            "model.drop_path=0.0",
            "optim.lr=1e-3",
            "optim.warmup_epochs=1",
        ),
        # 3-class only: its binary run, the demo's weakest (proton F1 0.64 against the
        # 3-class run's 0.69 scored on binary), cost ~40 s of the 4 minutes
        tasks=("multiclass",),
    ),
}
DEFAULT_MODELS = ("cnn", "vit", "gbt")


def _default_models() -> dict[str, DemoModel]:
    return {name: DEMO_MODELS[name] for name in DEFAULT_MODELS}


@dataclass
class DemoConfig:
    """Sizes and seeds of the demo (defaults: about 2.5 minutes on the 2 cores of the
    AVX-512 host on 2026-12-06; the AVX2 host of 2026-12-03 was 2.7x slower on the same
    simulation; the simulation and the training take most of it; docs/demo.md)."""

    # domain-randomised simulation and robust inputs (docs/sim-to-real.md): models that
    # still call protons on a detector run with other gain, threshold and noise
    sim_config: str = "e15503b_randomized"  # preset in configs/sim/ or a YAML path
    prep_config: str = "robust"  # preset in configs/prep/ or a YAML path; views/size below
    # on top of prep_config: the run's structured noise (hot pads, chip fires, bursts)
    # removed first, as configs/prep/features.yaml does, and the physics features the
    # trees read stored beside the images, so that one file serves every model: named
    # tracks with the track clustering's z weighed by 0.5, as the README's recommended
    # model (chosen at this size on in-simulation validation, scripts/demo_features.py:
    # proton F1 0.783 -> 0.806 over tracks_v2, docs/sim-to-real.md "The demo's models"),
    # each run file's charges also in its own unit (proton F1 0.815 -> 0.854 there), and
    # per pair of tracks whether they are one particle (tracks_v6: the light products'
    # circles and vertices; 0.827 -> 0.846, docs/sim-to-real.md "Two light tracks: one
    # particle or two reactions"). Each track's helix about its own vertex (tracks_v8, the
    # recommended model's tracks_v7 plus the pairs) was level at this size (0.872 ->
    # 0.873, docs/sim-to-real.md "The track's own vertex"): not taken
    prep_settings: dict[str, Any] = field(
        default_factory=lambda: {
            "structured_noise": "rules",
            "features": "tracks_v6",
            "cluster_z_scale": 0.5,
            "charge_calibration": "proton_band",
        }
    )
    # simulated events in total (class mix of the preset): the trees gain most from more
    # events (validation proton F1 0.857 -> 0.872 at 3,000 over five training sets), and
    # since the transport shortcut (data_prep/sim/transport.py) the simulation costs
    # about 20 s per 1,000 on 2 workers of the AVX-512 host, not 33 s; 3,000 events with
    # 7 network epochs took 149 s, 2,000 with 10 took 155 s before it (docs/demo.md)
    events: int = 3000
    events_per_file: int = 100  # events per simulated run file
    test_files: int = 3  # the last run files form the test set (never seen in training)
    seed: int = 0  # simulation, training split, initialisation and bootstrap
    workers: int = 2  # simulation / preprocessing / training processes
    views: tuple[str, ...] = ("xy", "zy")  # image channels
    size: int = 64  # pixels per side
    models: dict[str, DemoModel] = field(default_factory=_default_models)
    # models trained on each task; 3-class models are also scored on the binary task
    tasks: tuple[str, ...] = ("multiclass", "binary")
    # network epochs (no early stopping: same work every run); 7 at 3,000 events are
    # about the optimiser steps 10 made at 2,000 (15,100 images against 13,400)
    epochs: int = 7
    batch_size: int = 32  # events per step
    n_boot: int = 1000  # bootstrap resamples of the 95 % intervals

    def __post_init__(self) -> None:
        self.views = tuple(self.views)
        self.tasks = tuple(self.tasks)
        n_files = -(-self.events // self.events_per_file)
        if self.events < 1 or self.events_per_file < 1:
            raise InputError("demo needs events >= 1 and events_per_file >= 1")
        if not 1 <= self.test_files < n_files:
            raise InputError(
                f"{self.events} events make {n_files} run files of {self.events_per_file}: "
                f"test_files must be 1..{n_files - 1}"
            )
        bad = [t for t in self.tasks if t not in ("multiclass", "binary")]
        if bad or not self.tasks:
            raise InputError(f"demo tasks must be multiclass and/or binary, got {list(self.tasks)}")
        if self.epochs < 1 or self.batch_size < 1 or self.n_boot < 0 or self.workers < 1:
            raise InputError("demo needs epochs, batch_size, workers >= 1 and n_boot >= 0")


@dataclass
class DemoResult:
    """Where the demo wrote its report and runs, and how long each stage took."""

    out_dir: Path
    report: Path
    runs: dict[str, Path]
    timings: dict[str, float]
    reused: list[str]


def _prep_config(cfg: DemoConfig) -> Any:
    """The demo's image settings: the prep preset, with the demo's views and size."""
    from data_prep.images import ImageConfig

    path = find_config(cfg.prep_config, "prep")
    settings = read_yaml(path) | cfg.prep_settings
    settings |= {"views": list(cfg.views), "size": cfg.size, "voxel_grid": 0}
    return ImageConfig.from_dict(settings)


def _is_trees(model: DemoModel) -> bool:
    """Whether the model is fitted by scikit-learn (no epochs, no batches)."""
    from attpc_classify.config import load_config
    from attpc_classify.models import SKLEARN_MODELS
    from attpc_classify.train_config import TrainConfig

    name = load_config(TrainConfig, model.preset, list(model.overrides)).model.name
    return name in SKLEARN_MODELS


def _train_overrides(cfg: DemoConfig, model: DemoModel) -> list[str]:
    if _is_trees(model):
        # boosting stops early on the validation split: epochs and batches do not apply
        return [*model.overrides, f"seed={cfg.seed}"]
    return [
        *model.overrides,
        f"optim.epochs={cfg.epochs}",
        f"optim.batch_size={cfg.batch_size}",
        "optim.patience=0",
        f"seed={cfg.seed}",
    ]


def run_demo(
    out_dir: str | Path = "demo_out",
    config: DemoConfig | None = None,
    *,
    progress_factory: Callable[[str, int | None], Callable[[int], None]] | None = None,
) -> DemoResult:
    """Run the demo pipeline into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    out_dir
        Output directory; stages already done there with the same settings are reused.
    config
        Sizes, seeds and models (`DemoConfig`).
    progress_factory
        ``progress_factory(stage, total)`` returns a progress callback for that stage.

    Returns
    -------
    DemoResult
        Paths of the report and runs, seconds per stage, stages reused.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / ".stamps").is_dir():
        # The demo deletes stale stages under out_dir: never do that to someone's directory.
        raise InputError(
            "exists and is not a demo output directory; choose another --out", path=out_dir
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    d = _Demo(config or DemoConfig(), out_dir, StageCache(out_dir), progress_factory)
    start_all = time.perf_counter()
    with d.timed("simulate"):
        summary, sim_key = _simulate(d)
    files = list(summary.files)
    train_files, test_files = files[: -d.cfg.test_files], files[-d.cfg.test_files :]
    with d.timed("preprocess"):
        image_config, prep_key, train_h5, test_h5 = _preprocess(d, sim_key, train_files, test_files)
    with d.timed("train"):
        runs, train_cfgs = _train(d, prep_key, train_h5)
        _keep_health(d, runs, image_config, train_files)
    with d.timed("evaluate"):
        evals = _evaluate(d, runs, test_h5, test_files)
    with d.timed("compare + classify"):
        comparison, best, classified = _compare_and_classify(d, runs, evals, test_files[-1])
        health = _check_health(runs[best], image_config, test_files[-1], classified)
    d.timings["total"] = time.perf_counter() - start_all
    report = _write_report(
        out_dir,
        d.cfg,
        sim_summary=summary.to_dict(),
        train_files=train_files,
        test_files=test_files,
        image_config=image_config,
        runs=runs,
        train_cfgs=train_cfgs,
        evals=evals,
        comparison=comparison,
        best=best,
        classified=classified.to_dict(),
        health=health,
        timings=d.timings,
        reused=d.reused,
    )
    logger.info(f"[6/6] report {report}")
    return DemoResult(out_dir=out_dir, report=report, runs=runs, timings=d.timings, reused=d.reused)


@dataclass
class _Demo:
    """What every stage of the demo reads or adds to: settings, output directory, stage
    records, progress bars, seconds per stage and the stages reused."""

    cfg: DemoConfig
    out_dir: Path
    stamps: StageCache  # records in out_dir/.stamps/
    progress_factory: Callable[[str, int | None], Callable[[int], None]] | None
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)

    def progress(self, stage: str, total: int | None) -> Callable[[int], None] | None:
        return self.progress_factory(stage, total) if self.progress_factory else None

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.timings[stage] = time.perf_counter() - t0


def _simulate(d: _Demo) -> tuple[Any, dict[str, Any]]:
    """Stage 1: the labelled run files in ``sim/``; their summary and the stage key."""
    from attpc_classify.config import load_config
    from data_prep.simulate import SimConfig, simulate

    cfg = d.cfg
    sim_cfg = load_config(SimConfig, cfg.sim_config)
    sim_key = {
        "sim": to_dict(sim_cfg),
        "events": cfg.events,
        "seed": cfg.seed,
        "events_per_file": cfg.events_per_file,
    }
    sim_dir = d.out_dir / "sim"
    if not d.stamps.matches("simulate", sim_key):
        # The stamp says which settings sim/ holds (written before simulating, so a killed
        # simulation is resumed by simulate() itself); other settings: start afresh.
        shutil.rmtree(sim_dir, ignore_errors=True)
        d.stamps.stamp("simulate", sim_key)
    logger.info(
        f"[1/6] simulate {cfg.events} events ({sim_cfg.name}, seed {cfg.seed}, "
        f"{cfg.workers} workers) -> {sim_dir}"
    )
    summary = simulate(
        sim_cfg,
        cfg.events,
        sim_dir,
        seed=cfg.seed,
        workers=cfg.workers,
        events_per_file=cfg.events_per_file,
        resume=True,
        progress=d.progress("simulate", cfg.events),
    )
    if len(summary.resumed) == len(summary.files):
        d.reused.append("simulate")
    d.stamps.stamp("simulate", sim_key, summary=summary.to_dict())
    return summary, sim_key


def _preprocess(
    d: _Demo, sim_key: dict[str, Any], train_files: list[Path], test_files: list[Path]
) -> tuple[Any, dict[str, Any], Path, Path]:
    """Stage 2: ``data/train.h5`` and ``data/test.h5``; the image settings, the stage key
    and the two paths."""
    from data_prep.build import build_images
    from data_prep.imagefile import read_info

    cfg = d.cfg
    image_config = _prep_config(cfg)
    data_dir = d.out_dir / "data"
    data_dir.mkdir(exist_ok=True)
    split = {
        "train": (train_files, data_dir / "train.h5"),
        "test": (test_files, data_dir / "test.h5"),
    }
    prep_key = {"sim": sim_key, "image": image_config.to_dict(), "test_files": cfg.test_files}
    if d.stamps.matches("preprocess", prep_key) and all(p.exists() for _, p in split.values()):
        d.reused.append("preprocess")
        logger.info("[2/6] preprocess: reusing data/train.h5, data/test.h5")
    else:
        d.stamps.clear("preprocess")
        config = image_config
        for name, (inputs, path) in split.items():
            logger.info(f"[2/6] preprocess {len(inputs)} run files -> {path}")
            path.unlink(missing_ok=True)
            build_images(
                inputs,
                path,
                config,
                workers=cfg.workers,
                progress=d.progress(f"preprocess {name}", None),
            )
            # charge_norm=quantile: the test runs are mapped onto the training set's
            # charge quantiles, as `preprocess --reference` does (empty otherwise)
            reference = read_info(path)["image_config"].charge_quantiles
            config = replace(image_config, charge_quantiles=reference)
        d.stamps.stamp("preprocess", prep_key)
    return image_config, prep_key, split["train"][1], split["test"][1]


def _train(
    d: _Demo, prep_key: dict[str, Any], train_h5: Path
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Stage 3: one run per model x task under ``runs/``; run directories and (model,
    task) per run name. With ``workers`` > 1 the runs train side by side, one process
    each with its share of the CPUs (`predict.worker_pool`): on 2 cores two one-thread
    runs keep both busy, where one two-thread run waits on its slower thread whenever
    anything else wants a core."""
    from attpc_classify.config import load_config
    from attpc_classify.train_config import TrainConfig

    cfg = d.cfg
    runs: dict[str, Path] = {}
    train_cfgs: dict[str, Any] = {}
    todo: list[tuple[str, Any, dict[str, Any]]] = []
    for model_name, model in cfg.models.items():
        for task in model.tasks_in(cfg.tasks):
            name = f"{model_name}_{task}"
            run_dir = d.out_dir / "runs" / name
            overrides = [
                *_train_overrides(cfg, model),
                f"data.path={train_h5}",
                f"data.task={task}",
                f"out={run_dir}",
            ]
            tcfg = load_config(TrainConfig, model.preset, overrides)
            train_cfgs[name] = (model, task)
            key = {"prep": prep_key, "train": to_dict(tcfg)}
            runs[name] = run_dir
            if d.stamps.matches(f"train_{name}", key) and (run_dir / "model.json").exists():
                d.reused.append(f"train {name}")
                logger.info(f"[3/6] train {name}: reusing {run_dir}")
                continue
            d.stamps.clear(f"train_{name}")
            if run_dir.exists():
                shutil.rmtree(run_dir)  # a stale or half-written run of this demo
            logger.info(
                f"[3/6] train {name} ({model.preset} + {' '.join(model.overrides)}, "
                + ("trees)" if _is_trees(model) else f"{cfg.epochs} epochs)")
            )
            todo.append((name, tcfg, key))
    if cfg.workers > 1 and len(todo) > 1:
        from concurrent.futures import as_completed

        from attpc_classify.predict import worker_pool

        with worker_pool(min(cfg.workers, len(todo))) as pool:
            jobs = {pool.submit(_fit, tcfg, None, True): (name, key) for name, tcfg, key in todo}
            for job in as_completed(jobs):
                name, key = jobs[job]
                seconds = job.result()
                logger.info(f"[3/6] trained {name} in {seconds:.0f} s")
                d.stamps.stamp(f"train_{name}", key, seconds=seconds)
    else:
        for name, tcfg, key in todo:
            seconds = _fit(tcfg, d.progress(f"train {name}", None), False)
            d.stamps.stamp(f"train_{name}", key, seconds=seconds)
    return runs, train_cfgs


def _keep_health(d: _Demo, runs: dict[str, Path], image_config: Any, train_files: list[Path]):
    """Each run keeps the detector health of its training run files as ``health.json``
    (`data_prep.health`): the reference ``classify`` and the Spyral phase check a run
    against. Measured once, where a run has none yet."""
    from data_prep.health import MODEL_REFERENCE, measure_files, write_health

    missing = [r for r in runs.values() if not (r / MODEL_REFERENCE).is_file()]
    if not missing:
        return
    logger.info(f"[3/6] health of the {len(train_files)} training run files -> runs/*/health.json")
    if d.cfg.workers > 1:
        from attpc_classify.predict import worker_pool

        with worker_pool(d.cfg.workers) as pool:
            healths = measure_files(train_files, image_config, executor=pool)
    else:
        healths = measure_files(train_files, image_config)
    for run_dir in missing:
        write_health(run_dir / MODEL_REFERENCE, healths, image_config)


def _check_health(run_dir: Path, image_config: Any, raw_file: Path, classified: Any) -> str:
    """The raw run file's health against the run's ``health.json``, in words (its charge
    unit and beam line as classifying it measured them)."""
    from data_prep.health import MODEL_REFERENCE, Known, check_files, outside_items

    known = Known(classified.charge_units, classified.beam_axes).of([raw_file])
    reference = run_dir / MODEL_REFERENCE
    [(_, found)] = check_files([raw_file], image_config, reference, known=known)
    if not found:
        return "inside the range of the training files on every number"
    return f"outside the training files' range on {outside_items(found)}"


def _fit(tcfg: Any, progress: Callable[[int], None] | None, quiet: bool) -> float:
    """Train one run (in this process or a pool's); its wall time in seconds. ``quiet``:
    no per-epoch log lines (runs trained side by side would interleave them)."""
    import torch
    from threadpoolctl import threadpool_limits

    from attpc_classify.engine import train_run

    if quiet:
        logging.getLogger("attpc_classify.engine").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    # scikit-learn's OpenMP pool (the trees) to the same share of the CPUs as torch's: its
    # default is every core, which two runs side by side would oversubscribe
    with threadpool_limits(limits=torch.get_num_threads()):
        train_run(tcfg, progress=progress)
    return time.perf_counter() - t0


def _evaluate(
    d: _Demo, runs: dict[str, Path], test_h5: Path, test_files: list[Path]
) -> dict[str, dict]:
    """Stage 4: every run on the test image file; metrics.json contents per run (side by
    side on the training stage's pool with ``workers`` > 1: each run writes only its own
    ``eval/`` directory)."""
    cfg = d.cfg
    for name in runs:
        logger.info(f"[4/6] evaluate {name} on {test_h5.name} ({cfg.n_boot} bootstrap resamples)")
    args = (test_h5, cfg.n_boot, cfg.seed, test_files)
    if cfg.workers > 1 and len(runs) > 1:
        from attpc_classify.predict import worker_pool

        with worker_pool(min(cfg.workers, len(runs))) as pool:
            jobs = {name: pool.submit(_evaluate_one, run_dir, *args, None)
                    for name, run_dir in runs.items()}  # fmt: skip
            return {name: job.result() for name, job in jobs.items()}
    return {
        name: _evaluate_one(run_dir, *args, d.progress(f"evaluate {name}", None))
        for name, run_dir in runs.items()
    }


def _evaluate_one(
    run_dir: Path,
    test_h5: Path,
    n_boot: int,
    seed: int,
    test_files: list[Path],
    progress: Callable[[int], None] | None,
) -> dict:
    """`evaluate_run` of one run (in this process or a pool's); its metrics.json contents."""
    from attpc_classify.evaluate import evaluate_run

    return evaluate_run(
        run_dir, test_h5, n_boot=n_boot, seed=seed, progress=progress, sim_files=test_files
    ).metrics


def _compare_and_classify(
    d: _Demo, runs: dict[str, Path], evals: dict[str, dict], raw_file: Path
) -> tuple[dict, str, Any]:
    """Stage 5: the comparison table and figure; the best run classifies a raw run file."""
    from attpc_classify.checkpoint import load_run
    from attpc_classify.predict import classify_files
    from attpc_classify.report import compare_row, write_comparison

    rows = [compare_row(m, name=name) for name, m in evals.items()]
    comparison = write_comparison(rows, d.out_dir, title="demo: test set")
    best = _best_run(evals)
    logger.info(f"[5/6] classify {raw_file.name} with {best} -> predictions.csv")
    classified = classify_files(
        load_run(runs[best]),
        [raw_file],
        d.out_dir / "predictions.csv",
        progress=d.progress("classify", None),
    )
    return comparison, best, classified


def _best_run(evals: dict[str, dict]) -> str:
    """The run with the best 3-class macro-F1 (else the best binary proton F1)."""

    def score(item: tuple[str, dict]) -> tuple[int, float]:
        tasks = item[1]["tasks"]
        if "multiclass" in tasks:
            return (1, tasks["multiclass"]["macro_f1"]["value"] or 0.0)
        return (0, tasks["binary"]["per_class"]["proton"]["f1"]["value"] or 0.0)

    return max(evals.items(), key=score)[0]


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def _write_report(
    out_dir: Path,
    cfg: DemoConfig,
    *,
    sim_summary: dict,
    train_files: list[Path],
    test_files: list[Path],
    image_config: Any,
    runs: dict[str, Path],
    train_cfgs: dict[str, Any],
    evals: dict[str, dict],
    comparison: dict,
    best: str,
    classified: dict,
    health: str,
    timings: dict[str, float],
    reused: list[str],
) -> Path:
    from attpc_classify.report import write_text

    def counts(metrics: dict) -> str:
        per = metrics["tasks"].get("multiclass") or metrics["tasks"]["binary"]
        return ", ".join(f"{k} {v['support']}" for k, v in per["per_class"].items())

    def files(paths: list[Path]) -> str:
        return " ".join(_rel(p, Path.cwd()) for p in paths)

    from attpc_classify.device import describe_cpu  # torch: imported where the report is made

    first = next(iter(evals.values()))
    test_counts = counts(evals[_best_run(evals)]) if evals else ""
    lines = [
        "# attpc-classify demo report",
        "",
        f"`{demo_command(out_dir, cfg)}`",
        "",
        f"{timings['total']:.0f} s on {describe_cpu()} (load average "
        f"{os.getloadavg()[0]:.1f} at the end), git {git_sha()[:12]}"
        + (f"; reused from an earlier run: {', '.join(reused)}" if reused else "")
        + ".",
        "",
        f"The whole pipeline on {sim_summary['n_events']} simulated events: models trained "
        f"on {sim_summary['n_events'] - first['n_events']} events (networks for "
        f"{cfg.epochs} epochs; trees until the validation loss stops falling), "
        f"tested on {first['n_labelled']} others. The 95 % intervals are bootstrap intervals "
        "over the test events: they show how much the numbers could move with another test "
        "set of this size, not how much they move between training seeds.",
        "",
        "## Data",
        "",
        f"- Simulation: preset `{cfg.sim_config}` (attpc-engine, e15503b physics), "
        f"seed {cfg.seed}, {sim_summary['n_events']} events "
        f"({', '.join(f'{k} {v}' for k, v in sim_summary['classes'].items())}) in "
        f"{len(train_files) + len(test_files)} run files of {cfg.events_per_file}.",
        f"- Training set: {len(train_files)} run files -> `data/train.h5` (a stratified "
        f"{_validation_text(cfg)}). Test set: the last "
        f"{len(test_files)} run files -> `data/test.h5` ({test_counts}), never seen in training.",
        f"- Images: views {', '.join(image_config.views)}, {image_config.size} x "
        f"{image_config.size} pixels, x/y {list(image_config.x_range)} mm, z "
        f"{list(image_config.z_range)} mm, charge {image_config.charge_transform}"
        f"(q) / {image_config.charge_transform}({image_config.charge_scale:g} ADC), "
        f"{image_config.dtype}; robust inputs (`{_prep_path_text(cfg)}`): pixel values "
        f"{', '.join(image_config.pixel_values)}, denoise {image_config.denoise}, beam_axis "
        f"{image_config.beam_axis} (mask {image_config.beam_mask_mm:g} mm about it), charge "
        f"normalisation "
        f"{image_config.charge_norm}, structured noise {image_config.structured_noise}"
        + (
            f"; physics features `{image_config.features}` for the trees"
            if image_config.features != "none"
            else ""
        )
        + ".",
        "",
        "## Results on the test set",
        "",
        f"Point estimate [bootstrap 95 % interval, {cfg.n_boot} resamples, seed {cfg.seed}]. "
        "A 3-class run is also scored on the binary task: its score is p(proton), and it "
        "predicts proton exactly when its 3-class prediction is proton.",
        "",
        comparison["table"],
        "![binary and 3-class results](compare.png)",
        "",
        "Also as [compare.csv](compare.csv). Per run:",
        "",
    ]
    lines += [_run_line(name, metrics, out_dir) for name, metrics in evals.items()]
    best_eval = evals[best]["run"]
    lines += [
        "",
        f"![confusion matrix of {best}]({_rel(Path(best_eval) / 'eval' / 'test' / 'confusion_multiclass.png', out_dir)})"  # noqa: E501
        if "multiclass" in evals[best]["tasks"]
        else "",
        "",
        *_channel_table(best, evals[best]),
        "## Classifying a raw run file",
        "",
        f"`{best}` applied to the raw point clouds of `{_rel(test_files[-1], out_dir)}` with "
        "the preprocessing recorded in its checkpoint: "
        f"{classified['n_events']} events "
        f"({', '.join(f'{k} {v}' for k, v in classified['predicted'].items())}) in "
        f"{classified['wall_s']:.2f} s -> [predictions.csv](predictions.csv) "
        "(`run,event_id,label,p_proton,p_carbon,p_other`). Its detector health "
        f"(`attpc-classify health`, against the run's `health.json`): {health}.",
        "",
        "## Time per stage",
        "",
        *markdown_table(
            ["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()]
        ).splitlines(),
        "",
        "## Reproduce",
        "",
        "The same pipeline with the sub-commands (same seeds, same settings; run from the "
        "repository root):",
        "",
        "```bash",
        *_commands(out_dir, cfg, train_files, test_files, image_config, runs, train_cfgs, best),
        "```",
        "",
    ]
    return write_text(out_dir / "report.md", "\n".join(lines))


def _run_line(name: str, metrics: dict, out_dir: Path) -> str:
    """One Markdown bullet: a run's scores per task, its metrics.json and figures."""
    from attpc_classify.report import fmt_estimate

    eval_dir = Path(metrics["run"]) / "eval" / "test"
    figs = [
        f"[{f.removesuffix('.png')}]({_rel(eval_dir / f, out_dir)})" for f in metrics["figures"]
    ]
    parts = []
    for task, m in metrics["tasks"].items():
        extra = ""
        if task == "binary":
            extra = (
                f", proton F1 {fmt_estimate(m['per_class']['proton']['f1'])}, "
                f"ROC AUC {fmt_estimate(m['roc_auc'])}"
            )
        parts.append(
            f"{task}: accuracy {fmt_estimate(m['accuracy'])}, macro-F1 "
            f"{fmt_estimate(m['macro_f1'])}{extra}"
        )
    from attpc_classify.models import SKLEARN_MODELS

    kept = (
        "fitted once, boosting stopped early on the validation loss"
        if metrics["model"]["name"] in SKLEARN_MODELS
        else f"epoch {metrics['epoch']} kept by validation macro-F1"
    )
    return (
        f"- **{name}** ({kept}; "
        f"[metrics.json]({_rel(eval_dir / 'metrics.json', out_dir)})): "
        + "; ".join(parts)
        + ". Figures: "
        + ", ".join(figs)
    )


def _channel_table(name: str, metrics: dict) -> list[str]:
    """Markdown lines: the errors of run ``name`` per simulated reaction channel."""
    by_channel = metrics.get("by_channel")
    if not by_channel:
        return []
    tasks = list(by_channel)
    rows = []
    for channel in by_channel[tasks[0]]:
        cells = [channel]
        for task in tasks:
            r = by_channel[task][channel]
            called = ", ".join(f"{k} {v}" for k, v in r["called"].items())
            cells.append(f"{r['wrong']} / {r['n']}" + (f" ({called})" if called else ""))
        rows.append(cells)
    return [
        f"Errors of `{name}` per simulated channel (wrong / events, and what they were "
        "called): which reactions leak into the proton sample.",
        "",
        *markdown_table(["channel", *tasks], rows).splitlines(),
        "",
    ]


def demo_command(out_dir: Path, cfg: DemoConfig) -> str:
    """The ``attpc-classify demo`` command line that reproduces ``cfg``."""
    defaults = DemoConfig()
    parts = [f"attpc-classify demo --out {out_dir}"]
    flags = {
        "--events": (cfg.events, defaults.events),
        "--test-files": (cfg.test_files, defaults.test_files),
        "--epochs": (cfg.epochs, defaults.epochs),
        "--tasks": (",".join(cfg.tasks), ",".join(defaults.tasks)),
        "--models": (",".join(cfg.models), ",".join(defaults.models)),
        "--seed": (cfg.seed, defaults.seed),
        "--workers": (cfg.workers, defaults.workers),
        "--n-boot": (cfg.n_boot, defaults.n_boot),
    }
    parts += [f"{flag} {value}" for flag, (value, default) in flags.items() if value != default]
    hidden = (
        "sim_config",
        "prep_config",
        "prep_settings",
        "events_per_file",
        "views",
        "size",
        "batch_size",
    )
    changed = [f"{k}={getattr(cfg, k)}" for k in hidden if getattr(cfg, k) != getattr(defaults, k)]
    if changed or cfg.models != {m: DEMO_MODELS[m] for m in cfg.models if m in DEMO_MODELS}:
        parts.append("# with DemoConfig(" + ", ".join(changed or ["custom models"]) + ")")
    return " ".join(parts)


def _val_fraction(model: DemoModel) -> float:
    """The share of the training file a demo model validates on: its overrides', else
    its preset's, else the training default."""
    for override in reversed(model.overrides):
        key, _, value = override.partition("=")
        if key.strip() == "data.val_fraction":
            return float(value)
    preset = read_yaml(find_config(model.preset, "train")).get("data") or {}
    return float(preset.get("val_fraction", DataConfig.val_fraction))


def _validation_text(cfg: DemoConfig) -> str:
    """How much of the training file validates each model family, for the report."""
    shares: dict[float, list[str]] = {}
    for name, model in cfg.models.items():
        shares.setdefault(_val_fraction(model), []).append(name)
    if len(shares) == 1:
        return f"{next(iter(shares)):.0%} of it validates each run"
    parts = [f"{share:.0%} for {', '.join(names)}" for share, names in shares.items()]
    return "share of it validates each run: " + "; ".join(parts)


def _prep_path_text(cfg: DemoConfig) -> str:
    path = Path(cfg.prep_config)
    return str(path) if path.is_file() else f"configs/prep/{cfg.prep_config}.yaml"


def _commands(
    out_dir: Path,
    cfg: DemoConfig,
    train_files: list[Path],
    test_files: list[Path],
    image_config: Any,
    runs: dict[str, Path],
    train_cfgs: dict[str, Any],
    best: str,
) -> list[str]:
    from data_prep.images import ImageConfig

    d = out_dir
    # every ImageConfig field that differs from the defaults, so the files come out the same
    defaults, used = ImageConfig().to_dict(), image_config.to_dict()
    sets = [
        f"--set {k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
        for k, v in used.items()
        if k not in ("views", "size") and v != defaults[k]
    ]
    views = f"--views {','.join(image_config.views)} --size {image_config.size}"
    prep = " ".join([views, *sets, f"--workers {cfg.workers}"])
    cmds = [
        f"attpc-classify simulate --config {cfg.sim_config} --events {cfg.events} "
        f"--events-per-file {cfg.events_per_file} --seed {cfg.seed} --workers {cfg.workers} "
        f"--out {d}/sim",
        f"attpc-classify preprocess {' '.join(str(p) for p in train_files)} "
        f"--out {d}/data/train.h5 {prep}",
        f"attpc-classify preprocess {' '.join(str(p) for p in test_files)} "
        f"--out {d}/data/test.h5 {prep}"
        # per-run charge normalisation: the test runs onto the training set's quantiles
        + (f" --reference {d}/data/train.h5" if image_config.charge_norm == "quantile" else ""),
    ]
    for name, run_dir in runs.items():
        model, task = train_cfgs[name]
        overrides = " ".join(_train_overrides(cfg, model))
        cmds.append(
            f"attpc-classify train --config {model.preset} "
            f"--data {d}/data/train.h5 --task {task} --out {run_dir} {overrides}"
        )
    for run_dir in runs.values():
        cmds.append(
            f"attpc-classify evaluate {run_dir} --data {d}/data/test.h5 "
            f"--n-boot {cfg.n_boot} --seed {cfg.seed} "
            f"--sim {' '.join(str(p) for p in test_files)}"
        )
    cmds.append(
        f"attpc-classify compare {' '.join(str(r) for r in runs.values())} --out {d} "
        f"--title 'demo: test set'"
    )
    for run_dir in runs.values():
        cmds.append(
            f"attpc-classify health {' '.join(str(p) for p in train_files)} --model {run_dir} "
            f"--out {run_dir}/health.json"
        )
    cmds.append(f"attpc-classify classify {runs[best]} {test_files[-1]} --out {d}/predictions.csv")
    return cmds
