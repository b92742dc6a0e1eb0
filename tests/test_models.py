"""Models: every family builds and trains a step; ImageNet weights; exact augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attpc_classify.data import (
    TRANSFORMS,
    allowed_transforms,
    apply_transform,
    apply_transform_voxels,
    augment_batch,
)
from attpc_classify.models import create_model, input_kind, model_args
from attpc_classify.models.build import build_model
from attpc_classify.models.cnn import (
    EFFICIENTNET_LITE0_PACKAGE,
    load_imagenet_weights,
    read_imagenet_state_dict,
)
from attpc_classify.models.vit import vit_args
from attpc_classify.models.voxel import VoxelLogReg, fit_logreg, flatten_normalise
from attpc_classify.train_config import ModelConfig
from data_prep.errors import InputError
from data_prep.images import ImageConfig, project_arrays

TINY = ImageConfig(views=("xy", "zy"), size=32, voxel_grid=8)


def _train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One AdamW step must change the weights and give finite logits."""
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    logits = model(x)
    assert logits.shape == (len(x), 3) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, y).backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "voxel_mlp", "width": 16, "depth": 1},
        {"name": "cnn", "width": 8, "depth": 2},
        {"name": "cnn", "width": 8, "depth": 2, "global_pool": "catavgmax"},
        {"name": "vit", "depth": 2, "width": 32, "heads": 2, "patch": 8},
        {"name": "vit", "depth": 2, "width": 32, "heads": 2, "patch": 8, "stem_width": 8},
        dict(name="vit", depth=2, width=32, heads=2, patch=8, stem_width=8, stem_norm="batch"),
        {"name": "timm_cnn", "timm_name": "resnet18"},
        {"name": "timm_cnn", "timm_name": "resnet18", "global_pool": "catavgmax"},
        {"name": "timm_cnn", "timm_name": "tf_efficientnet_lite0", "drop_path": 0.1},
    ],
    ids=lambda o: "-".join(
        filter(
            None,
            (
                o.get("timm_name", o["name"]),
                o.get("global_pool"),
                "stem" * ("stem_width" in o),
                o.get("stem_norm"),
            ),
        )
    ),
)
def test_family_builds_and_trains_a_step(overrides: dict) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(**overrides)
    model = build_model(cfg, image_config=TINY, num_classes=3)
    assert model.model_spec["name"] == cfg.name
    if input_kind(model) == "voxels":
        x = torch.rand(4, 8, 8, 8)
    else:
        x = torch.rand(4, 2, 32, 32)
    _train_step(model, x, torch.tensor([0, 1, 2, 0]))
    # the recorded spec rebuilds the same architecture
    again = create_model(model.model_spec["name"], model.model_spec["args"])
    again.load_state_dict(model.state_dict())


def test_vgg16_bn_builds_with_one_channel_per_view() -> None:
    # 134 M parameters: built on the meta device (shapes only, no memory, no init cost);
    # its real training step (~10 s on two CPU cores) is the slow test below.
    with torch.device("meta"):
        model = build_model(
            ModelConfig(name="timm_cnn", timm_name="vgg16_bn"), image_config=TINY, num_classes=3
        )
        out = model.eval()(torch.rand(1, 2, 32, 32))
    assert model.features[0].weight.shape == (64, 2, 3, 3)
    assert out.shape == (1, 3)


@pytest.mark.slow
def test_vgg16_bn_trains_a_step() -> None:
    model = build_model(
        ModelConfig(name="timm_cnn", timm_name="vgg16_bn"), image_config=TINY, num_classes=3
    )
    _train_step(model, torch.rand(2, 2, 32, 32), torch.tensor([0, 2]))


def test_logreg_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    vox = rng.random((60, 8, 8, 8), dtype=np.float32)
    vox[:30, :4] += 1.0  # class 0 has charge at low x
    for labels, k in ((np.repeat([0, 1], 30), 2), (np.repeat([0, 1, 2], 20), 3)):
        model = VoxelLogReg(grid=8, num_classes=k)
        fit_logreg(model, vox, labels, C=0.5, balanced=False)
        x = flatten_normalise(torch.from_numpy(vox)).numpy()
        ref = LogisticRegression(C=0.5, max_iter=500, random_state=0).fit(x, labels)
        with torch.no_grad():
            ours = model(torch.from_numpy(vox)).softmax(-1).numpy()
        np.testing.assert_allclose(ours, ref.predict_proba(x), atol=1e-5)


def test_model_args_errors() -> None:
    with pytest.raises(InputError, match="needs voxels"):
        model_args(ModelConfig(name="logreg"), ImageConfig(voxel_grid=0), 3)
    with pytest.raises(InputError, match=r"multiple of model\.heads"):
        vit_args(ModelConfig(name="vit", width=100, heads=3), TINY, 3)
    with pytest.raises(InputError, match=r"multiple of model\.patch"):
        vit_args(ModelConfig(name="vit", patch=5), TINY, 3)
    with pytest.raises(InputError, match="unknown timm model"):
        build_model(ModelConfig(name="timm_cnn", timm_name="no_such_net"), image_config=TINY,
                    num_classes=3)  # fmt: skip
    with pytest.raises(InputError, match=r"model\.name"):
        ModelConfig(name="svm")
    with pytest.raises(InputError, match=r"model\.global_pool is for"):
        ModelConfig(name="vit", global_pool="max")
    with pytest.raises(InputError, match=r"model\.light_pair"):
        ModelConfig(name="gbt", light_pair="closest")
    with pytest.raises(InputError, match=r"model\.light_pair is for"):
        ModelConfig(name="cnn", light_pair="widest")
    from attpc_classify.models.gbt import LIGHT_PAIRS

    for choice in LIGHT_PAIRS:  # the config takes every choice the model knows
        ModelConfig(name="gbt", light_pair=choice)
    with pytest.raises(InputError, match="tracks_v6"):  # no pairs to choose from
        model_args(ModelConfig(name="gbt", light_pair="widest"),
                   ImageConfig(features="tracks_v3"), 3)  # fmt: skip


def test_vit_layout_is_the_learngene_one() -> None:
    model = build_model(
        ModelConfig(name="vit", depth=3, width=48, heads=4, patch=8), image_config=TINY,
        num_classes=3,
    )  # fmt: skip
    keys = model.state_dict()
    assert "cls_token" not in keys and model.global_pool == "avg"
    assert keys["blocks.2.attn.qkv.weight"].shape == (144, 48)
    assert keys["pos_embed"].shape == (1, 16, 48)  # 4 x 4 patches, no class token
    assert keys["patch_embed.proj.weight"].shape == (48, 2, 8, 8)
    # a conv stem: 3 stride-2 convs (8, 16, 32 channels), then 1x1 to the width
    stem = build_model(
        ModelConfig(name="vit", depth=1, width=48, heads=4, patch=8, stem_width=8),
        image_config=TINY, num_classes=3,
    ).state_dict()  # fmt: skip
    assert stem["patch_embed.stem.0.weight"].shape == (8, 2, 3, 3)
    assert stem["patch_embed.stem.6.weight"].shape == (32, 16, 3, 3)
    assert stem["patch_embed.proj.weight"].shape == (48, 32, 1, 1)
    assert stem["pos_embed"].shape == (1, 16, 48)  # the same 4 x 4 token grid
    # a BatchNorm stem: the same parameters plus running statistics, recorded in the spec
    cfg = ModelConfig(name="vit", depth=1, width=48, heads=4, patch=8, stem_width=8,
                      stem_norm="batch")  # fmt: skip
    bn = build_model(cfg, image_config=TINY, num_classes=3)
    assert bn.model_spec["args"]["stem_norm"] == "batch"
    assert set(bn.state_dict()) - set(stem) == {
        f"patch_embed.stem.{i}.{b}"
        for i in (1, 4, 7)
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }
    for bad, match in (({"stem_norm": "layer"}, "one of group, batch"),
                       ({"stem_width": 0}, "needs a conv stem")):  # fmt: skip
        with pytest.raises(InputError, match=match):
            ModelConfig(**{**vars(cfg), **bad})


# --------------------------------------------------------------------------- ImageNet


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, torch.Tensor]:
    pytest.importorskip(EFFICIENTNET_LITE0_PACKAGE)
    return read_imagenet_state_dict(EFFICIENTNET_LITE0_PACKAGE)


def test_imagenet_weights_are_the_real_ones(lite0_state) -> None:
    """With 3 channels and 1000 classes the model must recognise a photograph: the
    daisy in scikit-learn's sample image ``flower.jpg`` (ImageNet class 985)."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    model = create_model(
        "timm_cnn", {"timm_name": "tf_efficientnet_lite0", "in_chans": 3, "num_classes": 1000}
    )
    assert load_imagenet_weights(model, EFFICIENTNET_LITE0_PACKAGE) == []
    img = Image.fromarray(load_sample_image("flower.jpg")).resize((224, 224))
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        top = model.eval()((x - 0.5) / 0.5).argmax(-1).item()  # tf_ models: mean = std = 0.5
    assert top == 985


@pytest.mark.parametrize("in_chans", [1, 2])
def test_imagenet_first_conv_adapted(lite0_state, in_chans: int) -> None:
    cfg = ModelConfig(
        name="timm_cnn", timm_name="tf_efficientnet_lite0",
        pretrained_file=EFFICIENTNET_LITE0_PACKAGE,
    )  # fmt: skip
    image_config = ImageConfig(views=("xy", "zy")[:in_chans], size=32)
    model = build_model(cfg, image_config=image_config, num_classes=3)
    rgb = lite0_state["_conv_stem.weight"]
    expected = (rgb.sum(1, keepdim=True) / in_chans).repeat(1, in_chans, 1, 1)
    torch.testing.assert_close(model.conv_stem.weight, expected)
    torch.testing.assert_close(
        model.blocks[6][0].conv_pwl.weight, lite0_state["_blocks.15._project_conv.weight"]
    )
    assert model.classifier.weight.shape == (3, 1280)  # fresh head for our classes


def test_pickle_weights_refused(tmp_path) -> None:
    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(1)}, path)
    cfg = ModelConfig(name="timm_cnn", timm_name="resnet18", pretrained_file=str(path))
    with pytest.raises(InputError, match="safetensors"):
        build_model(cfg, image_config=TINY, num_classes=3)


# --------------------------------------------------------------------------- augmentation

ALL_VIEWS = ImageConfig(views=("xy", "zy", "zx"), size=32, voxel_grid=16)


def _points(rng: np.random.Generator, n: int = 40) -> np.ndarray:
    # away from bin edges would be ideal; random points hit one with probability ~0
    xyz = rng.uniform([-250, -250, 50], [250, 250, 950], size=(n, 3))
    return np.column_stack([xyz, rng.uniform(10, 500, n)])


def _move(points: np.ndarray, t) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    out = points.copy()
    out[:, 0] = t.sx * (y if t.swap else x)
    out[:, 1] = t.sy * (x if t.swap else y)
    return out


@pytest.mark.parametrize("t", TRANSFORMS, ids=lambda t: t.name)
def test_transform_maps_images_like_the_physical_transform(t) -> None:
    """Projecting the transformed event == transforming the projected images, pixel for
    pixel, in every view and in the voxels."""
    pts = _points(np.random.default_rng(1))
    counts = np.array([len(pts)])
    before = project_arrays(pts, counts, ALL_VIEWS)
    after = project_arrays(_move(pts, t), counts, ALL_VIEWS)
    got = apply_transform(torch.from_numpy(before.images), t, ALL_VIEWS.views)
    np.testing.assert_array_equal(got.numpy(), after.images)
    got_vox = apply_transform_voxels(torch.from_numpy(before.voxels), t)
    np.testing.assert_array_equal(got_vox.numpy(), after.voxels)


def test_known_pixel_rot90() -> None:
    # one hit at x=+110, y=+60 mm turns (counter-clockwise) to x=-60, y=+110 mm
    cfg = ImageConfig(views=("xy", "zy", "zx"), size=22, voxel_grid=0)  # 25 mm pixels
    img = project_arrays(np.array([[110.0, 60.0, 500.0, 100.0]]), np.array([1]), cfg).images
    rot = apply_transform(torch.from_numpy(img), TRANSFORMS[1], cfg.views)[0]
    col = lambda v: int((v + 275) // 25)  # noqa: E731
    row_z = int(500 // (1000 / 22))
    assert rot[0, col(110), col(-60)] > 0  # xy: row = y' = 110, col = x' = -60
    assert rot[1, col(110), row_z] > 0  # zy: row = y' = 110
    assert rot[2, col(-60), row_z] > 0  # zx: row = x' = -60
    assert int((rot > 0).sum()) == 3


def test_allowed_transforms_follow_views_and_ranges() -> None:
    names = lambda ts: {t.name for t in ts}  # noqa: E731
    two = ImageConfig(views=("xy", "zy"))
    assert names(allowed_transforms(two, "rotate")) == {"identity", "rot180"}
    assert names(allowed_transforms(two, "rotate_reflect")) == {
        "identity", "rot180", "mirror_x", "mirror_y"
    }  # fmt: skip
    assert len(allowed_transforms(two, "rotate", voxels=True)) == 4
    assert len(allowed_transforms(ImageConfig(views=("xy",)), "rotate_reflect")) == 8
    assert len(allowed_transforms(ALL_VIEWS, "rotate")) == 4
    off_centre = ImageConfig(views=("xy",), x_range=(-200.0, 275.0))
    assert names(allowed_transforms(off_centre, "rotate")) == {"identity"}
    assert names(allowed_transforms(two, "none")) == {"identity"}


def test_augment_batch_keeps_shape_and_is_seeded() -> None:
    x = torch.rand(16, 2, 32, 32)
    ts = allowed_transforms(ImageConfig(views=("xy", "zy"), size=32), "rotate_reflect")
    a = augment_batch(x, ts, torch.Generator().manual_seed(3), views=("xy", "zy"))
    b = augment_batch(x, ts, torch.Generator().manual_seed(3), views=("xy", "zy"))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    # a transform moves pixels, it never changes the charge in a view
    torch.testing.assert_close(a.sum(dim=(2, 3)), x.sum(dim=(2, 3)))
