"""``preprocess`` and ``show`` end to end: formats, bad input, parallel runs, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from _formats import (
    WRITERS,
    make_events,
    write_cbmsim,
    write_get_traces,
    write_root,
    write_spyral,
)

import data_prep.build as build
from attpc_classify.cli import main
from data_prep.errors import BadEventError, InputError
from data_prep.imagefile import ImageWriter, read_images, read_info
from data_prep.images import ImageConfig, project

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--size", "16", "--set", "voxel_grid=4", "--quiet"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def events():
    return make_events(np.random.default_rng(11), 60, first_id=100, run=7)


def test_same_events_in_every_format_give_identical_images(tmp_path, capsys, events):
    config = ImageConfig(size=16, voxel_grid=4)
    expected = project(events, config)
    labels = [e.label for e in events]
    for fmt, writer in sorted(WRITERS.items()):
        src = writer(tmp_path / f"run_0007.{fmt}", events)  # extensions mean nothing
        out = tmp_path / f"{fmt}.h5"
        rc, stdout, _ = run_cli(capsys, "preprocess", src, "--out", out, "--workers", 1, *SMALL)
        assert rc == 0
        assert stdout.startswith(f"60 events written to {out}, skipped 0,")
        data = read_images(out, voxels=True)
        np.testing.assert_array_equal(data.images, expected.images, err_msg=fmt)
        np.testing.assert_array_equal(data.voxels, expected.voxels, err_msg=fmt)
        np.testing.assert_array_equal(data.event_id, [e.event_id for e in events])
        assert set(data.run.tolist()) == {7}
        if fmt in ("spyral", "root"):
            assert data.label.tolist() == labels
        assert data.config == config
        assert data.attrs["summary"]["written"] == 60
        assert data.attrs["sources"] == [str(src)]


def test_mixed_inputs_directory_and_workers_agree(tmp_path, capsys, events):
    src = tmp_path / "in"
    src.mkdir()
    write_spyral(src / "run_0001.h5", events[:25])
    write_root(src / "run_0002.root", events[25:])
    outs = {}
    for workers in (1, 2):
        outs[workers] = tmp_path / f"w{workers}.h5"
        rc, stdout, _ = run_cli(
            capsys, "preprocess", src, "--out", outs[workers], "--workers", workers,
            "--events-per-task", 8, "--batch-size", 5, *SMALL,
        )  # fmt: skip
        assert rc == 0, stdout
    one, two = read_images(outs[1], voxels=True), read_images(outs[2], voxels=True)
    np.testing.assert_array_equal(one.images, two.images)
    np.testing.assert_array_equal(one.voxels, two.voxels)
    np.testing.assert_array_equal(one.event_id, [e.event_id for e in events])
    assert one.run.tolist() == [1] * 25 + [7] * 35  # file name; the ROOT run branch
    assert not build.parts_dir_for(outs[2]).exists()


def test_any_executor_runs_the_same_tasks(tmp_path, events):
    from concurrent.futures import ThreadPoolExecutor

    src = write_spyral(tmp_path / "run_0001.h5", events)
    config = ImageConfig(size=16, voxel_grid=4)
    seen = []
    with ThreadPoolExecutor(2) as pool:  # stands in for a Dask client's executor
        summary = build.build_images(
            [src], tmp_path / "o.h5", config, executor=pool, events_per_task=7,
            skip_bad=True, progress=seen.append,
        )  # fmt: skip
    assert summary.written == 60 and summary.tasks == 9 and sum(seen) == 60
    data = read_images(tmp_path / "o.h5", voxels=True)
    np.testing.assert_array_equal(data.images, project(events, config).images)


def test_empty_events_are_written_blank_and_counted(tmp_path, capsys, events):
    far = [e for e in events[:4]]
    far[1] = type(far[1])(run=7, event_id=101, points=far[1].points + np.array([0, 0, 5000.0, 0]))
    src = write_spyral(tmp_path / "run_0007.h5", far)
    out = tmp_path / "o.h5"
    rc, stdout, _ = run_cli(capsys, "preprocess", src, "--out", out, "--workers", 1, *SMALL)
    assert rc == 0
    n_far = far[1].n_points
    assert "4 events written" in stdout and "1 empty" in stdout
    assert f"{n_far:,} out-of-range points" in stdout
    data = read_images(out)
    assert data.images[1].sum() == 0 and data.event_id.tolist() == [100, 101, 102, 103]


def _bad_file(tmp_path: Path, events) -> Path:
    """Ten events; event 102 has NaN, 104 six columns, 106 no points."""
    path = write_spyral(tmp_path / "run_0003.h5", events[:10])
    with h5py.File(path, "a") as f:
        g = f["cloud"]
        g["cloud_102"][3, 0] = np.inf
        del g["cloud_104"]
        g.create_dataset("cloud_104", data=np.zeros((4, 6)))
        del g["cloud_106"]
        g.create_dataset("cloud_106", data=np.zeros((0, 8)))
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_events_stop_with_one_line_or_are_skipped(tmp_path, capsys, events, workers):
    path = _bad_file(tmp_path, events)
    out = tmp_path / "o.h5"
    common = ["--out", out, "--workers", workers, "--events-per-task", 3, *SMALL]
    rc, _, err = run_cli(capsys, "preprocess", path, *common)
    assert_one_line_error(rc, err, str(path), "event 10", "error: ")
    assert not out.exists()
    rc, stdout, _ = run_cli(capsys, "preprocess", path, *common, "--skip-bad")
    assert rc == 0
    assert "7 events written" in stdout
    assert "skipped 3 (1 no points, 1 non-finite values, 1 wrong columns)" in stdout
    data = read_images(out, voxels=True)
    good = [e for e in events[:10] if e.event_id not in (102, 104, 106)]
    assert data.event_id.tolist() == [e.event_id for e in good]
    expected = project(good, ImageConfig(size=16, voxel_grid=4))
    np.testing.assert_array_equal(data.images, expected.images)  # rebuilt, misaligned chunks
    np.testing.assert_array_equal(data.voxels, expected.voxels)
    assert read_info(out)["summary"]["skipped_by_reason"]["no points"] == 1


def test_bad_files_exit_2_with_one_line(tmp_path, capsys, events):
    good = write_spyral(tmp_path / "good.h5", events[:5])
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes(good.read_bytes()[:2000])
    text = tmp_path / "readme.h5"
    text.write_text("not data")
    with h5py.File(tmp_path / "nocloud.h5", "w") as f:
        f.create_group("tracks")
    images = tmp_path / "images.h5"
    with ImageWriter(images, ImageConfig(size=8)) as w:
        w.commit()
    cases = [
        (truncated, "unreadable HDF5 file"),
        (text, "not an HDF5 or ROOT file"),
        (tmp_path / "nocloud.h5", "no known layout"),
        (write_get_traces(tmp_path / "traces.h5"), "point-cloud phase"),
        (write_cbmsim(tmp_path / "sim.root"), "AtHDF5WriteTask"),
        (write_root(tmp_path / "r.root", events[:3], branches={"z": "zz"}), "no branch 'z'"),
        (images, "already an image file"),
        (tmp_path / "absent.h5", "file not found"),
    ]
    for path, message in cases:
        rc, _, err = run_cli(capsys, "preprocess", path, "--out", tmp_path / "o.h5", "--quiet")
        assert_one_line_error(rc, err, str(path), message)
    rc, _, err = run_cli(capsys, "preprocess", good, good, "--out", tmp_path / "o.h5")
    assert_one_line_error(rc, err, "given twice")
    rc, _, err = run_cli(capsys, "preprocess", good, "--out", tmp_path / "o.h5", "--views", "ab")
    assert_one_line_error(rc, err, "views must be")
    rc, _, err = run_cli(capsys, "preprocess", good, "-o", tmp_path / "o.h5", "--set", "sz=3")
    assert_one_line_error(rc, err, "unknown config key")
    assert not (tmp_path / "o.h5").exists()


def test_config_yaml_and_flags(tmp_path, capsys, events):
    src = write_spyral(tmp_path / "run_0001.h5", events[:6])
    out = tmp_path / "o.h5"
    yaml_path = REPO / "configs" / "prep" / "three_views.yaml"
    rc, _, _ = run_cli(
        capsys, "preprocess", src, "--out", out, "--config", yaml_path, "--size", 12,
        "--charge", "integral", "--quiet",
    )  # fmt: skip
    assert rc == 0
    config = read_info(out)["image_config"]
    assert config.views == ("xy", "zy", "zx") and config.size == 12 and config.voxel_grid == 0
    assert config.charge_column == "integral"
    data = read_images(out)
    # The integral column (3.5 x amplitude in these files) became the charge.
    scaled = [type(e)(run=1, event_id=e.event_id, points=e.points * [1, 1, 1, 3.5]) for e in events]
    np.testing.assert_array_equal(data.images, project(scaled[:6], config).images)


class _Interrupt(Exception):
    pass


def test_resume_after_an_interrupted_run_writes_every_event_once(tmp_path, monkeypatch, events):
    src = [
        write_spyral(tmp_path / "run_0001.h5", events[:35]),
        write_root(tmp_path / "b.root", events[35:]),
    ]
    out = tmp_path / "o.h5"
    config = ImageConfig(size=16, voxel_grid=4)
    real_run_task = build.run_task
    calls = []

    def dying_run_task(task, *args, **kwargs):
        if len(calls) == 3:
            raise _Interrupt  # the machine dies during the 4th task
        calls.append(task.index)
        return real_run_task(task, *args, **kwargs)

    monkeypatch.setattr(build, "run_task", dying_run_task)
    with pytest.raises(_Interrupt):
        build.build_images(src, out, config, events_per_task=8)
    parts = build.parts_dir_for(out)
    assert not out.exists() and sorted(p.name for p in parts.glob("part_*.h5")) == [
        "part_000000.h5",
        "part_000001.h5",
        "part_000002.h5",
    ]
    (parts / ".part_000003.h5.tmp-999").write_bytes(b"half a part")  # killed mid-write

    monkeypatch.setattr(build, "run_task", real_run_task)
    with pytest.raises(InputError, match="drop --resume"):
        build.build_images(src, out, ImageConfig(size=20), resume=True, events_per_task=8)
    seen = []
    summary = build.build_images(
        src, out, config, resume=True, events_per_task=8, progress=seen.append
    )
    assert summary.reused_tasks == 3 and summary.tasks == 8 and summary.written == 60
    assert sum(seen) == 60
    data = read_images(out, voxels=True)
    assert data.event_id.tolist() == [e.event_id for e in events]  # each exactly once
    np.testing.assert_array_equal(data.images, project(events, config).images)
    assert not parts.exists()


def test_resume_redoes_parts_that_skipped_events_without_skip_bad(tmp_path, events):
    path = _bad_file(tmp_path, events)
    out = tmp_path / "o.h5"
    config = ImageConfig(size=8, voxel_grid=0)
    parts = build.parts_dir_for(out)
    tasks = build.plan_tasks([path], config, events_per_task=4)
    options = build.reader_options_for(config, None)
    build._prepare_parts(
        parts, build._plan_record([path], tasks, config, options), tasks, False, True
    )
    build.run_task(tasks[0], config, parts, skip_bad=True, reader_options=options)
    with pytest.raises(BadEventError, match="event 102"):
        build.build_images([path], out, config, resume=True, events_per_task=4)
    summary = build.build_images([path], out, config, resume=True, events_per_task=4, skip_bad=True)
    assert summary.written == 7 and summary.skipped == 3


def test_killed_process_leaves_no_output_and_resume_finishes(tmp_path, capsys):
    events = make_events(np.random.default_rng(5), 2000, n_points=(100, 200))
    src = write_spyral(tmp_path / "run_0002.h5", events)
    out = tmp_path / "big.h5"
    argv = ["preprocess", str(src), "--out", str(out), "--workers", "1", "--quiet",
            "--events-per-task", "16", "--batch-size", "8", "--size", "16"]  # fmt: skip
    code = "import sys; from attpc_classify.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=env)
    parts = build.parts_dir_for(out)
    deadline = time.monotonic() + 60
    while len(list(parts.glob("part_*.h5"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, "finished before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    done = len(list(parts.glob("part_*.h5")))
    assert 3 <= done < 125
    rc, stdout, err = run_cli(capsys, *argv[:-6], "--resume", *argv[-6:])
    assert rc == 0, err
    assert "resumed: reused" in err and "2,000 events written" in stdout
    data = read_images(out)
    assert data.event_id.tolist() == list(range(2000))


def test_show_writes_a_png_of_a_cloud_and_of_stored_images(tmp_path, capsys, events):
    src = write_spyral(tmp_path / "run_0007.h5", events[:5])
    png = tmp_path / "ev.png"
    rc, stdout, _ = run_cli(capsys, "show", src, "--event", 102, "--out", png, "--views", "xy,zx")
    assert rc == 0 and stdout.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    images = tmp_path / "im.h5"
    assert run_cli(capsys, "preprocess", src, "--out", images, *SMALL)[0] == 0
    rc, stdout, _ = run_cli(capsys, "show", images, "--event", 103, "--out", tmp_path / "s.png")
    assert rc == 0 and (tmp_path / "s.png").stat().st_size > 1000
    rc, _, err = run_cli(capsys, "show", src, "--event", 5, "--out", png)
    assert_one_line_error(rc, err, str(src), "no event 5")
    rc, _, err = run_cli(capsys, "show", images, "--event", 5)
    assert_one_line_error(rc, err, "no event 5")
    rc, _, err = run_cli(capsys, "show", images, "--event", 103, "--size", 32)
    assert_one_line_error(rc, err, "shown as stored")
