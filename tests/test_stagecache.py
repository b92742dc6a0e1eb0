"""The keyed stage directories of `attpc_classify.stagecache.StageCache`: one builder at a
time, a killed build resumed from its partial directory, nothing of the lock left."""

from __future__ import annotations

import pytest

from attpc_classify.stagecache import LOCK_NAME, StageCache
from data_prep.errors import InputError


def test_a_stage_being_built_is_refused_to_a_second_builder(tmp_path):
    cache = StageCache(tmp_path)
    seen = []

    def make(partial):
        # a second builder (here: the same process through another open file, as
        # flock locks conflict per open file) asks for the same stage meanwhile
        with pytest.raises(InputError) as err:
            cache.get("sim", {"n": 1}, lambda p: {"second": True})
        seen.append(str(err.value))
        (partial / "out.txt").write_text("first")
        return {"events": 1}

    stage = cache.get("sim", {"n": 1}, make)
    assert len(seen) == 1 and "being built by another process" in seen[0]
    assert "\n" not in seen[0]
    assert (stage.path / "out.txt").read_text() == "first"
    assert stage.info["events"] == 1 and not stage.reused
    assert not (stage.path / LOCK_NAME).exists()
    assert not list(tmp_path.glob(".*partial"))
    # another key is another stage: built while the first is not
    assert cache.get("sim", {"n": 2}, lambda p: {"events": 2}).info["events"] == 2


def test_a_killed_build_leaves_no_lock_and_resumes(tmp_path):
    cache = StageCache(tmp_path)

    def killed(partial):
        (partial / "epoch1").write_text("state")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get("train", {"lr": 0.1}, killed)

    def resumed(partial):
        return {"found": (partial / "epoch1").read_text()}

    stage = cache.get("train", {"lr": 0.1}, resumed)
    assert stage.info["found"] == "state"  # the partial directory was continued
    assert cache.get("train", {"lr": 0.1}, killed).reused  # finished: never made again


def test_stopping_a_pool_ends_its_running_jobs_at_once():
    """The benchmark's worker pool after a failure: no job keeps running in a worker."""
    import multiprocessing
    import time
    from concurrent.futures import ProcessPoolExecutor

    from attpc_classify.transfer.benchmark import stop_workers

    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    running = pool.submit(time.sleep, 120)
    while not running.running():
        time.sleep(0.05)
    workers = list(pool._processes.values())
    t0 = time.monotonic()
    stop_workers(pool)
    # polled, not joined: the executor's own thread reaps the workers too, and a join
    # that loses that race returns at once with the worker still looking alive
    while any(p.is_alive() for p in workers) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert all(not p.is_alive() for p in workers)
    assert time.monotonic() - t0 < 10
