"""Import timm even where torchvision's compiled ops don't match the installed torch.

timm imports torchvision, and PyPI's torchvision wheel fails beside the CPU torch on some
machines with "operator torchvision::nms does not exist" (its C++ library cannot register
the ops). We never call those ops, so declaring their two schemas is enough for
torchvision's Python side to import. This runs only when the plain import fails.
"""

from __future__ import annotations

import torch


def _import_torchvision() -> None:
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::nms does not exist" not in str(err):
            raise
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP_ALIVE.append(lib)  # the definitions live as long as the Library object
        import sys

        # drop the half-imported modules so the retry starts clean
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        import torchvision  # noqa: F401


_KEEP_ALIVE: list = []
_import_torchvision()

import timm  # noqa: E402

__all__ = ["timm"]
