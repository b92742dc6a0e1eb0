"""``attpc-classify federate``: GENE-FL and FedAvg across labs on Flower, compared.

Examples::

    attpc-classify federate --config configs/federated/smoke.yaml --out /tmp/fl_smoke
    attpc-classify federate --config configs/federated/cpu.yaml --out fl_cpu rounds=6
    attpc-classify federate --config configs/federated/cpu.yaml --out fl_cpu --resume

Each lab's events come from its image file or its simulation preset; Flower's simulation
engine runs one client per lab. Every finished round is saved, so ``--resume`` after an
interruption continues with the next round. Writes ``OUT/results.csv``,
``OUT/new_client.csv``, ``OUT/report.md`` and figures (docs/federated.md).

Settings: defaults in code <- ``--config`` YAML <- ``key=value``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML of FedConfig (configs/federated/)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run in OUT (same config)"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. rounds=4 local.epochs=1"
    )


def run(args: argparse.Namespace) -> int:
    from attpc_classify.commands.benchmark import ElapsedFormatter
    from attpc_classify.config import load_config
    from attpc_classify.federated.config import FedConfig
    from attpc_classify.federated.run import run_federation

    cfg = load_config(FedConfig, args.config, args.overrides)
    from attpc_classify.cli import configure_logging

    configure_logging(formatter=ElapsedFormatter())
    summary = run_federation(cfg, args.out, resume=args.resume)
    for name, s in summary.items():
        reach = s["rounds_to_target"] or "not reached"
        mb = s["bytes_total"] / 1e6
        print(
            f"{name}: final mean proton F1 {s['final_mean_proton_f1']:.3f}, rounds to "
            f"{cfg.target_proton_f1:g}: {reach}, {mb:.2f} MB sent"
        )
    print(f"report: {args.out / 'report.md'}")
    return 0
