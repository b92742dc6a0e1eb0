"""Readers for every supported point-cloud format, chosen by file content.

>>> from data_prep.readers import open_events
>>> with open_events("run_0001.h5") as reader:  # doctest: +SKIP
...     print(reader.format, len(reader))

See `data_prep.readers.base` for the `EventReader` contract and
`data_prep.readers.formats` for detection by content.
"""

from data_prep.readers.base import EventReader
from data_prep.readers.formats import FORMATS, all_options, detect_format, open_events
from data_prep.readers.pytpc import DriftCalibration

__all__ = [
    "FORMATS",
    "DriftCalibration",
    "EventReader",
    "all_options",
    "detect_format",
    "open_events",
]
