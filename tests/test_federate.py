"""``attpc-classify federate``: a Flower simulation of 3 labs x 2 rounds (both strategies),
bytes against an independent count, resume, bad configs.

The labs' data are synthetic image files (tests/_synthetic.py) so that the suite's run
spends its time in Flower and training, not in simulation; `configs/federated/smoke.yaml`
(simulated labs) runs in the slow test with a kill and a resume.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from attpc_classify.cli import main
from tests._synthetic import make_image_file

# Flower's Ray start-up slows down sharply on a busy machine (26 s idle; 278 s beside a
# two-process benchmark run), and `make test` runs another pytest-xdist worker beside it
pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "federated" / "smoke.yaml"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _config(tmp: Path, **extra) -> Path:
    labs = [make_image_file(tmp / f"lab{i}.h5", n_per_class=14 + 4 * i, seed=40 + i)
            for i in range(4)]  # fmt: skip
    cfg = {
        "name": "test",
        "clients": [{"name": f"lab{i}", "images": str(labs[i])} for i in range(3)],
        "new_client": {"client": {"name": "newlab", "images": str(labs[3])}, "epochs": [1, 2]},
        "model": {"name": "cnn", "width": 8, "depth": 2},
        "rounds": 2,
        "local": {"epochs": 1, "batch_size": 8},
        "genefl": {"fisher_events": 8, "gene_fraction": 0.25},
        "target_proton_f1": 0.3,
        "cpus": 1,  # one Ray worker: a single torch import on a busy 2-core machine
        **extra,
    }
    path = tmp / "fl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fl")
    config = _config(tmp)
    out = tmp / "out"
    t0 = time.perf_counter()
    assert main(["federate", "--config", str(config), "--out", str(out)]) == 0
    return config, out, time.perf_counter() - t0


def _serialized_bytes(state: dict) -> int:
    """What a message of these tensors weighs: np.save bytes + key lengths, written out."""
    total = 0
    for key, t in state.items():
        buf = io.BytesIO()
        np.save(buf, t.detach().numpy(), allow_pickle=False)
        total += len(buf.getvalue()) + len(key)
    return total


@pytest.mark.heavy
def test_three_labs_two_rounds_both_strategies(run):
    _, out, seconds = run
    rows = _rows(out / "results.csv")
    keys = [(r["strategy"], r["round"], r["client"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 2 * 3
    assert {r["client"] for r in rows} == {"lab0", "lab1", "lab2"}
    for r in rows:
        assert 0 <= float(r["proton_f1"]) <= 1
    new = _rows(out / "new_client.csv")
    assert {(r["init"], r["epochs"]) for r in new} == {
        (i, e) for i in ("scratch", "fedavg", "genefl") for e in ("1", "2")
    }
    for name in ("report.md", "f1_rounds.png", "bytes.png", "summary.json"):
        assert (out / name).stat().st_size > 0
    print(f"3 labs x 2 rounds x 2 strategies + new lab: {seconds:.1f} s")


@pytest.mark.heavy
def test_bytes_are_the_serialized_arrays(run):
    import torch

    from attpc_classify.checkpoint import read_tensors
    from attpc_classify.models.build import build_model
    from attpc_classify.train_config import ModelConfig
    from data_prep.imagefile import read_images

    _, out, _ = run
    rows = {(r["strategy"], r["round"]): r for r in _rows(out / "results.csv")}
    images = read_images(out.parent / "lab0.h5")
    model = build_model(ModelConfig(name="cnn", width=8, depth=2), image_config=images.config,
                        num_classes=2)  # fmt: skip
    full = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    # FedAvg: the whole floating-point state to each of 3 labs and back, every round
    for rnd in ("1", "2"):
        assert int(rows[("fedavg", rnd)]["bytes_down"]) == 3 * _serialized_bytes(full)
        assert int(rows[("fedavg", rnd)]["bytes_up"]) == 3 * _serialized_bytes(full)
    # GENE-FL: round 1 sends the initial model; round 2 sends the aggregated learnGene
    # (the tensors saved as the round's global state) and gets each lab's back
    assert int(rows[("genefl", "1")]["bytes_down"]) == 3 * _serialized_bytes(full)
    gene = read_tensors(out / "genefl" / "round_0002.safetensors")
    assert int(rows[("genefl", "2")]["bytes_down"]) == 3 * _serialized_bytes(gene)
    n_params = sum(p.numel() for p in model.parameters())
    assert sum(t.numel() for t in gene.values()) <= 0.25 * n_params * 3  # union of 3 labs
    for r in ("1", "2"):  # each lab sends at most a quarter of the parameters
        up = int(rows[("genefl", r)]["bytes_up"])
        assert up < 3 * _serialized_bytes(full) * 0.25 + 3 * 200 * len(full)
    assert set(gene) <= {n for n, p in model.named_parameters()}
    assert all(torch.isfinite(t).all() for t in gene.values())


@pytest.mark.heavy
def test_resume_of_a_finished_run_redoes_no_round(run):
    config, out, _ = run
    before = (out / "results.csv").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/round_*.safetensors")}
    t0 = time.perf_counter()
    assert main(["federate", "--config", str(config), "--out", str(out), "--resume"]) == 0
    assert time.perf_counter() - t0 < 60
    assert (out / "results.csv").read_text() == before
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/round_*.safetensors")} == stamps


@pytest.mark.heavy
def test_existing_out_without_resume_or_with_another_config_is_refused(run, capsys):
    config, out, _ = run
    assert main(["federate", "--config", str(config), "--out", str(out)]) == 2
    assert main(["federate", "--config", str(config), "--out", str(out), "--resume",
                 "local.epochs=3"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


@pytest.mark.parametrize(
    "override, message",
    [
        ("strategies=[fedprox]", "strategies must be one of"),
        ("rounds=0", "rounds"),
        ("genefl.gene_fraction=1.5", "gene_fraction"),
        ("client_cpus=4", "client_cpus"),
        ("nonsense=1", "unknown config key"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys, override, message):
    code = main(["federate", "--config", str(SMOKE), "--out", str(tmp_path / "o"), override])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0], err


def test_missing_client_file_is_one_line(tmp_path, capsys):
    cfg = {"clients": [{"name": "a", "images": str(tmp_path / "none.h5")},
                       {"name": "b", "images": str(tmp_path / "none.h5")}],
           "new_client": {"epochs": []}}  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["federate", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image file not found" in err[0]


def test_smoke_config_loads_with_three_simulated_labs():
    from attpc_classify.config import load_config
    from attpc_classify.federated.config import FedConfig

    cfg = load_config(FedConfig, "smoke")
    assert [c.name for c in cfg.clients] == ["labA", "labB", "labC"]
    assert all(c.sim is not None and c.sim.preset == "tiny" for c in cfg.clients)
    assert cfg.rounds == 2
    cpu = load_config(FedConfig, "cpu")
    assert len(cpu.clients) >= 3 and cpu.new_client.client is not None


@pytest.mark.slow
def test_smoke_killed_after_a_round_resumes_with_nothing_doubled(tmp_path):
    """The smoke preset (simulated labs) killed by SIGTERM once GENE-FL's round 1 is
    saved; ``--resume`` finishes it with every (strategy, round, lab) row once."""
    out = tmp_path / "smoke"
    exe = Path(sys.executable).with_name("attpc-classify")
    cmd = [str(exe), "federate", "--config", str(SMOKE), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "genefl round 1/2" in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.wait(timeout=120)
    # Ray's driver installs its own SIGTERM handler, which ends the process at once
    # (SIGABRT) instead of Python's unwinding: what was saved is what resume reads
    assert proc.returncode != 0, "".join(lines)
    state = yaml.safe_load((out / "genefl" / "state.json").read_text())
    assert state["round"] == 1
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "genefl: resuming after round 1" in done.stdout
    assert "fedavg round" not in done.stdout  # finished before the kill: not redone
    rows = _rows(out / "results.csv")
    keys = [(r["strategy"], r["round"], r["client"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 2 * 3
