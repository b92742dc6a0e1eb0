"""The comparison of a federated run: summary numbers, ``report.md`` and figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attpc_classify.config import to_dict
from attpc_classify.federated.config import FedConfig
from attpc_classify.plots import figure, markdown_table, save
from data_prep.atomic import atomic_path


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def strategy_summary(cfg: FedConfig, rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Per strategy: mean proton F1 per round, rounds to the target, bytes per round,
    each lab's F1 after the last round."""
    mine = [r for r in rows if r["strategy"] == name]
    rounds = sorted({r["round"] for r in mine})
    mean_f1 = {t: _mean([r["proton_f1"] for r in mine if r["round"] == t]) for t in rounds}
    reached = [t for t in rounds if mean_f1[t] >= cfg.target_proton_f1]
    per_round = {t: next(r for r in mine if r["round"] == t) for t in rounds}
    sent = {t: per_round[t]["bytes_down"] + per_round[t]["bytes_up"] for t in rounds}
    last = rounds[-1] if rounds else None
    return {
        "rounds": len(rounds),
        "mean_proton_f1": mean_f1,
        "final_mean_proton_f1": mean_f1.get(last, float("nan")),
        "final_mean_macro_f1": _mean([r["macro_f1"] for r in mine if r["round"] == last]),
        "rounds_to_target": reached[0] if reached else None,
        "bytes_per_round": sent,
        # round 1 of GENE-FL carries the initial model; the steady state is what follows
        "bytes_later_rounds": _mean([sent[t] for t in rounds if t > 1]),
        "bytes_total": sum(sent.values()),
        "client_proton_f1": {r["client"]: r["proton_f1"] for r in mine if r["round"] == last},
    }


def _kb(n: float) -> str:
    return "–" if n != n else f"{n / 1e3:,.1f}"


def write_report(
    cfg: FedConfig, out: Path, rows: list[dict[str, Any]], new_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """``report.md``, ``summary.json``, ``f1_rounds.png``, ``bytes.png``; returns the
    summary."""
    summary = {s: strategy_summary(cfg, rows, s) for s in cfg.strategies}
    labs = [c.name for c in cfg.clients]
    head = [
        "strategy",
        f"rounds to mean proton F1 ≥ {cfg.target_proton_f1:g}",
        "final mean proton F1",
        "final mean macro-F1",
        "kB per round (round 1)",
        "kB per round (later)",
        *[f"proton F1 {lab}" for lab in labs],
    ]
    table = []
    for s, d in summary.items():
        reach = d["rounds_to_target"] if d["rounds_to_target"] is not None else "not reached"
        table.append(
            [
                s,
                reach,
                f"{d['final_mean_proton_f1']:.3f}",
                f"{d['final_mean_macro_f1']:.3f}",
                _kb(d["bytes_per_round"].get(1, 0)),
                _kb(d["bytes_later_rounds"]),
                *[f"{d['client_proton_f1'].get(lab, float('nan')):.3f}" for lab in labs],
            ]
        )
    lines = [
        f"# Federated run `{cfg.name}`",
        "",
        f"{len(labs)} labs, {cfg.rounds} rounds of {cfg.local.epochs} local epochs, "
        f"task {cfg.task}, model {cfg.model.name}, seed {cfg.seed}. Bytes: the "
        "serialized parameter arrays of every train message, server to labs plus labs "
        "to server.",
        "",
        markdown_table(head, table),
    ]
    if new_rows:
        epochs = sorted({r["epochs"] for r in new_rows})
        inits = list(dict.fromkeys(r["init"] for r in new_rows))
        cell = {(r["init"], r["epochs"]): r for r in new_rows}
        lines += [
            f"New lab `{cfg.new_client.client.name}` (proton F1 / macro-F1 on its test events):",
            "",
            markdown_table(
                ["init", "tensors copied", *[f"{e} epoch(s)" for e in epochs]],
                [
                    [
                        i,
                        cell[(i, epochs[0])]["init_tensors"],
                        *[
                            f"{cell[(i, e)]['proton_f1']:.3f} / {cell[(i, e)]['macro_f1']:.3f}"
                            for e in epochs
                        ],
                    ]
                    for i in inits
                ],
            ),
        ]
    lines += ["![mean proton F1 per round](f1_rounds.png)", "", "![bytes per round](bytes.png)", ""]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines))
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(
            json.dumps(
                {"config": to_dict(cfg), "strategies": summary, "new_client": new_rows},
                indent=1,
                default=str,
            )
            + "\n"
        )
    plot_rounds(cfg, summary, rows, out / "f1_rounds.png")
    plot_bytes(summary, out / "bytes.png")
    return summary


def plot_rounds(cfg: FedConfig, summary: dict, rows: list[dict], path: Path) -> Path:
    fig, axes = figure(5.5, 3.6)
    ax = axes[0, 0]
    for i, (s, d) in enumerate(summary.items()):
        color = f"C{i}"
        rounds = sorted(d["mean_proton_f1"])
        ax.plot(
            rounds,
            [d["mean_proton_f1"][t] for t in rounds],
            "o-",
            color=color,
            label=f"{s} (mean of labs)",
        )
        for lab in {r["client"] for r in rows if r["strategy"] == s}:
            mine = sorted(
                (r["round"], r["proton_f1"])
                for r in rows
                if r["strategy"] == s and r["client"] == lab
            )
            ax.plot(*zip(*mine, strict=True), color=color, alpha=0.3, lw=0.8)
    ax.axhline(cfg.target_proton_f1, color="grey", ls="--", lw=0.8, label="target")
    ax.set_xlabel("round")
    ax.set_ylabel("proton F1 (test events of each lab)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_bytes(summary: dict, path: Path) -> Path:
    fig, axes = figure(5.5, 3.2)
    ax = axes[0, 0]
    for s, d in summary.items():
        rounds = sorted(d["bytes_per_round"])
        ax.plot(rounds, [d["bytes_per_round"][t] / 1e3 for t in rounds], "o-", label=s)
    ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel("kB sent per round (all labs, both ways)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)
