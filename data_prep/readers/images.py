"""Our own image files (`data_prep.imagefile`), seen through the reader interface.

An image file holds images, not point clouds, so the events this reader yields carry
the file's run, event id and label with an empty ``(0, 4)`` ``points`` array. It exists
so that tools which walk events (``classify``, ``show``, counting) accept image files
like any other input; the images themselves are read with `read_images` or, for a
range, `ImageFileReader.images`. Preprocessing refuses image files (they are already
preprocessed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from data_prep.events import Event
from data_prep.imagefile import read_info
from data_prep.readers.base import ReaderBase, SkipCallback, open_hdf5

_STEP = 4096  # events of ids/labels read at a time


class ImageFileReader(ReaderBase):
    """Ids, runs and labels of an ``attpc-images`` file, in file order."""

    format = "images"
    options = frozenset()

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.info = read_info(self.path)
        self.class_names = tuple(self.info["class_names"])
        self.config = self.info["image_config"]
        self._file = open_hdf5(self.path)
        self._n = int(self._file["event_id"].shape[0])

    def __len__(self) -> int:
        return self._n

    def event_ids(self) -> np.ndarray:
        return self._file["event_id"][()].astype(np.int64, copy=False)

    def runs(self) -> np.ndarray:
        """Run number of every event, in file order."""
        return self._file["run"][()].astype(np.int64, copy=False)

    def images(self, start: int, stop: int) -> np.ndarray:
        """``(stop - start, C, H, W)`` stored images of positions ``[start, stop)``."""
        return self._file["images"][start:stop]

    def _iter_range(
        self, start: int, stop: int, skip_bad: bool, on_skip: SkipCallback | None
    ) -> Iterator[Event]:
        f = self._file
        no_points = np.zeros((0, 4), dtype=np.float64)
        for lo in range(start, stop, _STEP):
            hi = min(lo + _STEP, stop)
            ids, runs, labels = f["event_id"][lo:hi], f["run"][lo:hi], f["label"][lo:hi]
            for eid, run, label in zip(ids.tolist(), runs.tolist(), labels.tolist(), strict=True):
                yield Event(
                    run=run, event_id=eid, points=no_points, label=label, source=str(self.path)
                )

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()
