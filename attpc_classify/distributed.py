"""Data-parallel training helpers: process group from torchrun, sharded batches, collectives.

``torchrun --nproc_per_node N -m attpc_classify.cli train ...`` starts N copies of the
``train`` command with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; `init_from_env`
turns them into a process group (``nccl`` on CUDA, ``gloo`` on CPU) and `engine.fit`
wraps the model in `DistributedDataParallel`. Without those variables every function here
is a no-op for one process, so the same code runs with and without torchrun.

The sampler: every rank draws the *same* epoch order from the same seeded generator (a
permutation, or the class-balanced multinomial draw of ``optim.balance=sampler``), cuts it
into the same global batches as a single process would, and keeps rows ``rank::world`` of
each (`shard`). So each rank sees ``1/world`` of every batch and of every epoch, and the
union of the ranks' batches *is* the single-process batch. With the loss of each rank
scaled by its share of the batch (`loss_shares`), the gradient DDP averages equals the
single-process gradient of the whole batch, so distributed training reproduces
single-process training to float rounding (tested: ``tests/test_ddp.py``), not merely in
distribution. (The usual `torch.utils.data.DistributedSampler` gives every rank a
different shuffle of its own 1/N of the data, which cannot match a single process.)

Validation is sharded the same way and the logits are gathered back in order
(`gather_rows`), so every rank computes the same metrics and takes the same early-stopping
decision; only rank 0 (`is_main`) writes files.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from data_prep.errors import InputError

#: environment variables torchrun (and SLURM wrappers around it) set for every process
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a data-parallel job (one process: the defaults).

    Attributes
    ----------
    rank
        Global rank, 0 .. world_size-1.
    local_rank
        Rank on this node (the CUDA device index it uses).
    world_size
        Number of processes.
    backend
        ``"nccl"``, ``"gloo"``, or ``""`` when no process group is initialised.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str = ""

    @property
    def enabled(self) -> bool:
        """True inside an initialised process group (even of one process)."""
        return bool(self.backend)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and prints."""
        return self.rank == 0


def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """True when torchrun's ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` are all set."""
    environ = os.environ if environ is None else environ
    return all(name in environ for name in TORCHRUN_VARS)


def env_from_vars(environ: Mapping[str, str] | None = None) -> DistEnv:
    """The ranks torchrun announces (no process group is created).

    Raises
    ------
    InputError
        Variables that are not integers or are inconsistent (rank outside the world).
    """
    environ = os.environ if environ is None else environ
    if not launched_by_torchrun(environ):
        return DistEnv()
    try:
        rank, local, world = (int(environ[name]) for name in TORCHRUN_VARS)
    except ValueError:
        values = ", ".join(f"{n}={environ[n]!r}" for n in TORCHRUN_VARS)
        raise InputError(f"torchrun variables are not integers: {values}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise InputError(f"inconsistent torchrun variables: RANK={rank} WORLD_SIZE={world}")
    return DistEnv(rank=rank, local_rank=local, world_size=world)


def current() -> DistEnv:
    """This process's `DistEnv`: the initialised default group's, else one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistEnv()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return DistEnv(
        rank=dist.get_rank(),
        local_rank=local,
        world_size=dist.get_world_size(),
        backend=str(dist.get_backend()),
    )


def is_main() -> bool:
    """True on rank 0 or without a process group."""
    return current().is_main


def wants_cuda(device: str) -> bool:
    """Whether a ``TrainConfig.device`` string will run on CUDA."""
    if device == "auto":
        return torch.cuda.is_available()
    return device.startswith("cuda")


def init_from_env(device: str = "auto", *, timeout_s: float = 1800.0) -> DistEnv:
    """Join the process group torchrun describes; a no-op outside torchrun.

    Parameters
    ----------
    device
        The run's ``TrainConfig.device``: CUDA -> ``nccl`` and ``cuda:LOCAL_RANK``
        becomes this process's device; CPU -> ``gloo``.
    timeout_s
        How long a collective may wait for a slow rank before failing [s] (validation
        on rank 0 of a large set must fit in it).

    Returns
    -------
    DistEnv
        With ``backend`` set when a group was (or already had been) initialised.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    env = env_from_vars()
    if not launched_by_torchrun():
        return env
    if not dist.is_available():
        raise InputError("this torch build has no torch.distributed; run without torchrun")
    cuda = wants_cuda(device)
    if cuda:
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but CUDA is not available")
        if env.local_rank >= torch.cuda.device_count():
            raise InputError(
                f"LOCAL_RANK {env.local_rank} but only {torch.cuda.device_count()} CUDA "
                "device(s): lower --nproc_per_node"
            )
        torch.cuda.set_device(env.local_rank)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return current()


def cleanup() -> None:
    """Leave the process group (after a last barrier, so no rank exits mid-collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[DistEnv]:
    """`init_from_env` on entry; on exit, `cleanup` if this call created the group.

    On an exception the group is destroyed without the final barrier (the other ranks
    are then stopped by torchrun).
    """
    created = launched_by_torchrun() and not (dist.is_available() and dist.is_initialized())
    env = init_from_env(device)
    try:
        yield env
    except BaseException:
        if created and dist.is_initialized():
            dist.destroy_process_group()
        raise
    if created:
        cleanup()


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if current().world_size > 1:
        dist.barrier()


def local_device(device: torch.device, env: DistEnv) -> torch.device:
    """``cuda`` -> ``cuda:LOCAL_RANK`` in a process group; anything else unchanged."""
    if env.enabled and device.type == "cuda":
        return torch.device("cuda", env.local_rank)
    return device


def _comm_device(env: DistEnv) -> torch.device:
    # nccl moves CUDA tensors only; gloo is happiest with CPU tensors
    return torch.device("cuda", env.local_rank) if env.backend == "nccl" else torch.device("cpu")


# --------------------------------------------------------------------------- the model


def wrap_model(model: nn.Module, env: DistEnv, device: torch.device) -> nn.Module:
    """The module to train with: ``model`` itself, or a `DistributedDataParallel` of it.

    On CUDA, BatchNorm layers become `torch.nn.SyncBatchNorm` first, so batch statistics
    are those of the whole global batch, as in one process. PyTorch implements
    SyncBatchNorm for GPUs only: on CPU (gloo) each rank normalises with the statistics of
    its own share of the batch (plain DDP behaviour), so BatchNorm models train slightly
    differently from one process there. Keep ``model`` for evaluation and saving: it
    holds the same parameters, without DDP's ``module.`` prefix.
    """
    if not env.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def check_batch_size(batch_size: int, env: DistEnv) -> None:
    """The global batch must give every rank at least one event."""
    if batch_size < env.world_size:
        raise InputError(
            f"optim.batch_size {batch_size} is the global batch and must be >= the "
            f"{env.world_size} processes"
        )


def sync_buffers(model: nn.Module, env: DistEnv) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts them before each training forward, so after the last step the ranks'
    copies differ by one update; validation and the saved weights use rank 0's.
    """
    if env.world_size < 2:
        return
    for buf in model.buffers():
        if buf.is_floating_point() or buf.dtype in (torch.int64, torch.int32):
            tmp = buf.detach().to(_comm_device(env))
            dist.broadcast(tmp, src=0)
            buf.copy_(tmp.to(buf.device))


# --------------------------------------------------------------------------- batches


def shard(rows: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This rank's share of a global batch (or of any rows): ``rows[rank::world]``."""
    if env.world_size == 1:
        return rows
    return rows[env.rank :: env.world_size]


def loss_shares(
    labels: torch.Tensor, env: DistEnv, class_weight: torch.Tensor | None = None
) -> tuple[float, float]:
    """Factors for this rank's mean losses so that DDP's gradient average is exact.

    DDP averages the ranks' gradients. A rank's mean cross-entropy over its share of the
    batch, multiplied by ``world * (its share of the batch's total weight)``, averages to
    the mean over the whole batch -- also when the batch does not split evenly and with
    class weights (torch's weighted mean divides by the sum of the targets' weights, with
    or without label smoothing). Likewise a per-event mean such as the distillation KL
    (``batchmean``) takes ``world * n_rank / n_batch``.

    Parameters
    ----------
    labels
        Labels of the whole global batch (every rank holds them).
    env
        The process group.
    class_weight
        The cross-entropy's class weights, if any.

    Returns
    -------
    (ce_scale, mean_scale)
        Multipliers for the weighted cross-entropy and for plain per-event means.
    """
    if env.world_size == 1:
        return 1.0, 1.0
    mine = shard(labels, env)
    mean_scale = env.world_size * len(mine) / len(labels)
    if class_weight is None:
        return mean_scale, mean_scale
    w = class_weight.to(labels.device)
    ce_scale = env.world_size * float(w[mine].sum()) / float(w[labels].sum())
    return ce_scale, mean_scale


def gather_rows(local: torch.Tensor, n: int, env: DistEnv) -> torch.Tensor:
    """Undo `shard`: every rank's rows ``rank::world`` of ``n`` rows -> all ``n``, in order.

    Every rank receives the whole tensor (on ``local``'s device).
    """
    if env.world_size == 1:
        return local
    w = env.world_size
    per_rank = -(-n // w)  # all_gather needs equal sizes: pad to the largest share
    dev = _comm_device(env)
    padded = torch.zeros((per_rank, *local.shape[1:]), dtype=local.dtype, device=dev)
    padded[: len(local)] = local.to(dev)
    parts = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(parts, padded)
    out = torch.empty((n, *local.shape[1:]), dtype=local.dtype, device=dev)
    for r, part in enumerate(parts):
        rows = len(range(r, n, w))
        out[r::w] = part[:rows]
    return out.to(local.device)


def all_reduce_mean(values: Mapping[str, float], env: DistEnv) -> dict[str, float]:
    """The mean of each value over the ranks (float64; the input for one process)."""
    if env.world_size == 1:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor(
        [float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device(env)
    )
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= env.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def rank_seed(seed: int, env: DistEnv) -> int:
    """A per-rank seed for dropout and drop-path (rank 0 keeps ``seed``).

    Without it every rank would draw the same dropout masks for its share of the batch.
    """
    return (seed + env.rank * 2**32) % 2**64
