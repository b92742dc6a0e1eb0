"""The Flower side: the labs' `ClientApp`, the GENE-FL `Strategy`, and the `ServerApp`
that runs FedAvg and GENE-FL round by round, saving each finished round.

The same apps run in Flower's simulation engine (`run_federation`: Ray actors on this
machine, one virtual SuperNode per lab) or in a deployment (a SuperNode per lab with its
`Plan`); only the launcher differs.

Messages: a ``train`` message carries the global arrays (``"arrays"``) and a config
(``"config"``: ``strategy``, ``server-round``); the reply carries the client's arrays and
``"metrics"`` (``num-examples`` = training events, the aggregation weight). An
``evaluate`` message carries the arrays after aggregation; the reply scores the lab's
model on its test events, after re-estimating BatchNorm statistics on its training events
(`adapt.adabn`, no labels).

* **FedAvg** (Flower's `FedAvg`): the whole model both ways (floating-point state,
  BatchNorm statistics included).
* **GENE-FL** (`GeneFLStrategy`): round 1 sends the initial model; from then on the server
  sends the aggregated learnGene and each client sends back its own condensed learnGene.
  A client keeps its whole local model between rounds (``STATE/clients/<lab>/``), takes
  the received learnGene's tensors into it, trains under the Fisher constraint, and its
  evaluation scores that local model (a lab's model).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from attpc_classify.adapt import adabn
from attpc_classify.checkpoint import read_json, read_tensors, save_tensors, write_json
from attpc_classify.federated.config import FedConfig
from attpc_classify.federated.local import ClientData, load_client, new_model, score, train_local
from data_prep.errors import InputError
from learngene import genefl

logger = logging.getLogger(__name__)


@dataclass
class Plan:
    """What the apps need: the config, each lab's image file and where state goes."""

    cfg: FedConfig
    client_files: list[str]  # image file of lab i (partition-id i)
    out: Path
    stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def client(self, index: int) -> ClientData:
        spec = self.cfg.clients[index]
        return load_client(spec.name, self.client_files[index], self.cfg.task,
                           self.cfg.data.test_fraction, self.cfg.seed)  # fmt: skip

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles the plan: not the Event
        return {k: v for k, v in self.__dict__.items() if k != "stop"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, stop=threading.Event())


def exchanged_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The floating-point state FedAvg averages (integer counters stay local)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def _local_path(plan: Plan, strategy: str, lab: str, rnd: int) -> Path:
    return plan.out / strategy / "clients" / lab / f"round_{rnd:04d}.safetensors"


# --------------------------------------------------------------------------- client


def _client_setup(plan: Plan, msg: Message, context: Context):
    torch.set_num_threads(plan.cfg.threads)
    index = int(context.node_config["partition-id"])
    config = msg.content["config"]
    received = msg.content["arrays"].to_torch_state_dict()
    return index, str(config["strategy"]), int(config["server-round"]), received


def _genefl_model(plan: Plan, index: int, rnd: int, received: dict) -> torch.nn.Module:
    """The lab's model at the start of round ``rnd`` (or after it, for evaluation):
    round 1 the initial model sent; later its own previous local model with the global
    learnGene taken in."""
    data = plan.client(index)
    model = new_model(plan.cfg, data, plan.cfg.seed)
    if rnd == 1:
        model.load_state_dict(received, strict=False)
        return model
    lab = plan.cfg.clients[index].name
    model.load_state_dict(read_tensors(_local_path(plan, "genefl", lab, rnd - 1)))
    genefl.initialise(model, received)
    return model


def client_train(plan: Plan, msg: Message, context: Context) -> Message:
    index, strategy, rnd, received = _client_setup(plan, msg, context)
    data = plan.client(index)
    seed = plan.cfg.seed * 1_000_003 + rnd * 7_919 + index
    epochs = plan.cfg.local.epochs
    if strategy == "fedavg":
        model = new_model(plan.cfg, data, plan.cfg.seed)
        model.load_state_dict(received, strict=False)
        stats = train_local(model, data, plan.cfg.local, epochs=epochs, seed=seed)
        out = exchanged_state(model)
    else:
        model = _genefl_model(plan, index, rnd, received)
        g = plan.cfg.genefl
        penalty = None
        if rnd > 1:  # round 1's "learnGene" is the random initial model: nothing to keep
            anchor = {n: t.clone() for n, t in received.items()}
            x_f = data.x_train[: g.fisher_events]
            from attpc_classify.data import as_float

            fisher = genefl.fisher_diagonal(model, as_float(x_f), data.y_train[: g.fisher_events])
            fisher = {n: fisher[n] for n in anchor}
            mask = genefl.top_mask(fisher, g.fisher_fraction)
            params = genefl.trainable(model)

            def penalty() -> torch.Tensor:
                return genefl.fisher_penalty(params, anchor, fisher, mask, g.lam)

        stats = train_local(model, data, plan.cfg.local, epochs=epochs, seed=seed,
                            penalty=penalty)  # fmt: skip
        from attpc_classify.data import as_float

        params = genefl.trainable(model)
        grads = genefl.loss_gradients(model, as_float(data.x_train), data.y_train)
        names = genefl.condense(genefl.sensitivity(params, grads), g.gene_fraction)
        lab = plan.cfg.clients[index].name
        path = _local_path(plan, "genefl", lab, rnd)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(path, model.state_dict())
        _local_path(plan, "genefl", lab, rnd - 2).unlink(missing_ok=True)  # keep two
        out = {n: params[n].detach().clone() for n in names}
    metrics = MetricRecord({"num-examples": len(data.y_train), **stats, "partition-id": index})
    content = RecordDict({"arrays": ArrayRecord(out), "metrics": metrics})
    return Message(content=content, reply_to=msg)


def client_evaluate(plan: Plan, msg: Message, context: Context) -> Message:
    index, strategy, rnd, received = _client_setup(plan, msg, context)
    data = plan.client(index)
    if strategy == "fedavg":
        model = new_model(plan.cfg, data, plan.cfg.seed)
        model.load_state_dict(received, strict=False)
    else:
        model = _genefl_model(plan, index, rnd + 1, received)
    # the received weights came with statistics of other labs' data (FedAvg: averaged;
    # GENE-FL: the lab's own, taken before the learnGene came in): the lab re-estimates
    # BatchNorm's on its own training events (no labels) before scoring, as it would
    # before using the model
    adabn(model, data.x_train, plan.cfg.local.batch_size)
    metrics = MetricRecord(
        {"num-examples": len(data.y_test), "partition-id": index, **score(model, data)}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


def make_client_app(plan: Plan) -> ClientApp:
    app = ClientApp()

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        return client_train(plan, msg, context)

    @app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        return client_evaluate(plan, msg, context)

    return app


# --------------------------------------------------------------------------- server


class GeneFLStrategy(FedAvg):
    """FedAvg's sampling and messages; aggregation of learnGenes (`genefl.aggregate`):
    each tensor averaged over the clients that sent it, weighted by their events."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        if not valid:
            return None, None
        genes = [
            (
                m.content["arrays"].to_torch_state_dict(),
                float(m.content["metrics"][self.weighted_by_key]),
            )
            for m in valid
        ]
        metrics = self.train_metrics_aggr_fn([m.content for m in valid], self.weighted_by_key)
        return ArrayRecord(genefl.aggregate(genes)), metrics


def make_strategy(name: str, n_clients: int) -> FedAvg:
    kwargs = dict(min_train_nodes=n_clients, min_evaluate_nodes=n_clients,
                  min_available_nodes=n_clients)  # fmt: skip
    return GeneFLStrategy(**kwargs) if name == "genefl" else FedAvg(**kwargs)


class Stopped(RuntimeError):
    """The launcher asked the server loop to stop (the command was interrupted)."""


def _exchange(grid: Grid, plan: Plan, messages: list[Message], timeout: float) -> list[Message]:
    """Push ``messages``, wait for every reply (or stop / timeout); a failed client is an
    error naming it (its reason is Flower's one line)."""
    ids = set(grid.push_messages(messages))
    replies: list[Message] = []
    end = time.monotonic() + timeout
    while ids:
        if plan.stop.is_set():
            raise Stopped("stopped")
        if time.monotonic() > end:
            raise RuntimeError(f"{len(ids)} client(s) gave no reply within {timeout:.0f} s")
        got = list(grid.pull_messages(ids))
        replies += got
        ids -= {m.metadata.reply_to_message_id for m in got}
        if ids:
            time.sleep(0.05)
    for m in replies:
        if m.has_error():
            raise RuntimeError(f"a client failed: {m.error.reason}")
    return replies


def _arrays_bytes(messages: Iterable[Message]) -> int:
    """Bytes of the serialized parameter arrays the messages carry (Flower's count)."""
    return sum(r.count_bytes() for m in messages for r in m.content.array_records.values())


def run_strategy(grid: Grid, plan: Plan, name: str, timeout: float = 3600.0) -> None:
    """Rounds of one strategy, resuming after the last round saved in OUT/<name>/."""
    cfg = plan.cfg
    sdir = plan.out / name
    names = [c.name for c in cfg.clients]
    done, arrays, history = load_round_state(sdir)
    if arrays is None:
        arrays = ArrayRecord(initial_state(plan))
    elif done < cfg.rounds:
        logger.info(f"{name}: resuming after round {done}")
    strategy = make_strategy(name, len(names))
    for rnd in range(done + 1, cfg.rounds + 1):
        t0 = time.perf_counter()
        messages = list(strategy.configure_train(rnd, arrays, ConfigRecord({"strategy": name}),
                                                 grid))  # fmt: skip
        down = _arrays_bytes(messages)
        replies = _exchange(grid, plan, messages, timeout)
        up = _arrays_bytes(replies)
        new_arrays, _ = strategy.aggregate_train(rnd, replies)
        if new_arrays is None:
            raise RuntimeError(f"{name} round {rnd}: nothing to aggregate")
        train = {int(m.content["metrics"]["partition-id"]): m.content["metrics"] for m in replies}
        evals = _exchange(grid, plan, list(strategy.configure_evaluate(
            rnd, new_arrays, ConfigRecord({"strategy": name}), grid)), timeout)  # fmt: skip
        seconds = time.perf_counter() - t0
        for m in evals:
            met = m.content["metrics"]
            i = int(met["partition-id"])
            history.append({
                "strategy": name, "round": rnd, "client": names[i],
                "proton_f1": float(met["proton_f1"]), "macro_f1": float(met["macro_f1"]),
                "accuracy": float(met["accuracy"]),
                "train_loss": float(train[i]["train_loss"]), "penalty": float(train[i]["penalty"]),
                "bytes_down": down, "bytes_up": up, "arrays_sent": len(new_arrays),
                "round_s": round(seconds, 2),
            })  # fmt: skip
        history.sort(key=lambda r: (r["round"], r["client"]))
        arrays = new_arrays
        save_round_state(sdir, rnd, arrays, history)
        mean = sum(r["proton_f1"] for r in history if r["round"] == rnd) / len(names)
        logger.info(
            f"{name} round {rnd}/{cfg.rounds}: mean proton F1 {mean:.3f}, sent "
            f"{down / 1e3:,.1f} kB down, {up / 1e3:,.1f} kB up ({seconds:.1f} s)"
        )


def initial_state(plan: Plan) -> dict[str, torch.Tensor]:
    """The model every lab starts from (same seed for both strategies)."""
    return exchanged_state(new_model(plan.cfg, plan.client(0), plan.cfg.seed))


def make_server_app(plan: Plan, errors: list[BaseException]) -> ServerApp:
    """Runs the config's strategies one after the other on the same simulated labs;
    an exception is kept in ``errors`` for the launcher to raise."""
    app = ServerApp()

    @app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            for name in plan.cfg.strategies:
                run_strategy(grid, plan, name)
        except BaseException as err:  # handed to the launcher's thread
            errors.append(err)

    return app


# --------------------------------------------------------------------------- state


def save_round_state(
    sdir: Path, rnd: int, arrays: ArrayRecord, history: list[dict[str, Any]]
) -> None:
    """``round_NNNN.safetensors`` (the global arrays) then ``state.json`` (the finished
    round, the file's sha256 and every row so far): atomic, JSON last, so a kill leaves
    the previous round's state whole."""
    sdir.mkdir(parents=True, exist_ok=True)
    path = sdir / f"round_{rnd:04d}.safetensors"
    digest = save_tensors(path, dict(arrays.to_torch_state_dict()))
    write_json(sdir / "state.json", {"round": rnd, "arrays": path.name, "sha256": digest,
                                     "history": history})  # fmt: skip
    for old in sdir.glob("round_*.safetensors"):
        if old.name != path.name:
            old.unlink(missing_ok=True)


def load_round_state(sdir: Path) -> tuple[int, ArrayRecord | None, list[dict[str, Any]]]:
    """(last finished round, its global arrays, rows) or (0, None, []) for a fresh run."""
    if not (sdir / "state.json").exists():
        return 0, None, []
    state = read_json(sdir / "state.json")
    try:
        rnd, name, digest, history = (state[k] for k in ("round", "arrays", "sha256", "history"))
    except KeyError as err:
        raise InputError(f"round state lacks {err}", path=sdir / "state.json") from None
    tensors = read_tensors(sdir / name, sha256=digest)
    return int(rnd), ArrayRecord(tensors), list(history)
