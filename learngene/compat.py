"""Import timm even where torchvision's compiled ops don't match the installed torch.

timm imports torchvision, and PyPI's torchvision wheel fails beside the CPU torch on some
machines with "operator torchvision::nms does not exist" (its C++ library cannot register
the ops). We never call those ops, so declaring their two schemas is enough for
torchvision's Python side to import. Nothing happens on importing this module: the first
`import_timm` call tries the plain import and declares the schemas only when it fails.
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType

import torch

#: the torch.library objects holding the declarations (they live as long as these do)
_KEEP_ALIVE: list[torch.library.Library] = []


def _import_torchvision() -> None:
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::nms does not exist" not in str(err):
            raise
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP_ALIVE.append(lib)
        # drop the half-imported modules so the retry starts clean (over a snapshot: another
        # thread may import meanwhile, and a comprehension over sys.modules then fails)
        for name in [m for m in list(sys.modules) if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        import torchvision  # noqa: F401


@functools.cache
def import_timm() -> ModuleType:
    """The `timm` module, with torchvision made importable first (once per process)."""
    _import_torchvision()
    import timm

    return timm


__all__ = ["import_timm"]
