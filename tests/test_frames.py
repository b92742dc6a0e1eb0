"""scripts/frames.py: the copies of a run in other frames hold the events moved as named
(by hand on one point), and the turned copy is a proper rotation, the mirrored ones not."""

from __future__ import annotations

import numpy as np
from _formats import write_spyral
from _scripts import load_script

from data_prep.events import Event
from data_prep.readers import open_events

frames = load_script("frames")

#: one point (x, y, z, charge) and where each transform puts it (drift length 1000 mm)
POINT = [10.0, 20.0, 300.0, 55.0]
MOVED = {
    "as_simulated": [10.0, 20.0, 300.0],
    "turned": [10.0, -20.0, 700.0],
    "mirrored": [-10.0, 20.0, 300.0],
    "rotated": [-20.0, 10.0, 300.0],
    "z_mirrored": [10.0, 20.0, 700.0],
}


def test_each_copy_moves_the_points_as_named(tmp_path):
    src = tmp_path / "sim"
    src.mkdir()
    write_spyral(src / "run_0001.h5", [Event(run=1, event_id=0, points=np.array([POINT]),
                                             label=0)])  # fmt: skip
    for key, (_, change) in frames.TRANSFORMS.items():
        d = src if change is None else frames.transformed_copy(src, tmp_path / key, change)
        with open_events(d / "run_0001.h5") as reader:
            (event,) = list(reader.iter_events())
        np.testing.assert_allclose(event.points[0, :3], MOVED[key], err_msg=key)
        assert event.points[0, 3] == POINT[3]  # charge untouched
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary directories were renamed


def test_turned_is_a_rotation_and_the_mirrors_are_not():
    """The determinant of each change's linear part: +1 keeps every curl's sense."""
    det = {}
    for key, (_, change) in frames.TRANSFORMS.items():
        if change is None:
            continue
        basis = np.zeros((4, 3))
        basis[1:] = np.eye(3)
        change(basis)  # the image of 0 and of the unit vectors; differences: linear part
        det[key] = round(float(np.linalg.det(basis[1:] - basis[0])))
    assert det == {"turned": 1, "mirrored": -1, "rotated": 1, "z_mirrored": -1}


class _Stop(Exception):
    pass


def test_every_copy_is_preprocessed_with_the_given_settings(tmp_path, monkeypatch):
    """``sets`` reach each copy's `preprocess` call as ``--set`` pairs (the recommended
    recipe's run must be scored on files made its way); stopped before `evaluate`."""
    src = tmp_path / "sim"
    src.mkdir()
    write_spyral(src / "run_0001.h5", [Event(run=1, event_id=0, points=np.array([POINT]),
                                             label=0)])  # fmt: skip
    calls = []

    def cli(args, done):
        if args[0] == "evaluate":
            raise _Stop
        calls.append([str(a) for a in args])

    monkeypatch.setattr(frames, "_cli", cli)
    sets = ("features=tracks_v7", "cluster_z_scale=0.5")
    try:
        frames.measure("RUN", str(src), str(tmp_path / "out"), "prep.yaml", sets=sets)
    except _Stop:
        pass
    assert len(calls) == len(frames.TRANSFORMS)
    for args in calls:
        i = args.index("--config")
        assert args[i + 1 : i + 6] == ["prep.yaml", "--set", sets[0], "--set", sets[1]]
