"""Shared test setup.

* One torch thread for the whole session: the models here are tiny, a second OpenMP thread
  saves nothing, and on a busy two-core machine two threads spin-wait on each other for
  seconds (82 s vs 12 s measured for tests/test_models.py). Reset after every test, so a
  test that changes it (the benchmark applies its config's ``threads``) leaves no trace.
* Markers (pyproject.toml): ``heavy`` = real end-to-end runs (benchmark smoke, demo, Dask
  cluster, torchrun) that ``make test`` still runs; ``pytest -m "not heavy"`` skips them.
  ``slow`` = longer runs left out of ``make test`` (``make test-all`` runs them).
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread_per_session():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_torch_thread_per_test():
    yield
    torch.set_num_threads(1)
