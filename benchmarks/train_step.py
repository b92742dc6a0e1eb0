"""Training-step time of each image model at 64 x 64, fp32 vs bf16 autocast, on this machine.

Prints one line per (model, precision) and ends with one JSON line of the medians
[ms per step of 64 images]. The small CNN runs its activations channels-last
(`attpc_classify.models.cnn.SmallCNN`); ``cnn_small_nchw`` is the same model with that off,
measured in the same run. Run: ``.venv/bin/python benchmarks/train_step.py``.
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from attpc_classify.device import autocast, resolve_device
from attpc_classify.models.build import build_model
from attpc_classify.train_config import ModelConfig
from data_prep.images import ImageConfig

MODELS = {
    "cnn_small": ModelConfig(name="cnn"),
    "cnn_small_nchw": ModelConfig(name="cnn"),  # channels-last off (see the docstring)
    "vit_tiny": ModelConfig(name="vit"),
    "resnet18": ModelConfig(name="timm_cnn", timm_name="resnet18"),
    "efficientnet_lite0": ModelConfig(name="timm_cnn", timm_name="tf_efficientnet_lite0"),
}
BATCH, STEPS, WARMUP = 64, 8, 2


def step_times(
    name: str, cfg: ModelConfig, dtype: torch.dtype | None, device: torch.device
) -> list[float]:
    torch.manual_seed(0)
    model = build_model(cfg, image_config=ImageConfig(size=64), num_classes=3).to(device)
    if name.endswith("_nchw"):
        model.channels_last = False
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(BATCH, 2, 64, 64, device=device)
    y = torch.randint(3, (BATCH,), device=device)
    times = []
    for i in range(WARMUP + STEPS):
        t0 = time.perf_counter()
        with autocast(device, dtype):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    device = resolve_device("auto")
    print(f"device {device}, {torch.get_num_threads()} threads, batch {BATCH}")
    result = {}
    for name, cfg in MODELS.items():
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            ms = 1000 * statistics.median(step_times(name, cfg, dtype, device))
            result[f"{name}_{label}_ms"] = round(ms, 1)
            print(f"{name:20s} {label}: {ms:8.1f} ms/step  ({BATCH / ms * 1000:7.0f} img/s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
