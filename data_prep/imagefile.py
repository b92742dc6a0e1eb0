"""The image file: the contract between preprocessing, training and classification.

Layout (``format = "attpc-images"``, ``format_version = 1``)::

    /images    (N, C, H, W) uint8 or float16, chunked ~256 events, gzip
    /voxels    (N, G, G, G) same dtype, optional (3-D baselines)
    /features  (N, F) float32, optional (image_config.features; data_prep.features),
               attrs feature_names, NaN where a feature does not exist for the event
    /event_id  (N,) int64      /run (N,) int32      /label (N,) int8 (-1 unknown)
    attrs: format, format_version, class_names, views, size, ranges [mm],
           charge_transform, charge_scale, image_config (JSON), sources (JSON),
           package_version, n_events

Files are written under a temporary name and renamed into place only when complete, so
a file under its final name is always whole.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_prep.atomic import temp_path
from data_prep.errors import InputError
from data_prep.events import CLASS_NAMES
from data_prep.images import ImageConfig

FORMAT = "attpc-images"
FORMAT_VERSION = 1
CHUNK_EVENTS = 256


def chunk_events(config: ImageConfig) -> int:
    """Events per HDF5 chunk of ``/images`` and ``/voxels``: at most ~1 MiB per chunk.

    Both datasets use the same number, so files whose lengths are multiples of it can be
    concatenated by copying compressed chunks as they are (`data_prep.build`). Keeping
    each chunk within HDF5's default 1 MiB chunk cache keeps appends of partial chunks
    from re-compressing the chunk on every write.
    """
    per_event = max(config.n_channels * config.size**2, config.voxel_grid**3)
    per_event *= np.dtype(config.dtype).itemsize
    return min(CHUNK_EVENTS, max(1, (1 << 20) // per_event))


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("attpc-classify")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def is_image_file(path: str | Path) -> bool:
    """True when ``path`` is an HDF5 file in our image-file format."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


class ImageWriter:
    """Append batches of images, then `commit` to rename the file into place atomically.

    Examples
    --------
    >>> with ImageWriter("out.h5", ImageConfig()) as w:  # doctest: +SKIP
    ...     w.append(images, event_id, run, label, voxels)
    ...     w.commit(sources=["run_0001.h5"])
    """

    def __init__(
        self,
        path: str | Path,
        config: ImageConfig,
        *,
        class_names: tuple[str, ...] = CLASS_NAMES,
        extra_attrs: dict[str, Any] | None = None,
    ):
        self.path = Path(path)
        self.config = config
        self.tmp_path = temp_path(self.path)  # renamed in `commit`, deleted by `abort`
        self.n = 0
        self._capacity = 0  # rows allocated in the datasets (>= n until commit)
        self._file = h5py.File(self.tmp_path, "w")
        size, n_chan = config.size, config.n_channels
        chunk = self._chunk = chunk_events(config)
        dtype = np.dtype(config.dtype)
        # Byte shuffling only helps multi-byte values (float16); for uint8 it is a copy.
        shuffle = dtype.itemsize > 1
        f = self._file
        f.create_dataset(
            "images",
            shape=(0, n_chan, size, size),
            maxshape=(None, n_chan, size, size),
            chunks=(chunk, n_chan, size, size),
            dtype=dtype,
            compression="gzip",
            compression_opts=1,
            shuffle=shuffle,
        )
        if config.voxel_grid:
            g = config.voxel_grid
            f.create_dataset(
                "voxels",
                shape=(0, g, g, g),
                maxshape=(None, g, g, g),
                chunks=(chunk, g, g, g),
                dtype=dtype,
                compression="gzip",
                compression_opts=1,
                shuffle=shuffle,
            )
        for name, dt in (("event_id", np.int64), ("run", np.int32), ("label", np.int8)):
            f.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=dt)
        if config.features != "none":
            names = config.feature_names
            f.create_dataset(
                "features", shape=(0, len(names)), maxshape=(None, len(names)),
                chunks=(1024, len(names)), dtype=np.float32,
            )  # fmt: skip
            f["features"].attrs["feature_names"] = json.dumps(list(names))
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["class_names"] = json.dumps(list(class_names))
        f.attrs["views"] = json.dumps(list(config.views))
        f.attrs["size"] = config.size
        f.attrs["ranges"] = config.ranges
        f.attrs["charge_transform"] = config.charge_transform
        f.attrs["charge_scale"] = config.charge_scale
        f.attrs["image_config"] = config.to_json()
        f.attrs["package_version"] = package_version()
        for k, v in (extra_attrs or {}).items():
            f.attrs[k] = v
        self._datasets = {
            name: f[name]
            for name in ("images", "voxels", "event_id", "run", "label", "features")
            if name in f
        }
        # Images and voxels are gathered into whole chunks and written compressed by us
        # (see `_write_chunk`); `_pending` holds the rows of the chunk being filled.
        self._pending = {
            name: np.zeros(f[name].chunks, dtype=dtype)
            for name in ("images", "voxels")
            if name in f
        }
        self._n_pending = 0

    def append(
        self,
        images: np.ndarray,
        event_id: np.ndarray,
        run: np.ndarray,
        label: np.ndarray,
        voxels: np.ndarray | None = None,
        features: np.ndarray | None = None,
    ) -> None:
        """Append one batch; arrays are aligned along their first axis."""
        b = len(images)
        if b == 0:
            return
        start, stop = self.n, self.n + b
        if "voxels" in self._datasets and voxels is None:
            raise ValueError("this image file stores voxels: pass them to append()")
        if "features" in self._datasets and features is None:
            raise ValueError("this image file stores features: pass them to append()")
        if stop > self._capacity:
            # Grow in whole chunks, geometrically, rather than on every append.
            self._capacity = max(stop, 2 * self._capacity)
            self._capacity = -(-self._capacity // self._chunk) * self._chunk
            self._set_rows(self._capacity)
        d = self._datasets
        for name, arr in (("event_id", event_id), ("run", run), ("label", label)):
            d[name][start:stop] = arr
        if "features" in d:
            d["features"][start:stop] = features
        rows = {"images": images, "voxels": voxels}
        done = 0
        while done < b:
            take = min(b - done, self._chunk - self._n_pending)
            for name, buf in self._pending.items():
                buf[self._n_pending : self._n_pending + take] = rows[name][done : done + take]
            self._n_pending += take
            done += take
            if self._n_pending == self._chunk:
                self._flush_chunk(start + done - self._chunk)
        self.n = stop

    def _flush_chunk(self, first_row: int) -> None:
        for name, buf in self._pending.items():
            _write_chunk(self._datasets[name], first_row, buf)
            buf[:] = 0  # an unfinished last chunk is stored zero-padded
        self._n_pending = 0

    def _set_rows(self, n: int) -> None:
        for dset in self._datasets.values():
            dset.resize(n, axis=0)

    @property
    def file(self) -> h5py.File:
        """The open temporary file, for low-level writers (direct chunk copies)."""
        return self._file

    def resize(self, n: int) -> None:
        """Make every per-event dataset ``n`` rows long, for callers that fill rows
        themselves through `file` (e.g. ``write_direct_chunk``)."""
        self._set_rows(n)
        self.n = self._capacity = n

    def commit(self, *, sources: list[str] | None = None, summary: dict | None = None) -> Path:
        """Finish the file and rename it to its final name in one atomic step."""
        f = self._file
        if self._n_pending:
            self._flush_chunk(self.n - self._n_pending)
        self._set_rows(self.n)  # drop the spare rows appends grew into
        f.attrs["n_events"] = self.n
        f.attrs["sources"] = json.dumps([str(s) for s in (sources or [])])
        if summary is not None:
            f.attrs["summary"] = json.dumps(summary)
        f.close()
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (nothing appears under the final name)."""
        if self._file.id.valid:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self._file.id.valid:
            self.abort()  # an uncommitted writer leaves nothing behind


def _write_chunk(dset: h5py.Dataset, first_row: int, rows: np.ndarray) -> None:
    """Compress one whole chunk ourselves and store it with ``write_direct_chunk``.

    The bytes are what HDF5's own filters would store (byte shuffle for multi-byte
    types, then a zlib stream), so any HDF5 reader decodes them, but the deflate runs with
    zlib's run-length strategy: on these mostly-zero images it is ~1.5x faster than
    HDF5's level-1 deflate and the file is ~1/3 smaller.
    """
    if rows.dtype.itemsize > 1:  # HDF5's shuffle: byte 0 of every value, then byte 1, ...
        raw = rows.view(np.uint8).reshape(-1, rows.dtype.itemsize).T.tobytes()
    else:
        raw = rows.tobytes()
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    data = deflate.compress(raw) + deflate.flush()
    dset.id.write_direct_chunk((first_row,) + (0,) * (rows.ndim - 1), data, 0)


@dataclass
class ImageSet:
    """An image file loaded into memory (training sets are small: 10k x 2 x 64^2 = 80 MB)."""

    images: np.ndarray  # (N, C, H, W) uint8 or float16
    event_id: np.ndarray  # (N,) int64
    run: np.ndarray  # (N,) int32
    label: np.ndarray  # (N,) int8, -1 unknown
    config: ImageConfig
    class_names: tuple[str, ...]
    voxels: np.ndarray | None = None  # (N, G, G, G) when requested and present
    features: np.ndarray | None = None  # (N, F) float32 when requested and present
    attrs: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    def __len__(self) -> int:
        return len(self.event_id)

    def subset(self, index: np.ndarray) -> ImageSet:
        """A new set with the events at ``index`` (integer array or boolean mask)."""
        return ImageSet(
            images=self.images[index],
            event_id=self.event_id[index],
            run=self.run[index],
            label=self.label[index],
            config=self.config,
            class_names=self.class_names,
            voxels=None if self.voxels is None else self.voxels[index],
            features=None if self.features is None else self.features[index],
            attrs=self.attrs,
            path=self.path,
        )


def read_info(path: str | Path) -> dict[str, Any]:
    """Attributes of an image file, decoded, without reading any image."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    try:
        with h5py.File(path, "r") as f:
            attrs = {
                k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()
            }
            has_voxels = "voxels" in f
            has_features = "features" in f
            lengths = {n: f[n].shape[0] for n in _REQUIRED if isinstance(f.get(n), h5py.Dataset)}
    except (OSError, RuntimeError, ValueError):
        raise InputError("not a readable HDF5 file", path=path) from None
    if attrs.get("format") != FORMAT:
        raise InputError(
            f"not an {FORMAT} image file (point clouds? `attpc-classify preprocess FILE --out "
            "IMAGES.h5 --model RUN` makes one as RUN's training data were made)",
            path=path,
        )
    if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
        raise InputError(
            f"image file format_version {attrs.get('format_version')} is not {FORMAT_VERSION}",
            path=path,
        )
    missing = [f"/{n}" for n in _REQUIRED if n not in lengths]
    if missing:
        raise InputError(f"image file lacks {', '.join(missing)} (damaged or edited)", path=path)
    if len(set(lengths.values())) > 1:
        raise InputError(f"image file datasets differ in length: {lengths}", path=path)
    for key in ("class_names", "views", "sources", "summary", "beam_axes"):
        if key in attrs and isinstance(attrs[key], str):
            attrs[key] = json.loads(attrs[key])
    attrs["image_config"] = ImageConfig.from_json(attrs["image_config"])
    attrs["has_voxels"] = has_voxels
    attrs["has_features"] = has_features
    return attrs


#: datasets every image file has, one row per event (label -1 = unknown)
_REQUIRED = ("images", "event_id", "run", "label")


def read_images(
    path: str | Path,
    *,
    voxels: bool = False,
    features: bool = False,
    select: slice | np.ndarray | None = None,
) -> ImageSet:
    """Load an image file (or the events ``select`` of it) into memory.

    Parameters
    ----------
    path
        An ``attpc-images`` HDF5 file.
    voxels
        Also load ``/voxels`` (error if the file has none).
    features
        Also load ``/features`` (error if the file has none).
    select
        Optional slice or sorted index array of events to load.
    """
    info = read_info(path)
    sel = slice(None) if select is None else select
    with h5py.File(path, "r") as f:
        if voxels and "voxels" not in f:
            raise InputError(
                "image file has no /voxels (set voxel_grid when preprocessing)", path=path
            )
        if features and "features" not in f:
            raise InputError(
                "image file has no /features (preprocess with features: tracks_v2)", path=path
            )
        return ImageSet(
            images=f["images"][sel],
            event_id=f["event_id"][sel],
            run=f["run"][sel],
            label=f["label"][sel],
            config=info["image_config"],
            class_names=tuple(info["class_names"]),
            voxels=f["voxels"][sel] if voxels else None,
            features=f["features"][sel] if features else None,
            attrs=info,
            path=str(path),
        )


def source_path(source: str, image_path: str | Path) -> Path:
    """A source run file as an image file records it (relative to where preprocess ran),
    else the file of that name next to the image file."""
    path = Path(source)
    if path.exists() or path.is_absolute():
        return path
    beside = Path(image_path).parent / path.name
    return beside if beside.exists() else path


def image_sources(images: Any, needed_for: str) -> tuple[list[str], dict[tuple[int, int], int]]:
    """The run files ``images`` (an `ImageSet`) was made from, and its rows by (run,
    event id); a one-line `InputError` when it names none (``needed_for`` says what
    needs them)."""
    sources = images.attrs.get("sources") or []
    if not sources:
        raise InputError(f"{needed_for} needs the run files the image file was made from; "
                         "this file names none", path=images.path)  # fmt: skip
    pairs = zip(images.run.tolist(), images.event_id.tolist(), strict=True)
    return list(sources), {pair: i for i, pair in enumerate(pairs)}
