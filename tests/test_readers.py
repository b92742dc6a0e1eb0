"""Readers against files written in the real layouts (h5py, uproot, attpc-engine style)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from _formats import (
    WRITERS,
    make_events,
    write_cbmsim,
    write_get_traces,
    write_pytpc,
    write_root,
    write_spyral,
)

from data_prep.errors import BadEventError, InputError
from data_prep.events import Event
from data_prep.readers import DriftCalibration, detect_format, open_events
from data_prep.readers.base import EventReader


@pytest.fixture()
def events():
    return make_events(np.random.default_rng(3), 12, first_id=40, run=7)


def _same(read, written, columns=4):
    assert [e.event_id for e in read] == [e.event_id for e in written]
    for a, b in zip(read, written, strict=True):
        # pytpc stores z in its own frame (L - z): equal to rounding, the rest bit for bit
        np.testing.assert_allclose(a.points[:, :columns], b.points[:, :columns], rtol=0, atol=1e-9)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_the_pad_ids_are_the_ones_the_file_stores(tmp_path, events, fmt):
    """Spyral (column 5) and pytpc (column 4, beside its neighbour counts) store a pad id
    per point, written here as point index mod 10240; the other formats store none, and
    their points get the pad of the plane they sit on (`data_prep.padplane`)."""
    from data_prep.padplane import pads_at
    from data_prep.structured import pad_ids

    path = WRITERS[fmt](tmp_path / "run_0012.h5", events)
    with open_events(path) as reader:
        assert len(reader) == len(events)
        for event in reader.iter_events(0, len(reader)):
            if fmt in ("spyral", "pytpc"):
                want = np.arange(event.n_points) % 10240
            else:
                assert event.pad_column == -1
                want = pads_at(event.points[:, :2])
            np.testing.assert_array_equal(pad_ids(event), want)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_format_reads_back_ids_points_and_detects_by_content(tmp_path, events, fmt):
    # A misleading extension: detection must look inside the file.
    path = WRITERS[fmt](tmp_path / "run_0012.txt", events)
    assert detect_format(path) == fmt
    with open_events(path) as reader:
        assert isinstance(reader, EventReader)
        assert reader.format == fmt
        assert len(reader) == len(events)
        np.testing.assert_array_equal(reader.event_ids(), [e.event_id for e in events])
        got = list(reader)
    _same(got, events)
    assert all(e.source == str(path) for e in got)
    if fmt in ("spyral", "root"):  # formats that carry labels
        assert [e.label for e in got] == [e.label for e in events]
    else:
        assert {e.label for e in got} == {-1}


def test_spyral_runs_labels_gaps_and_engine_extras(tmp_path, events):
    gappy = [e for e in events if e.event_id not in (42, 47)]  # attpc-engine skips empties
    for e in gappy:
        e.point_labels = np.arange(e.n_points) % 2
    path = write_spyral(tmp_path / "sim.h5", gappy, engine=True, max_event=events[-1].event_id)
    with open_events(path) as reader:
        assert reader._ids is not None  # gaps: names were listed
        assert len(reader) == len(gappy)
        got = list(reader.iter_events(3, 7))
    _same(got, gappy[3:7])
    assert [e.run for e in got] == [7] * 4  # orig_run of the clouds
    np.testing.assert_array_equal(got[0].points[:, 4], gappy[3].points[:, 3] * 3.5)  # integral
    np.testing.assert_array_equal(got[0].point_labels, gappy[3].point_labels)

    dense = write_spyral(tmp_path / "run_0031.h5", events, class_names=["p", "c", "o"])
    with open_events(dense, point_labels=False, charge="integral") as reader:
        assert reader._ids is None  # no gaps: positions map to ids without listing
        assert reader.class_names == ("p", "c", "o")
        first = next(iter(reader))
    assert first.run == 31  # from the file name
    assert first.point_labels is None
    np.testing.assert_array_equal(first.points[:, 3], events[0].points[:, 3] * 3.5)
    np.testing.assert_array_equal(first.points[:, 4], events[0].points[:, 3])

    with open_events(write_spyral(tmp_path / "r.h5", events, run_attr=99), run=5) as reader:
        assert reader.read_event(45).run == 99  # the file's own run attribute wins
    with open_events(write_spyral(tmp_path / "plain.h5", events), run=5) as reader:
        assert reader.read_event(45).run == 5  # option, when the file records none
        with pytest.raises(InputError, match="no event 1000"):
            reader.read_event(1000)


def test_spyral_reads_chunked_and_float32_clouds_through_hdf5(tmp_path, events):
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("cloud")
        g.attrs["min_event"], g.attrs["max_event"] = 40, 41
        for e in events[:2]:
            data = np.zeros((e.n_points, 8), np.float32)
            data[:, :4] = e.points
            g.create_dataset(f"cloud_{e.event_id}", data=data, chunks=(8, 8), compression="gzip")
    with open_events(path) as reader:
        got = list(reader)
    for a, b in zip(got, events[:2], strict=True):
        np.testing.assert_array_equal(a.points[:, :4], b.points.astype(np.float32))


def test_pytpc_calibration_maps_time_buckets_to_mm(tmp_path):
    cal = DriftCalibration(clock_mhz=25.0, drift_velocity=4.0, z_offset=-10.0)
    events = make_events(np.random.default_rng(4), 5, calibration=cal)
    assert cal.mm_per_time_bucket == pytest.approx(1.6)
    assert DriftCalibration().mm_per_time_bucket == pytest.approx(4.16)
    path = write_pytpc(tmp_path / "p.h5", events, calibration=cal)
    with open_events(path, calibration=cal, run=3) as reader:
        got = list(reader)
    _same(got, events)
    assert got[0].run == 3
    # the stored bucket is pytpc's: drift from the micromegas, L - z in the simulation frame
    np.testing.assert_allclose(
        got[0].points[:, 7], cal.to_time_bucket(1000.0 - events[0].points[:, 2])
    )


def test_root_tree_choice_branch_names_and_steps(tmp_path, events):
    names = {"x": "hx", "charge": "q", "event": "evt"}
    path = write_root(tmp_path / "data.root", events, "hits", branches=names, extra_trees=["meta"])
    with pytest.raises(InputError, match=r"2 trees.*--root-tree"):
        open_events(path)
    with pytest.raises(InputError, match="no branch 'x'"):
        open_events(path, tree="hits")
    opts = {"tree": "hits", "branches": names, "step_size": 5}  # several uproot steps
    with open_events(path, **opts) as reader:
        got = list(reader.iter_events(2, 11))
        assert len(reader) == len(events)
    _same(got, events[2:11])
    assert [e.run for e in got] == [7] * 9

    ntuple = write_root(tmp_path / "nt.root", events, rntuple=True, with_run=False)
    with open_events(ntuple, run=2) as reader:
        _same(list(reader), events)
        assert reader.read_event(45).run == 2

    bare = write_root(tmp_path / "run_0004.root", events, with_event=False, with_run=False)
    with open_events(bare) as reader:
        got = list(reader.iter_events(5, 7))
    assert [(e.event_id, e.run) for e in got] == [(5, 4), (6, 4)]  # entry number, file name


def test_images_reader_reports_ids_and_labels(tmp_path):
    from data_prep.imagefile import ImageWriter
    from data_prep.images import ImageConfig

    config = ImageConfig(size=8, voxel_grid=0)
    with ImageWriter(tmp_path / "im.h5", config) as w:
        w.append(np.zeros((3, 2, 8, 8), np.uint8), [5, 9, 2], [1, 1, 2], [0, 2, -1])
        w.commit()
    assert detect_format(tmp_path / "im.h5") == "images"
    with open_events(tmp_path / "im.h5") as reader:
        got = list(reader)
        assert len(reader) == 3
        assert reader.images(1, 3).shape == (2, 2, 8, 8)
    assert [(e.event_id, e.run, e.label, e.n_points) for e in got] == [
        (5, 1, 0, 0),
        (9, 1, 2, 0),
        (2, 2, -1, 0),
    ]


def _bad_spyral(tmp_path, events):
    """Events 40..45 with a bad one each: NaN, wrong columns, no points, bad label."""
    path = write_spyral(tmp_path / "bad.h5", events[:6])
    with h5py.File(path, "a") as f:
        g = f["cloud"]
        g["cloud_41"][0, 1] = np.nan
        del g["cloud_42"]
        g.create_dataset("cloud_42", data=np.zeros((5, 6)))
        del g["cloud_43"]
        g.create_dataset("cloud_43", data=np.zeros((0, 8)))
        g["cloud_44"].attrs["label"] = 9
    return path


def test_bad_events_raise_one_line_or_are_skipped_and_counted(tmp_path, events):
    path = _bad_spyral(tmp_path, events)
    with open_events(path) as reader:
        with pytest.raises(BadEventError) as err:
            list(reader)
        assert err.value.event == 41 and err.value.reason == "non-finite values"
        assert str(err.value).startswith(f"{path}: event 41: ")
        assert "\n" not in str(err.value)
        skipped = []
        good = list(reader.iter_events(skip_bad=True, on_skip=lambda *a: skipped.append(a)))
    assert [e.event_id for e in good] == [40, 45]
    assert skipped == [
        (41, "non-finite values"),
        (42, "wrong columns"),
        (43, "no points"),
        (44, "bad label"),
    ]


def test_bad_files_raise_input_errors_naming_the_file(tmp_path, events):
    good = write_spyral(tmp_path / "good.h5", events)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:3000])
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    cases = {
        truncated: "unreadable HDF5 file",
        text: "not an HDF5 or ROOT file",
        tmp_path / "missing.h5": "file not found",
        write_get_traces(tmp_path / "traces.h5"): "Spyral's point-cloud phase",
        write_cbmsim(tmp_path / "sim.root"): "AtHDF5WriteTask",
    }
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_group("something")
    cases[tmp_path / "other.h5"] = "no known layout"
    for path, message in cases.items():
        with pytest.raises(InputError, match=message) as err:
            open_events(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="no group 'cloud'"):
        open_events(write_pytpc(tmp_path / "p.h5", events), "spyral")
    with pytest.raises(InputError, match="unknown reader option"):
        open_events(good, trea="x")
    root = write_root(tmp_path / "r.root", events, branches={"charge": "q"})
    with pytest.raises(InputError, match="no branch 'charge'"):
        open_events(root)


def test_root_bad_events(tmp_path, events):
    import awkward as ak
    import uproot

    path = tmp_path / "bad.root"
    x = ak.Array([[1.0, 2.0], [np.nan], [], [1.0]])
    with uproot.recreate(path) as f:
        f.mktree("t", {"x": "var * float64", "y": "var * float64", "z": "var * float64",
                       "charge": "var * float64"})  # fmt: skip
        f["t"].extend({"x": x, "y": x, "z": x, "charge": ak.Array([[1.0, 1.0], [1.0], [], []])})
    skipped = []
    with open_events(path) as reader:
        good = list(reader.iter_events(skip_bad=True, on_skip=lambda *a: skipped.append(a)))
    assert [e.event_id for e in good] == [0]
    assert skipped == [(1, "non-finite values"), (2, "no points"), (3, "wrong columns")]


def test_class_names_attribute_is_json(tmp_path, events):
    path = write_spyral(tmp_path / "c.h5", events, class_names=["a", "b", "c"])
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["class_names"]) == ["a", "b", "c"]


def test_a_file_without_any_run_number_is_run_0_and_said_so(tmp_path, caplog):
    import logging

    from _formats import write_attpcroot

    from data_prep.readers.base import warn_unknown_run

    events = make_events(np.random.default_rng(0), 3)
    cases = {  # file name, run option -> run of its events, whether it fell to 0
        ("export.h5", None): (0, True),
        ("run_0042.h5", None): (42, False),
        ("export2.h5", 12): (12, False),
    }
    for (name, option), (run, unknown) in cases.items():
        path = write_attpcroot(tmp_path / name, events)
        caplog.clear()
        with open_events(path, run=option) as reader, caplog.at_level(logging.WARNING):
            assert [e.run for e in reader] == [run] * 3
            assert reader.run_unknown is unknown
            warn_unknown_run(reader)
        said = [r.getMessage() for r in caplog.records]
        assert said == ([f"{path}: no run number in the file or its name: its events are run 0 "
                         "(--run N gives them one)"] if unknown else [])  # fmt: skip


def test_a_root_file_with_a_run_branch_is_not_said_to_lack_a_run(tmp_path):
    events = make_events(np.random.default_rng(1), 3, run=42)
    path = write_root(tmp_path / "events.root", events)  # a run branch, no run in the name
    with open_events(path) as reader:
        assert [e.run for e in reader] == [42] * 3
        assert reader.run_unknown is False


def test_a_reader_s_own_runtime_error_is_not_called_a_damaged_file(tmp_path):
    """Only HDF5's errors become "unreadable file": a reader's bug surfaces as itself."""
    from data_prep.readers.base import ReaderBase

    class Broken(ReaderBase):
        format = "broken"

        def __len__(self) -> int:
            return 2

        def event_ids(self) -> np.ndarray:
            return np.arange(2)

        def _iter_range(self, start, stop, skip_bad, on_skip):
            yield Event(run=1, event_id=0, points=np.ones((1, 4)), label=0)
            raise NotImplementedError("a reader's own bug")

        def close(self) -> None:
            pass

    events = Broken(tmp_path / "x.h5").iter_events()
    assert next(events).event_id == 0
    with pytest.raises(NotImplementedError, match="own bug"):
        next(events)
