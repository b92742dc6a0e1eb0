"""A training process SIGKILLed inside `checkpoint.save_last` leaves a resumable run.

The child is a real process that saves the resume state of epoch 1, then starts saving
epoch 2 and is killed with SIGKILL at each file operation of that save in turn (it sends
the signal to itself from inside `os.replace`, so the moment is exact). Afterwards
`load_last` must give one consistent state: epoch 1 with epoch 1's weights, or epoch 2
with epoch 2's — never a refusal, never weights of one epoch with counters of the other.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from attpc_classify.checkpoint import save_last

    run_dir, kill_at = sys.argv[1], int(sys.argv[2])
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())

    def state_of(epoch):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
        model(torch.ones(1, 3)).sum().backward()
        opt.step()  # the optimizer gets tensors of its own (exp_avg, ...)
        return {"epoch": epoch, "history": [{"epoch": e} for e in range(1, epoch + 1)]}

    save_last(run_dir, model, opt, state_of(1))
    calls = 0
    real_replace = os.replace

    def replace(src, dst):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    os.replace = replace
    save_last(run_dir, model, opt, state_of(2))
    print("finished")
    """
)


def _resume(run_dir: Path) -> tuple[int, float]:
    from attpc_classify.checkpoint import load_last

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    state = load_last(run_dir, model, opt)
    return state["epoch"], float(model.bias.detach()[0])


@pytest.mark.parametrize("kill_at", [1, 2])  # before the first rename, between the two
def test_sigkill_during_save_last_leaves_a_consistent_resume_state(tmp_path, kill_at) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    epoch, bias = _resume(tmp_path)
    # the weights were filled with the epoch number, then one Adam step of lr 1e-3
    assert epoch in (1, 2)
    assert abs(bias - epoch) < 0.01, f"counters of epoch {epoch}, weights of epoch {bias:.3f}"
