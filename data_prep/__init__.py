"""AT-TPC point clouds in, images out: readers, projections, image files and simulation.

Depends on numpy, h5py and uproot only (attpc-engine for simulation); never on torch
or on the application, so it can run on a cluster node with a minimal environment.
"""

from data_prep.errors import BadEventError, InputError
from data_prep.events import CLASS_NAMES, COLUMNS, Event

__all__ = ["CLASS_NAMES", "COLUMNS", "BadEventError", "Event", "InputError"]
