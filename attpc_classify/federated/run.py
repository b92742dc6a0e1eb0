"""``attpc-classify federate``: labs' data, the Flower simulation, the new-lab comparison,
results.

``OUT/`` holds::

    config.yaml                 the resolved config (a rerun with --resume must match it)
    data/                       simulated labs (stage cache: sim_<lab>/, images_<lab>/)
    fedavg/, genefl/            state.json + round_NNNN.safetensors of the last finished
                                round; clients/<lab>/ the GENE-FL labs' local models
    results.csv                 one row per strategy, round and lab
    new_client.csv              the new lab's F1 per initialisation and epoch
    report.md, *.png            the comparison table and figures
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from attpc_classify.config import config_hash, read_yaml, save_config, to_dict
from attpc_classify.federated.config import ClientSpec, FedConfig
from data_prep.atomic import atomic_path
from data_prep.errors import InputError

logger = logging.getLogger(__name__)

RESULT_COLUMNS = ("strategy", "round", "client", "proton_f1", "macro_f1", "accuracy",
                  "train_loss", "penalty", "bytes_down", "bytes_up", "arrays_sent",
                  "round_s")  # fmt: skip
NEW_CLIENT_COLUMNS = ("init", "epochs", "proton_f1", "macro_f1", "accuracy", "init_tensors")


# --------------------------------------------------------------------------- data


def client_file(cfg: FedConfig, spec: ClientSpec, out: Path, progress=None) -> str:
    """The lab's image file: as given, or simulated and imaged under ``OUT/data``."""
    if spec.images:
        path = Path(spec.images)
        if not path.is_file():
            raise InputError(f"client {spec.name}: image file not found", path=path)
        return str(path)
    from attpc_classify.stagecache import StageCache
    from attpc_classify.transfer.stages import images_stage, simulate_stage

    cache = StageCache(out / "data")
    # FedConfig.data has the fields these stages read (sim_workers, events_per_file, image)
    sim = simulate_stage(cache, cfg, spec.name, spec.sim, progress)
    return images_stage(cache, cfg, sim).info["file"]


# --------------------------------------------------------------------------- run


def _check_out(cfg: FedConfig, out: Path, resume: bool) -> None:
    saved = out / "config.yaml"
    if not saved.exists():
        return
    if not resume:
        raise InputError("a federated run is already there: add --resume or choose another "
                         "--out", path=out)  # fmt: skip
    # `rounds` may grow: --resume rounds=N continues a finished run for more rounds
    old = {k: v for k, v in read_yaml(saved).items() if k not in ("git_sha", "rounds")}
    new = {k: v for k, v in to_dict(cfg).items() if k != "rounds"}
    if config_hash(old) != config_hash(new):
        raise InputError("--resume with another config than the saved config.yaml", path=saved)


def run_federation(
    cfg: FedConfig, out: str | Path, *, resume: bool = False, progress=None
) -> dict[str, Any]:
    """Everything ``federate`` does; returns the summary written to ``report.md``."""
    import torch

    cfg.check_runnable()
    out = Path(out)
    _check_out(cfg, out, resume)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    files = [client_file(cfg, c, out, progress) for c in cfg.clients]
    new_file = client_file(cfg, cfg.new_client.client, out, progress) if _has_new(cfg) else None
    logger.info(f"data ready: {len(files)} labs{' + a new lab' if new_file else ''} "
                f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip

    from attpc_classify.federated.apps import Plan, initial_state, load_round_state

    plan = Plan(cfg=cfg, client_files=files, out=out)
    for i in range(len(files)):
        plan.client(i)  # a bad file fails here, in one line, before Ray starts
    initial_state(plan)  # imports the model's libraries here, not in the server's thread
    todo = [s for s in cfg.strategies if load_round_state(out / s)[0] < cfg.rounds]
    if todo:
        simulate(plan)
    rows = [r for s in cfg.strategies for r in load_round_state(out / s)[2]]
    write_csv(out / "results.csv", RESULT_COLUMNS, rows)
    new_rows = new_client_rows(plan, new_file) if new_file else []
    write_csv(out / "new_client.csv", NEW_CLIENT_COLUMNS, new_rows)
    from attpc_classify.federated.report import write_report

    summary = write_report(cfg, out, rows, new_rows)
    logger.info(f"done in {time.perf_counter() - t0:.0f} s: {out / 'report.md'}")
    return summary


def _has_new(cfg: FedConfig) -> bool:
    return cfg.new_client.client is not None and bool(cfg.new_client.epochs)


def simulate(plan) -> None:
    """The strategies' rounds in Flower's simulation engine (Ray), one SuperNode per lab."""
    import os

    # Ray's notice about GPU variables, irrelevant on CPU clients
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    from flwr.simulation import run_simulation

    from attpc_classify.federated.apps import make_client_app, make_server_app

    cfg = plan.cfg
    # our lines say what happens; Flower's (and its notice that `run_simulation` is
    # deprecated in favour of `flwr run`, which needs an app package) are left out
    logging.getLogger("flwr").setLevel(logging.ERROR)
    errors: list[BaseException] = []
    backend = {
        "client_resources": {"num_cpus": cfg.client_cpus, "num_gpus": 0.0},
        "init_args": {"num_cpus": cfg.cpus, "num_gpus": 0, "include_dashboard": False,
                      "logging_level": logging.ERROR, "log_to_driver": False},
    }  # fmt: skip
    try:
        run_simulation(
            server_app=make_server_app(plan, errors),
            client_app=make_client_app(plan),
            num_supernodes=len(cfg.clients),
            backend_name="ray",
            backend_config=backend,
        )
    except BaseException:
        plan.stop.set()  # the server loop's thread ends at its next wait
        raise
    if errors:
        raise errors[0]


# --------------------------------------------------------------------------- new lab


def new_client_rows(plan, path: str) -> list[dict[str, Any]]:
    """The new lab's F1 after each of ``new_client.epochs`` local epochs, from scratch,
    from the GENE-FL learnGene and from the FedAvg global model (those that ran)."""
    import torch

    from attpc_classify.federated.apps import load_round_state
    from attpc_classify.federated.local import load_client, new_model, score, train_local
    from learngene import genefl

    cfg = plan.cfg
    spec = cfg.new_client.client
    data = load_client(spec.name, path, cfg.task, cfg.data.test_fraction, cfg.seed)
    inits: dict[str, dict[str, torch.Tensor] | None] = {"scratch": None}
    for name in cfg.strategies:
        _, arrays, _ = load_round_state(plan.out / name)
        inits[name] = dict(arrays.to_torch_state_dict())
    rows: list[dict[str, Any]] = []
    wanted = set(cfg.new_client.epochs)
    for init, tensors in inits.items():
        # a seed the federation never used: the new lab's own fresh initialisation
        model = new_model(cfg, data, cfg.seed + 1)
        copied = 0
        if init == "genefl":
            copied = len(genefl.initialise(model, tensors))
        elif init == "fedavg":
            model.load_state_dict(tensors, strict=False)
            copied = len(tensors)

        def record(epoch: int, m, init=init, copied=copied) -> None:
            if epoch in wanted:
                rows.append({"init": init, "epochs": epoch, **score(m, data),
                             "init_tensors": copied})  # fmt: skip

        train_local(model, data, cfg.local, epochs=max(wanted), seed=cfg.seed + 2,
                    on_epoch=record)  # fmt: skip
        last = rows[-1]
        logger.info(f"new lab {spec.name}, init {init}: proton F1 {last['proton_f1']:.3f} "
                    f"after {last['epochs']} epochs")  # fmt: skip
    return rows


# --------------------------------------------------------------------------- files


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """The rows as CSV, atomically (floats to 6 significant digits)."""

    def fmt(v: Any) -> Any:
        return f"{v:.6g}" if isinstance(v, float) and np.isfinite(v) else v

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: fmt(r.get(k, "")) for k in columns})
