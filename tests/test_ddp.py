"""Data-parallel training: ``torchrun --nproc_per_node 2`` (gloo, CPU) against one process.

The distributed sampler hands rank r rows ``r::2`` of the very batches one process would
draw, and each rank's loss is weighted by its share of the batch, so the gradient DDP
averages is the single-process gradient: the two runs must end with the same weights and
metrics up to float32 rounding (sums taken in another order). A model without
BatchNorm and without dropout is used (BatchNorm statistics of a half batch differ;
PyTorch syncs them across ranks only on GPUs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _synthetic import make_image_file
from safetensors.torch import load_file

from attpc_classify import distributed
from attpc_classify.cli import main
from attpc_classify.distributed import DistEnv
from data_prep.errors import InputError

TORCHRUN = Path(sys.executable).with_name("torchrun")
#: weights-balanced loss, exact augmentation, a global batch of 15 that splits 8 + 7, and
#: 15 validation events (sharded 8 + 7, gathered back)
SETTINGS = ["model.name=voxel_mlp", "model.width=32", "model.depth=1", "model.dropout=0",
            "optim.batch_size=15", "optim.epochs=3", "optim.lr=0.01", "optim.warmup_epochs=0.5",
            "optim.balance=weights", "data.augment=rotate", "precision=fp32", "device=cpu",
            "data.val_fraction=0.25", "seed=5"]  # fmt: skip


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_shard_gather_and_loss_shares_are_exact_for_one_process_maths() -> None:
    rows = torch.arange(11)
    envs = [DistEnv(rank=r, world_size=3, backend="gloo") for r in range(3)]
    parts = [distributed.shard(rows, e) for e in envs]
    assert sorted(torch.cat(parts).tolist()) == rows.tolist()  # each row once
    assert [len(p) for p in parts] == [4, 4, 3]
    # the rank-weighted means of the shares average to the whole batch's weighted mean
    g = torch.Generator().manual_seed(0)
    logits, labels = (
        torch.randn(11, 3, generator=g),
        torch.tensor([0, 1, 2, 2, 1, 0, 0, 2, 1, 1, 2]),
    )
    weight = torch.tensor([0.5, 2.0, 1.25])
    full = torch.nn.functional.cross_entropy(logits, labels, weight=weight, label_smoothing=0.1)
    total = 0.0
    for e in envs:
        ce_scale, _ = distributed.loss_shares(labels, e, weight)
        mine = distributed.shard(torch.arange(11), e)
        local = torch.nn.functional.cross_entropy(
            logits[mine], labels[mine], weight=weight, label_smoothing=0.1
        )
        total += float(local) * ce_scale / 3
    assert total == pytest.approx(float(full), rel=1e-6)
    # one process: everything is the identity
    assert distributed.loss_shares(labels, DistEnv(), weight) == (1.0, 1.0)
    assert distributed.shard(rows, DistEnv()) is rows


def test_env_from_torchrun_variables() -> None:
    assert distributed.env_from_vars({}) == DistEnv()
    env = distributed.env_from_vars({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (env.rank, env.local_rank, env.world_size, env.is_main) == (1, 1, 4, False)
    with pytest.raises(InputError, match="inconsistent"):
        distributed.env_from_vars({"RANK": "4", "LOCAL_RANK": "0", "WORLD_SIZE": "4"})
    with pytest.raises(InputError, match="not integers"):
        distributed.env_from_vars({"RANK": "a", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(InputError, match="global batch"):
        distributed.check_batch_size(1, DistEnv(world_size=2, backend="gloo"))


@pytest.mark.heavy
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed next to python")
def test_torchrun_two_processes_matches_one_process(tmp_path, capsys) -> None:
    data = make_image_file(tmp_path / "train.h5", n_per_class=20, seed=3)  # 45 train, 15 val
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    common = ["train", "--data", str(data), "--task", "multiclass", "--quiet", *SETTINGS]
    assert main([*common, "--out", str(single)]) == 0
    capsys.readouterr()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "attpc_classify.cli",
           *common, "--out", str(ddp)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone reports and writes: one result line, one metrics line per epoch
    assert proc.stdout.count(": best val macro-F1") == 1, proc.stdout
    assert proc.stdout.count("epoch 1/3") == 1, proc.stdout
    assert [h["epoch"] for h in _history(ddp)] == [1, 2, 3]
    assert not [p.name for p in ddp.rglob(".*")]  # no temporary file left by any rank

    # same weights: float32 sums in another order, over 6 Adam steps (lr 1e-3)
    for name in ("model.safetensors", "last.safetensors"):
        a, b = load_file(single / name), load_file(ddp / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    for one, two in zip(_history(single), _history(ddp), strict=True):
        for key in ("train_loss", "val_loss", "val_macro_f1", "val_accuracy", "lr",
                    "train_images"):  # fmt: skip
            assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key
    meta = [json.loads((run / "model.json").read_text()) for run in (single, ddp)]
    assert meta[0]["epoch"] == meta[1]["epoch"]
    assert meta[0]["metrics"]["n_train"] == meta[1]["metrics"]["n_train"] == 45
