"""Sub-commands of ``attpc-classify``; see `attpc_classify.cli`."""

from __future__ import annotations

from typing import Any


def event_bar(total: int | None, desc: str | None, *, quiet: bool, **kwargs: Any):
    """A tqdm bar of events on stderr: off with ``--quiet``, and off when stderr is not a
    terminal (a log file gets the summary lines, not thousands of redraws)."""
    import sys

    from tqdm import tqdm

    return tqdm(
        total=total, unit="ev", desc=desc, file=sys.stderr, disable=True if quiet else None,
        **kwargs,
    )  # fmt: skip
