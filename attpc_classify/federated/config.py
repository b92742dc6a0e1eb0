"""Settings of ``attpc-classify federate`` (`FedConfig`; presets in configs/federated/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from attpc_classify.train_config import TASKS, ModelConfig, _choice
from attpc_classify.transfer.config import SimSpec
from data_prep.errors import InputError
from data_prep.images import ImageConfig

STRATEGIES = ("fedavg", "genefl")


@dataclass
class ClientSpec:
    """One lab: a name and its private labelled events, either an existing image file
    (``images``) or a simulation (``sim``: preset, events, seed, SimConfig overrides for
    its gas, field, beam, noise, gain and class mix)."""

    name: str = ""
    images: str = ""  # an attpc-images file of labelled events
    sim: SimSpec | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise InputError(f"client name must be letters, digits, - or _; got {self.name!r}")
        if bool(self.images) == (self.sim is not None):
            raise InputError(f"client {self.name}: give exactly one of images or sim")


@dataclass
class FedData:
    """How the clients' events become images and are split (the names `simulate_stage`
    and `images_stage` of the transfer benchmark read)."""

    image: ImageConfig = field(default_factory=lambda: ImageConfig(size=48, voxel_grid=0))
    test_fraction: float = 0.3  # each client's held-out test events (stratified)
    sim_workers: int = 1  # simulation processes
    events_per_file: int = 100  # simulation run-file size (the unit of resuming)

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise InputError("data.test_fraction must be in (0, 1)")
        if self.sim_workers < 1 or self.events_per_file < 1:
            raise InputError("data.sim_workers and data.events_per_file must be >= 1")


@dataclass
class LocalSpec:
    """A client's local training in every round (AdamW, class-weighted cross-entropy,
    exact detector rotations as augmentation)."""

    epochs: int = 2  # local epochs per round
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    augment: str = "rotate"  # data.augment modes: none | rotate | rotate_reflect

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise InputError("local: epochs, batch_size >= 1, lr > 0, weight_decay >= 0")
        _choice(self.augment, ("none", "rotate", "rotate_reflect"), "local.augment")


@dataclass
class GeneFLSpec:
    """GENE-FL's constants (docs/federated.md)."""

    lam: float = 100.0  # lambda of the Fisher-weighted quadratic constraint
    fisher_fraction: float = 0.5  # share of the learnGene's entries constrained (top F)
    gene_fraction: float = 0.25  # share of the model's parameters a client sends
    fisher_events: int = 64  # training events for the Fisher estimate (one per batch)

    def __post_init__(self) -> None:
        if self.lam < 0 or self.fisher_events < 1:
            raise InputError("genefl.lam must be >= 0 and genefl.fisher_events >= 1")
        for key in ("fisher_fraction", "gene_fraction"):
            if not 0 < getattr(self, key) <= 1:
                raise InputError(f"genefl.{key} must be in (0, 1]")


@dataclass
class NewClientSpec:
    """A lab that joins after the federation: its model from the learnGene, from the
    FedAvg global model, or from scratch, then ``epochs`` of local training."""

    client: ClientSpec | None = None
    epochs: tuple[int, ...] = (1, 5)  # F1 is recorded after each of these epochs


@dataclass
class FedConfig:
    """Everything one ``attpc-classify federate`` run needs (saved as OUT/config.yaml)."""

    name: str = "federated"
    clients: list[ClientSpec] = field(default_factory=list)
    new_client: NewClientSpec = field(default_factory=NewClientSpec)
    data: FedData = field(default_factory=FedData)
    model: ModelConfig = field(
        default_factory=lambda: ModelConfig(name="cnn", width=16, depth=3, dropout=0.0)
    )
    task: str = "binary"  # binary (proton vs rest) | multiclass
    strategies: tuple[str, ...] = STRATEGIES
    rounds: int = 10
    local: LocalSpec = field(default_factory=LocalSpec)
    genefl: GeneFLSpec = field(default_factory=GeneFLSpec)
    target_proton_f1: float = 0.8  # "rounds to target": mean client proton F1 reaches it
    seed: int = 0
    cpus: int = 2  # CPUs Ray may use for the simulated clients
    client_cpus: int = 1  # CPUs per client (clients at once = cpus // client_cpus)
    threads: int = 1  # torch threads per client and for the new-client runs

    def __post_init__(self) -> None:
        _choice(self.task, TASKS, "task")
        names = [c.name for c in self.clients]
        if self.new_client.client is not None:
            names.append(self.new_client.client.name)
        if len(set(names)) != len(names):
            raise InputError(f"client names must differ: {', '.join(names)}")
        if not self.strategies:
            raise InputError("strategies: give at least one of " + ", ".join(STRATEGIES))
        for s in self.strategies:
            _choice(s, STRATEGIES, "strategies")
        if len(set(self.strategies)) != len(self.strategies):
            raise InputError("strategies: each at most once")
        if self.rounds < 1 or self.cpus < 1 or self.client_cpus < 1 or self.threads < 1:
            raise InputError("rounds, cpus, client_cpus and threads must be >= 1")
        if self.client_cpus > self.cpus:
            raise InputError("client_cpus must be <= cpus")
        if not 0 < self.target_proton_f1 <= 1:
            raise InputError("target_proton_f1 must be in (0, 1]")
        if self.new_client.epochs and min(self.new_client.epochs) < 1:
            raise InputError("new_client.epochs must be >= 1")
        if self.model.init != "scratch":
            raise InputError("model.init must be scratch: the federation makes the weights")

    def check_runnable(self) -> None:
        """What the defaults lack (they must build for `load_config`): the clients."""
        if len(self.clients) < 2:
            raise InputError("clients: a federation needs at least 2 clients")
        if self.new_client.client is None and self.new_client.epochs:
            raise InputError("new_client.client is missing (or set new_client.epochs: [])")
