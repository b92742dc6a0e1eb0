"""A run's AGET chips learned from the run: the same pads firing together, at one time,
again and again (docs/sim-to-real.md, "Chips learned from the run").

The chip-fire rule (`data_prep.structured`) groups pads into chips by the detector's
electronics map (reader option ``pad_electronics``); without it, by 64 consecutive pad
ids, which is not how the AT-TPC is wired. Where the map is missing, the run shows it: a
chip that fires lights all its pads at one instant, every time. Here every event's dense
instants (at least ``min_pads`` distinct pads within +-``window_mm`` in z) are listed
(`dense_instants`); two instants are linked when they share at least ``link`` of the
larger one's pads; a linked set of at least ``min_fires`` instants is one chip firing
again and again, its chip the pads present in at least half of them and ``LIFT`` times
more often than in the other instants, kept when they are at least ``min_pads`` and present
in ``min_presence`` of its instants on average (a chip fires whole). A track lights
other pads in every event; the one place where physics repeats itself, the beam's
entrance, lights a varying set (measured: 0.79-0.86 mean presence on 1,000 stand-in
events without chip fires, 0.98 and more for the chips of 1,600 fires). The chips are
written as an electronics map (`write_chip_map`) that ``--pad-electronics`` reads like
the real one (``attpc-classify chips``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from data_prep.atomic import atomic_path
from data_prep.padplane import CHIP_PADS, ELECTRONICS_COLUMNS
from data_prep.structured import StructuredNoiseRules, window_counts

#: Share of a chip's pads at one instant for that instant to count as the chip firing
#: whole (the chip rule asks 48 of 64).
WHOLE_FRACTION = 0.75
#: A chip's pads are present in its linked instants this many times more often than in
#: the other instants (a pad crossed by tracks at every depth is in many of them; a chip
#: that fires in most events is still one chip).
LIFT = 5.0
#: Dense instants used at most (a seeded sample beyond): the instant x instant product is
#: quadratic in their number.
MAX_INSTANTS = 4000
INSTANT_SEED = 0x5EED_C41B


@dataclass(frozen=True)
class ChipLearning:
    """Thresholds of the learning (see module doc)."""

    min_pads: int = StructuredNoiseRules.chip_min_pads  # what the chip rule asks of a fire
    window_mm: float = StructuredNoiseRules.chip_window_mm
    min_fires: int = 3
    link: float = 0.6
    min_presence: float = 0.9


@dataclass(frozen=True)
class LearnedChips:
    """What the run taught: each pad's chip (-1: none), the instants it was learned from."""

    chip: np.ndarray  # (n_pads,) learned chip index, -1 for pads in no chip
    instants: int  # dense instants found
    events: int  # events read
    whole_fires: np.ndarray  # (n_chips,) instants at which each chip fired whole

    @property
    def n_chips(self) -> int:
        return len(self.whole_fires)

    @property
    def fires_per_event(self) -> float:
        """Whole fires per event read, counted on the instants used (a sample of them
        beyond `MAX_INSTANTS`) and scaled to all of them."""
        used = min(self.instants, MAX_INSTANTS) or 1
        return float(self.whole_fires.sum()) * self.instants / used / max(self.events, 1)


def dense_instants(z: np.ndarray, pads: np.ndarray, rules: ChipLearning) -> list[np.ndarray]:
    """The distinct pads of each dense instant of one event: greedily, the +-window the
    most points fall in, while it holds ``min_pads`` distinct pads or more; its points
    then leave, so an instant is listed once."""
    keep = pads >= 0
    z, pads = np.asarray(z, dtype=np.float64)[keep], pads[keep]
    found = []
    while len(z) >= rules.min_pads:
        zs = np.sort(z)
        counts = window_counts(zs, rules.window_mm)
        best = int(np.argmax(counts))
        if counts[best] < rules.min_pads:
            break
        inside = np.abs(z - zs[best]) <= rules.window_mm
        group = np.unique(pads[inside])
        if len(group) >= rules.min_pads:
            found.append(group)
        z, pads = z[~inside], pads[~inside]
    return found


def learn_chips(instants: Iterable[np.ndarray], n_pads: int, rules: ChipLearning) -> LearnedChips:
    """Chips from the dense instants' pad sets (see module doc); ``events`` left 0."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    sets = [np.asarray(s, dtype=np.int64) for s in instants]
    n_found = len(sets)
    if not sets:
        return LearnedChips(np.full(n_pads, -1, dtype=np.int64), 0, 0, np.zeros(0, np.int64))
    if len(sets) > MAX_INSTANTS:
        pick = np.random.default_rng(INSTANT_SEED).choice(len(sets), MAX_INSTANTS, replace=False)
        sets = [sets[i] for i in np.sort(pick)]
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    cols = np.concatenate(sets)
    fired = csr_matrix((np.ones(len(cols), np.int32), (rows, cols)), shape=(len(sets), n_pads))
    size = np.asarray(fired.sum(axis=1)).ravel()
    shared = (fired @ fired.T).tocoo()  # pads two instants share
    i, j, n = shared.row, shared.col, shared.data
    linked = (i != j) & (n >= rules.link * np.maximum(size[i], size[j]))
    graph = csr_matrix(
        (np.ones(linked.sum(), np.int8), (i[linked], j[linked])), shape=(len(sets),) * 2
    )
    _, component = connected_components(graph, directed=False)
    total = np.asarray(fired.sum(axis=0)).ravel()
    found = []
    for c in np.flatnonzero(np.bincount(component, minlength=1) >= rules.min_fires):
        members = np.flatnonzero(component == c)
        inside = np.asarray(fired[members].sum(axis=0)).ravel()
        presence = inside / len(members)
        elsewhere = (total - inside) / max(len(sets) - len(members), 1)
        pads = np.flatnonzero((presence >= 0.5) & (presence >= LIFT * elsewhere))
        if len(pads) >= rules.min_pads and presence[pads].mean() >= rules.min_presence:
            found.append((len(members), pads, presence[pads]))
    chip = np.full(n_pads, -1, dtype=np.int64)
    whole: list[int] = []
    for _, pads, presence in sorted(found, key=lambda f: -f[0]):  # most fires first
        free = chip[pads] < 0  # a pad belongs to one chip
        pads, presence = pads[free], presence[free]
        # chips that always fire together are one set: cut into chip-sized parts, each
        # of which fires whole when the set does
        pads = pads[np.lexsort((pads, -presence))]
        for start in range(0, len(pads), CHIP_PADS):
            part = np.sort(pads[start : start + CHIP_PADS])
            hits = np.asarray(fired[:, part].sum(axis=1)).ravel()
            n_whole = int((hits >= WHOLE_FRACTION * len(part)).sum())
            if n_whole >= rules.min_fires and len(part) >= rules.min_pads:
                chip[part] = len(whole)
                whole.append(n_whole)
    return LearnedChips(chip, n_found, 0, np.array(whole, dtype=np.int64))


def write_chip_map(chips: LearnedChips, path: str | Path) -> None:
    """The learned chips as an electronics map CSV (`ELECTRONICS_COLUMNS`, Spyral's
    ``pad_electronics.csv`` layout), atomic. Every pad is listed, so the hot-pad rule
    still knows each one: the learned chips as cobo 0 (aget = chip, its pads as channels
    0.. in pad order); the other pads as cobo 1, aget = pad id // 64 and channel = pad id
    % 64: the chips the rule assumes without a map, less the pads learned elsewhere."""
    rest = np.flatnonzero(chips.chip < 0)
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(ELECTRONICS_COLUMNS)
        for c in range(chips.n_chips):
            for channel, pad in enumerate(np.flatnonzero(chips.chip == c).tolist()):
                out.writerow([0, 0, c, channel, pad])
        for pad in rest.tolist():
            out.writerow([1, 0, pad // CHIP_PADS, pad % CHIP_PADS, pad])


def learn_from_files(
    paths: Iterable[str | Path], fmt: str = "auto", rules: ChipLearning | None = None, **options
) -> LearnedChips:
    """`learn_chips` on every event of the point-cloud files ``paths`` (read with
    `data_prep.readers.open_events` and these reader options; bad events skipped).
    The pads are the files' own ids, so ``pad_electronics`` is refused: a run with its
    map needs no learning."""
    from data_prep.errors import InputError
    from data_prep.padplane import pad_centres
    from data_prep.readers import detect_format, open_events
    from data_prep.structured import pad_ids

    if options.get("pad_electronics"):
        raise InputError("chips are learned from the pad ids; drop --pad-electronics")
    rules = rules or ChipLearning()
    instants: list[np.ndarray] = []
    events = 0
    for path in paths:
        if (detect_format(path) if fmt == "auto" else fmt) == "images":
            raise InputError("chips are learned from point clouds, not an image file", path=path)
        with open_events(path, fmt, **options) as reader:
            for event in reader.iter_events(0, len(reader), skip_bad=True):
                events += 1
                instants.extend(dense_instants(event.points[:, 2], pad_ids(event), rules))
    return replace(learn_chips(instants, len(pad_centres()), rules), events=events)


def learn_map(
    paths: Iterable[str | Path],
    out: str | Path,
    fmt: str = "auto",
    rules: ChipLearning | None = None,
    **options,
) -> LearnedChips:
    """`learn_from_files` and `write_chip_map` to ``out``: what ``attpc-classify chips``
    writes, and the map ``classify --learn-chips`` and ``ClassifyPhase(learn_chips=True)``
    give the reader."""
    learned = learn_from_files(paths, fmt, rules, **options)
    write_chip_map(learned, out)
    return learned


def map_beside(output: str | Path) -> Path:
    """Where ``classify --learn-chips`` and ``ClassifyPhase(learn_chips=True)`` write the
    map they learn: beside their predictions, ``<stem>_chips.csv``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_chips.csv")


def describe(learned: LearnedChips, n_files: int) -> str:
    """One line: chips learned, from what, and their fires per event."""
    from data_prep.errors import plural

    fires = learned.whole_fires
    rate = f"; {int(fires.sum()):,} whole fires, {learned.fires_per_event:.2f} per event"
    return (
        f"{plural(learned.n_chips, 'chip')} learned from {plural(learned.events, 'event')} "
        f"in {plural(n_files, 'file')} ({plural(learned.instants, 'dense instant')}"
        + (f"{rate}, {fires.min()}-{fires.max()} per chip" if len(fires) else "")
        + ")"
    )
