"""Format detection by content, and `open_events`: the factory over every reader class.

This module sits above the readers (each format's module imports only `base`), so the
dispatch needs no import inside a function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_prep.errors import InputError
from data_prep.padplane import electronics_order
from data_prep.readers.attpcroot import AttpcRootReader
from data_prep.readers.base import EventReader, ReaderBase, first_line, from_hdf5, open_hdf5
from data_prep.readers.images import ImageFileReader
from data_prep.readers.pytpc import PytpcReader
from data_prep.readers.root import RootReader, check_root_file
from data_prep.readers.spyral import SpyralReader

#: format name -> its reader class
READERS: dict[str, type[ReaderBase]] = {
    "spyral": SpyralReader,
    "attpcroot": AttpcRootReader,
    "pytpc": PytpcReader,
    "root": RootReader,
    "images": ImageFileReader,
}
FORMATS: tuple[str, ...] = tuple(READERS)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ROOT_MAGIC = b"root"


#: Options of every point-cloud format, applied by `open_events` rather than the readers.
COMMON_OPTIONS = frozenset({"pad_electronics"})


def all_options() -> frozenset[str]:
    """Every reader option name any format accepts (to catch typos)."""
    names: set[str] = set(COMMON_OPTIONS)
    for fmt in FORMATS:
        names |= _reader_class(fmt).options
    return frozenset(names)


def _reader_class(fmt: str) -> type[ReaderBase]:
    return READERS[fmt]


def detect_format(path: str | Path) -> str:
    """Name of the format of ``path``, decided by its content (never by its name).

    HDF5 files (signature ``\\x89HDF``) are told apart by their groups and attributes;
    ROOT files start with the bytes ``root``.

    Raises
    ------
    InputError
        Missing, unreadable or unknown files, GET-trace (merger) files and ATTPCROOT
        ``cbmsim`` files, each with what to do instead.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", path=path) from None
    except OSError as err:
        raise InputError(f"cannot read file: {err.strerror}", path=path) from None
    if not head:
        raise InputError("empty file (0 bytes)", path=path)
    if head[:4] == ROOT_MAGIC:
        check_root_file(path)
        return "root"
    if head != HDF5_SIGNATURE and not _hdf5_with_userblock(path):
        raise InputError("not an HDF5 or ROOT file (unknown content)", path=path)
    try:
        return _detect_hdf5_layout(path)
    except (OSError, RuntimeError) as err:  # HDF5's own errors: a damaged root group
        if not from_hdf5(err):
            raise
        raise InputError(f"unreadable HDF5 file: {first_line(err)}", path=path) from err


def _hdf5_with_userblock(path: Path) -> bool:
    # HDF5 allows a user block of 512 * 2^k bytes before the signature.
    try:
        with open(path, "rb") as fh:
            offset = 512
            while True:
                fh.seek(offset)
                sig = fh.read(8)
                if len(sig) < 8:
                    return False
                if sig == HDF5_SIGNATURE:
                    return True
                offset *= 2
    except OSError:
        return False


def _detect_hdf5_layout(path: Path) -> str:
    f = open_hdf5(path)
    with f:
        if f.attrs.get("format") == "attpc-images":
            return "images"
        keys = list(f.keys())
        if "cloud" in f:
            return "spyral"
        if "clean" in f:
            return "pytpc"
        if any(k.startswith("Event_[") for k in keys):
            return "attpcroot"
        if "events" in f or "get" in f:
            raise InputError(
                "this is a GET trace (merger) file, not point clouds: run Spyral's "
                "point-cloud phase on it first and preprocess the point-cloud files it writes",
                path=path,
            )
        shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        raise InputError(
            "HDF5 file in no known layout (expected group 'cloud' (Spyral), 'clean' (pytpc) "
            f"or 'Event_[n]' groups (ATTPCROOT export); found: {shown or 'nothing'})",
            path=path,
        )


def open_events(path: str | Path, format: str = "auto", **options: Any) -> EventReader:
    """Open a point-cloud (or image) file and return its reader.

    Parameters
    ----------
    path
        A Spyral point-cloud HDF5, an ATTPCROOT HDF5 export, a pytpc HDF5, a ROOT file
        with one event per entry, or an ``attpc-images`` file.
    format
        ``"auto"`` (look inside the file) or one of `FORMATS` to insist on one.
    **options
        Reader options; each format uses those that concern it and ignores the rest,
        so one set can be passed for mixed inputs. Unknown names are an error.
        ``run`` (int: run number where the file does not record one), ``charge``
        (Spyral: ``"amplitude"`` or ``"integral"``), ``point_labels`` (Spyral: also read
        ``labels_<n>``), ``calibration`` (pytpc: `DriftCalibration`), ``tree``,
        ``branches``, ``step_size`` (ROOT); ``pad_electronics`` (any point-cloud format:
        the detector's electronics map, a CSV as Spyral's ``pad_electronics.csv``; the
        events then carry each pad's place in it, `data_prep.padplane.electronics_order`,
        so the structured-noise chip rule groups the real AGET chips).

    Examples
    --------
    >>> with open_events("run_0001.h5") as reader:  # doctest: +SKIP
    ...     for event in reader.iter_events(0, 100):
    ...         print(event.event_id, event.points.shape)
    """
    path = Path(path)
    unknown = set(options) - all_options()
    if unknown:
        raise InputError(f"unknown reader option(s): {', '.join(sorted(unknown))}")
    if format == "auto":
        format = detect_format(path)
    elif format not in READERS:
        raise InputError(f"unknown format {format!r}; choose auto or one of {list(FORMATS)}")
    elif not path.is_file():
        raise InputError("file not found", path=path)
    cls = _reader_class(format)
    mine = {k: v for k, v in options.items() if k in cls.options and v is not None}
    order = None
    if options.get("pad_electronics") and format != "images":
        order = electronics_order(options["pad_electronics"])  # a bad map: before the file
    try:
        reader = cls(path, **mine)
    except (OSError, RuntimeError) as err:  # HDF5's own errors on a damaged file
        if not from_hdf5(err):
            raise
        raise InputError(f"unreadable {format} file: {first_line(err)}", path=path) from err
    reader.pad_order = order
    return reader
