"""Mixup / CutMix (attpc_classify.data.mix_batch, DeiT's recipe) by hand, and a training
run that uses them with a distillation-token teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attpc_classify.data import cutmix, cutmix_box, mix_batch, mixup


def test_mixup_by_hand():
    x = torch.tensor([[[[1.0, 2.0]]], [[[5.0, 10.0]]]])  # (2, 1, 1, 2)
    got = mixup(x, 0.25, torch.tensor([1, 0]))
    want = torch.tensor([[[[0.25 + 3.75, 0.5 + 7.5]]], [[[1.25 + 0.75, 2.5 + 1.5]]]])
    torch.testing.assert_close(got, want)


def test_cutmix_box_and_images_by_hand():
    assert cutmix_box(8, 8, 0.75, 4, 4) == (2, 6, 2, 6)  # sides 8 * sqrt(.25) = 4
    assert cutmix_box(8, 8, 0.75, 0, 7) == (0, 2, 5, 8)  # clipped at the edges
    assert cutmix_box(10, 6, 0.0, 5, 3) == (0, 10, 0, 6)  # lam 0: the whole image
    x = torch.stack([torch.zeros(2, 4, 4), torch.ones(2, 4, 4)])
    out, lam = cutmix(x, (0, 2, 1, 3), torch.tensor([1, 0]))
    assert lam == 1 - 4 / 16
    box = np.zeros((4, 4))
    box[0:2, 1:3] = 1
    for c in range(2):  # every channel (view) gets the same box
        np.testing.assert_array_equal(out[0, c].numpy(), box)
        np.testing.assert_array_equal(out[1, c].numpy(), 1 - box)
    assert float(x[0].sum()) == 0  # the input is left alone


def test_mix_batch_is_a_seeded_mixup_or_cutmix():
    x = torch.rand(6, 2, 8, 8, generator=torch.Generator().manual_seed(3))
    out, perm, lam = mix_batch(x, torch.Generator().manual_seed(0), mixup_alpha=0.8,
                               cutmix_alpha=0.0)  # fmt: skip
    assert sorted(perm.tolist()) == list(range(6)) and 0 <= lam <= 1
    want = lam * x.numpy() + (1 - lam) * x.numpy()[perm.numpy()]
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6, atol=1e-7)
    again = mix_batch(x, torch.Generator().manual_seed(0), mixup_alpha=0.8, cutmix_alpha=0.0)
    torch.testing.assert_close(again[0], out)
    out, perm, lam = mix_batch(x, torch.Generator().manual_seed(1), mixup_alpha=0.0,
                               cutmix_alpha=1.0)  # fmt: skip
    own = (out == x).all(dim=1)  # pixels kept from each event itself, all channels alike
    theirs = (out == x[perm]).all(dim=1)
    assert bool((own | theirs).all())
    paired = perm != torch.arange(6)  # an event paired with itself keeps every pixel
    assert bool(paired.any())
    moved = (~own[paired]).float().flatten(1).mean(1)  # random pixels: never equal by chance
    torch.testing.assert_close(moved, torch.full_like(moved, 1 - lam))  # label weight
    with pytest.raises(ValueError, match="alpha"):
        mix_batch(x, torch.Generator(), mixup_alpha=0.0, cutmix_alpha=0.0)


def test_mixed_label_loss_is_the_soft_target_cross_entropy():
    """The engine mixes the two losses: lam CE(a) + (1 - lam) CE(b) equals torch's
    cross-entropy against the mixed one-hot target (an independent computation)."""
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-0.4, 0.1]])
    a, b, lam = torch.tensor([0, 1, 1]), torch.tensor([1, 1, 0]), 0.3
    mixed = lam * F.cross_entropy(logits, a) + (1 - lam) * F.cross_entropy(logits, b)
    soft = lam * F.one_hot(a, 2).float() + (1 - lam) * F.one_hot(b, 2).float()
    torch.testing.assert_close(mixed, F.cross_entropy(logits, soft))


class _Recorder(torch.nn.Module):
    """A teacher that keeps every batch it is shown (and answers class 0)."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], dim=1)


def test_training_with_mixup_shows_the_teacher_mixed_images(tmp_path):
    from _synthetic import make_image_file

    from attpc_classify.data import as_float
    from attpc_classify.engine import fit
    from attpc_classify.train_config import DataConfig, DistillConfig, OptimConfig, TrainConfig
    from data_prep.imagefile import read_images
    from learngene.vit import create_vit

    train = read_images(str(make_image_file(tmp_path / "t.h5", n_per_class=6)))
    model = create_vit(img_size=32, patch_size=8, in_chans=2, num_classes=2, embed_dim=32,
                       depth=1, num_heads=2, distill_token=True)  # fmt: skip
    teacher = _Recorder()
    cfg = TrainConfig(
        optim=OptimConfig(epochs=1, batch_size=6, warmup_epochs=0, patience=0),
        data=DataConfig(augment="none", mixup=0.8, cutmix=1.0),
        distill=DistillConfig(kind="hard"),
    )
    fit(model, train, None, cfg, task="binary", out_dir=None, teacher=teacher)
    assert len(teacher.seen) == 3  # 18 events, batches of 6
    raw = as_float(torch.from_numpy(train.images)).flatten(1)
    for batch in teacher.seen:  # images the file does not hold: mixtures of two events
        rows = batch.flatten(1)
        unseen = ~(torch.cdist(rows, raw).min(dim=1).values < 1e-6)
        assert bool(unseen.any())
    with pytest.raises(Exception, match="mixup"):
        DataConfig(mixup=-1.0)
