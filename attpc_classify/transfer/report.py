"""``results.md`` and the figures of a benchmark run, from its ``results.csv`` alone.

Scores are the mean ± standard deviation over the seeds of a cell (``n=1``: one seed,
no spread). Figures are drawn on Agg `Figure` objects (no pyplot state) and written
atomically into ``figures/``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attpc_classify.plots import figure, markdown_table, save
from attpc_classify.report import write_text
from attpc_classify.transfer.config import (
    LEARNGENE_OF,
    NON_VIT,
    STRATEGIES,
    VIT_STRATEGIES,
    BenchConfig,
)

LABELS = {
    "scratch": "ViT scratch (short)",
    "scratch_full": "ViT scratch (full)",
    "prefin": "Pre-Fin",
    "tleg": "TLEG",
    "lets_continuous": "LeTs (continuous)",
    "lets_magnitude": "LeTs (magnitude)",
    "ldr": "LDR (Chebyshev)",
    "pool": "Learngene Pool",
    "inherit": "inherit (last k)",
    "weight_select": "weight selection",
    "mmlg": "MM-LG (all views)",
    "mmlg_xy": "MM-LG (xy only)",
    "scratch_views": "per-view ViTs scratch",
    "scratch_xy": "xy ViT scratch",
    "cnn_scratch": "small CNN scratch",
    "cnn_imagenet": "EfficientNet-Lite0 ImageNet",
    "logreg": "logistic regression",
}
#: one colour per strategy (tab10 for the first ten; named colours for the rest)
_EXTRA_COLORS = {
    "logreg": "black",
    "ldr": "darkgoldenrod",
    "pool": "magenta",
    "mmlg": "teal",
    "mmlg_xy": "darkturquoise",
    "scratch_views": "slategray",
    "scratch_xy": "lightsteelblue",
}
COLORS = {
    s: f"C{i}" for i, s in enumerate(s for s in STRATEGIES if s not in _EXTRA_COLORS)
} | _EXTRA_COLORS


# --------------------------------------------------------------------------- aggregation


class Table:
    """Scores grouped by (strategy, depth, width, task, n_train, budget) over seeds."""

    def __init__(self, rows: Sequence[dict[str, Any]]):
        self.groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            key = (
                r["strategy"],
                r["depth"],
                r["width"],
                r["task"],
                r["n_train"],
                r["budget_epochs"],
            )
            self.groups[key].append(r)

    def get(self, strategy, depth, width, task, n, budget, metric="proton_f1"):
        """(mean, std, n_seeds) or None."""
        rows = self.groups.get((strategy, depth, width, task, n, budget))
        if not rows:
            return None
        v = np.array([r[metric] for r in rows], dtype=float)
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)

    def budgets(self, strategy, depth, width, task, n) -> list[int]:
        return sorted(
            b
            for (s, d, w, t, nn, b) in self.groups
            if (s, d, w, t, nn) == (strategy, depth, width, task, n)
        )

    def first(self, strategy, depth, width, task, n, budget, column):
        rows = self.groups.get((strategy, depth, width, task, n, budget))
        return rows[0][column] if rows else None


def fmt(est, digits: int = 3) -> str:
    if est is None:
        return "—"
    mean, std, n = est
    if n == 1:
        return f"{mean:.{digits}f}¹"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _sizes(cfg: BenchConfig, strategy: str, depths: Sequence[int]) -> list[tuple[int, int]]:
    return cfg.strategy_sizes(strategy, depths)


def _size_label(depth: int, width: int) -> str:
    return f"d{depth} w{width}" if depth else "—"


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


# --------------------------------------------------------------------------- answer


def epochs_to_reach(
    t: Table, cfg: BenchConfig, strategy, depth, width, task, n, target, metric="proton_f1"
):
    """Smallest budget whose mean score reaches ``target``, or None."""
    for b in t.budgets(strategy, depth, width, task, n):
        est = t.get(strategy, depth, width, task, n, b, metric)
        if est is not None and est[0] >= target:
            return b
    return None


def headline_answer(t: Table, cfg: BenchConfig, stored: dict[str, int]) -> tuple[str, dict]:
    """The question of the issue answered per task and depth, and the targets checked."""
    g, f = cfg.grid, cfg.finetune
    n = g.headline_size
    full = f.full_epochs
    lines = []
    checks = {"fast": [], "storage": [], "proton": []}
    prefin_stored = stored.get("prefin")
    for task in g.tasks:
        header = ["depth", "scratch_full final proton F1"]
        strategies = [s for s in g.strategies if s in VIT_STRATEGIES and s != "scratch_full"]
        header += [LABELS[s] for s in strategies]
        body = []
        for depth in cfg.vit.depths:
            ref = t.get("scratch_full", depth, cfg.vit.width, task, n, full)
            if ref is None:
                continue
            row = [depth, fmt(ref)]
            for s in strategies:
                b = epochs_to_reach(t, cfg, s, depth, cfg.vit.width, task, n, ref[0])
                row.append("not reached" if b is None else f"{b} ({b / full:.2f}×)")
                if s in LEARNGENE_OF and b is not None and b <= full / 5:
                    final = t.get(s, depth, cfg.vit.width, task, n, b)
                    checks["fast"].append((s, depth, task, b, final[0]))
            body.append(row)
        if body:
            lines.append(
                f"**{task}**, n = {n} labelled target events: fine-tuning epochs to "
                f"reach the final proton F1 of scratch_full ({full} epochs); in "
                "brackets the fraction of scratch_full's epochs.\n"
            )
            lines.append(markdown_table(header, body))
    if prefin_stored:
        for s in g.strategies:
            if s in LEARNGENE_OF and stored.get(s):
                ratio = prefin_stored / stored[s]
                if ratio >= 20:
                    checks["storage"].append((s, ratio))
    last = max(f.budgets)
    for task in g.tasks:
        for s in g.strategies:
            if s not in LEARNGENE_OF:
                continue
            for depth, width in _sizes(cfg, s, cfg.vit.depths):
                est = t.get(s, depth, width, task, n, last)
                if est is not None and est[0] >= 0.95:
                    checks["proton"].append((s, depth, width, task, est[0]))
    return "\n".join(lines), checks


# --------------------------------------------------------------------------- markdown


def _machine() -> str:
    import torch

    from attpc_classify.device import describe_cpu

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{describe_cpu()}, {gpu}, torch {torch.__version__}"


def _invocations(invocations: Sequence[dict[str, Any]]) -> str:
    if not invocations:
        return ""
    total = sum(i["wall_s"] for i in invocations)
    return (
        f"Wall clock of the {len(invocations)} `benchmark` call(s) into this directory: "
        f"{total / 60:.1f} min (stages built earlier by other calls not included). "
    )


def results_markdown(
    cfg: BenchConfig,
    rows: Sequence[dict[str, Any]],
    stages: dict[str, dict[str, Any]],
    invocations: Sequence[dict[str, Any]] = (),
) -> str:
    """The text of results.md: machine and cost, data, headline, the answer, every size,
    labelled-set sizes, storage and cost, notes, figures."""
    t = Table(rows)
    stored = {r["strategy"]: r["params_stored"] for r in rows}
    shared = {r["strategy"]: (r["shared_images"], r["shared_wall_s"]) for r in rows}
    answer, checks = headline_answer(t, cfg, stored)
    out: list[str] = [f"# Transfer benchmark `{cfg.name}`\n"]
    out.append(_machine_line(cfg, t, rows, stages, invocations))
    out.append(_data_section(cfg, stages))
    out += _headline_section(cfg, t, stages)
    out.append("## The question: which initialisation, how much training\n")
    out.append(answer or "(scratch_full not in the grid)\n")
    out.append(_checks_text(cfg, checks, stored))
    out += _every_size_section(cfg, t)
    out += _labelled_size_section(cfg, t, sorted({r["n_train"] for r in rows}))
    out.append("## Storage and cost\n")
    out.append(_cost_section(cfg, t, stored, shared, stages))
    out.append(_notes(cfg))
    out += _figures_section(cfg)
    return "\n".join(out)


def _machine_line(cfg: BenchConfig, t: Table, rows, stages, invocations) -> str:
    """Where it ran and how long training took (stages, grid cells)."""
    grid_wall = sum(
        r["wall_s"] - _own_pretrain_wall(r, stages)
        for r in rows
        if r["budget_epochs"] == _last_budget(t, r)
    )
    stage_wall = sum(s.get("stage_wall_s", 0.0) for s in stages.values())
    return (
        f"Machine: {_machine()}. Training time summed over stages "
        f"{stage_wall / 60:.1f} min (as recorded when each was built) and over grid cells "
        f"{grid_wall / 60:.1f} min (evaluation excluded); {cfg.grid_workers} process(es) of "
        f"{cfg.worker_threads if cfg.grid_workers > 1 else cfg.threads or 'default'} torch "
        f"thread(s) ran them at once. {_invocations(invocations)}"
        "Other processes on the machine inflate wall times.\n"
    )


def _final_budget(cfg: BenchConfig, strategy: str) -> int:
    """The budget a strategy is compared at: the full one for scratch_full, else the last."""
    f = cfg.finetune
    return f.full_epochs if strategy == "scratch_full" else max(f.budgets)


def _budget_cells(cfg: BenchConfig, t: Table, s: str, depth, width, task, n) -> list[str]:
    """Proton F1 at every budget, then at the full budget (scratch_full only)."""
    f = cfg.finetune
    cells = [fmt(t.get(s, depth, width, task, n, b)) for b in f.budgets]
    full = t.get(s, depth, width, task, n, f.full_epochs) if s == "scratch_full" else None
    cells.append(fmt(full) if s == "scratch_full" else "")
    return cells


def _headline_sizes(cfg: BenchConfig, s: str) -> list[tuple[int, int]]:
    """The headline depth's sizes of a strategy (LeTs at the grid's width only)."""
    sizes = _sizes(cfg, s, [cfg.grid.headline_depth])
    return [(d, w) for d, w in sizes if not (s.startswith("lets") and w != cfg.vit.width)]


def _headline_section(cfg: BenchConfig, t: Table, stages) -> list[str]:
    g, f, n = cfg.grid, cfg.finetune, cfg.grid.headline_size
    last = max(f.budgets)
    n_test = stages.get("images_target_test", {}).get("written", "?")
    out = [
        "## Headline\n",
        f"ViT depth {g.headline_depth}, width {cfg.vit.width} (the baselines at their one "
        f"size), n = {n} labelled target events, test on {n_test} "
        f"shifted-simulation events. Proton F1 after each fine-tuning budget (epochs), "
        f"mean ± std over seeds; ¹ = one seed.\n",
    ]
    header = [
        "strategy",
        *[f"{b} ep" for b in f.budgets],
        f"{f.full_epochs} ep",
        f"macro-F1 @{last}",
        f"accuracy @{last}",
        "seeds",
    ]
    for task in g.tasks:
        body = []
        for s in g.strategies:
            for depth, width in _headline_sizes(cfg, s):
                fin = _final_budget(cfg, s)
                mf = t.get(s, depth, width, task, n, fin, "macro_f1")
                acc = t.get(s, depth, width, task, n, fin, "accuracy")
                seeds = t.get(s, depth, width, task, n, fin)
                cells = _budget_cells(cfg, t, s, depth, width, task, n)
                body.append([LABELS[s], *cells, fmt(mf), fmt(acc), seeds[2] if seeds else 0])
        out += [f"### {task}\n", markdown_table(header, body)]
    return out


def _every_size_section(cfg: BenchConfig, t: Table) -> list[str]:
    g, f, n = cfg.grid, cfg.finetune, cfg.grid.headline_size
    out = [
        "## Every size\n",
        f"n = {n}; proton F1 per budget, then macro-F1 at the last budget. ¹ = one seed.\n",
    ]
    header = [
        "strategy",
        "size",
        "params",
        *[f"{b} ep" for b in f.budgets],
        f"{f.full_epochs} ep",
        f"macro-F1 @{max(f.budgets)}",
    ]
    for task in g.tasks:
        body = []
        for s in g.strategies:
            for depth, width in _sizes(cfg, s, cfg.vit.depths):
                if not t.budgets(s, depth, width, task, n):
                    continue
                fin = _final_budget(cfg, s)
                params = t.first(s, depth, width, task, n, fin, "model_params")
                body.append(
                    [
                        LABELS[s],
                        _size_label(depth, width),
                        _human(params or 0),
                        *_budget_cells(cfg, t, s, depth, width, task, n),
                        fmt(t.get(s, depth, width, task, n, fin, "macro_f1")),
                    ]
                )
        out += [f"### {task}\n", markdown_table(header, body)]
    return out


def _labelled_size_section(cfg: BenchConfig, t: Table, sizes: list[int]) -> list[str]:
    """Proton F1 per labelled-set size (only when the grid has more than one)."""
    if len(sizes) <= 1:
        return []
    g, f = cfg.grid, cfg.finetune
    out = [
        "## Labelled-set size\n",
        f"Depth {g.headline_depth} (baselines at their size); proton F1 after "
        f"{max(f.budgets)} fine-tuning epochs (scratch_full: {f.full_epochs}). ¹ = one seed.\n",
    ]
    for task in g.tasks:
        body = []
        for s in g.strategies:
            fin = _final_budget(cfg, s)
            for depth, width in _headline_sizes(cfg, s):
                body.append(
                    [LABELS[s], *[fmt(t.get(s, depth, width, task, nn, fin)) for nn in sizes]]
                )
        header = ["strategy", *[f"n = {nn}" for nn in sizes]]
        out += [f"### {task}\n", markdown_table(header, body)]
    return out


def _figures_section(cfg: BenchConfig) -> list[str]:
    out = ["## Figures\n"]
    for name, caption in FIGURES.items():
        task = name.removeprefix("f1_vs_epochs_").removesuffix(".png")
        if name.startswith("f1_vs_epochs_") and task not in cfg.grid.tasks:
            continue
        out.append(f"![{caption}](figures/{name})\n")
    return out


def _last_budget(t: Table, r: dict) -> int:
    return max(t.budgets(r["strategy"], r["depth"], r["width"], r["task"], r["n_train"]))


def _own_pretrain_wall(r: dict, stages: dict) -> float:
    if r["strategy"] == "prefin":
        return stages.get(f"vit_d{r['depth']}", {}).get("wall_s", 0.0)
    return 0.0


def _data_section(cfg: BenchConfig, stages: dict[str, dict[str, Any]]) -> str:
    lines = ["## Data\n"]
    body = []
    for role, label in (
        ("source", "source (nominal)"),
        ("target_train", "target pool (shifted)"),
        ("target_test", "target test (shifted)"),
    ):
        sim = stages.get(f"sim_{role}", {})
        spec = getattr(cfg.data, role)
        classes = sim.get("classes", {})
        body.append(
            [
                label,
                spec.preset,
                spec.seed,
                sim.get("n_events", "?"),
                " / ".join(str(classes.get(c, "?")) for c in ("proton", "carbon", "other")),
            ]
        )
    lines.append(
        markdown_table(["set", "preset", "seed", "events", "proton / carbon / other"], body)
    )
    img = cfg.data.image
    lines.append(
        f"Images: views {', '.join(img.views)}, {img.size}² pixels, "
        f"{img.charge_transform} charge; voxels {img.voxel_grid}³ for logreg. "
        f"ViT: patch {cfg.vit.patch}, width {cfg.vit.width}, {cfg.vit.heads} heads, "
        f"depths {', '.join(map(str, cfg.vit.depths))}.\n"
    )
    pre = []
    for name, info in stages.items():
        if name.startswith("vit_d") or name.startswith("learngene_"):
            f1 = info.get("best_val_macro_f1")
            pre.append(
                [
                    name,
                    "—" if f1 is None else f"{f1:.4f}",
                    info.get("train_images", 0),
                    f"{info.get('wall_s', 0.0):.0f}",
                ]
            )
    if pre:
        lines.append(
            "Source-side training (3-class, validated on a held-out "
            f"{cfg.data.source_val_fraction:.0%} of the source):\n"
        )
        lines.append(markdown_table(["stage", "best val macro-F1", "images", "wall s"], pre))
    return "\n".join(lines)


def _checks_text(cfg: BenchConfig, checks: dict, stored: dict[str, int]) -> str:
    full = cfg.finetune.full_epochs
    lines = ["Aims of the issue, checked on these numbers:\n"]
    fast: dict[tuple[str, str], list[str]] = defaultdict(list)
    for s, d, task, b, _ in checks["fast"]:
        fast[(s, task)].append(f"d{d} {b}")
    lines.append(
        f"* A learngene descendant reaches scratch_full's final proton F1 in ≤ {full / 5:g} "
        f"epochs (1/5 of {full}): "
        + (
            "**yes** — "
            + "; ".join(f"{s} {task} ({', '.join(v)} ep)" for (s, task), v in fast.items())
            if fast
            else "**no** (no learngene strategy at any depth)"
        )
        + ".\n"
    )
    st = checks["storage"]
    lines.append(
        "* ≥ 20× fewer stored parameters than Pre-Fin: "
        + ("**yes** — " + ", ".join(f"{s} {r:.1f}×" for s, r in st) if st else "**no**")
        + (f" (Pre-Fin stores {stored.get('prefin', 0):,})" if stored.get("prefin") else "")
        + ".\n"
    )
    pr = checks["proton"]
    best = max(pr, key=lambda x: x[4]) if pr else None
    lines.append(
        f"* Proton F1 ≥ 0.95 on the shifted test set after {max(cfg.finetune.budgets)} epochs "
        "(learngene strategies, headline n): "
        + (
            f"**yes** — {len(pr)} cells, best {best[0]} d{best[1]} w{best[2]} {best[3]} "
            f"{best[4]:.3f}"
            if best
            else "**no**"
        )
        + ".\n"
    )
    return "\n".join(lines)


def _cost_section(cfg, t: Table, stored, shared, stages) -> str:
    g, f = cfg.grid, cfg.finetune
    n, last = g.headline_size, max(f.budgets)
    prefin = stored.get("prefin")
    body = []
    for s in g.strategies:
        sizes = _sizes(cfg, s, cfg.vit.depths)
        task = g.tasks[-1]
        fin = f.full_epochs if s == "scratch_full" else last
        ft = [t.first(s, d, w, task, n, fin, "train_images") for d, w in sizes]
        ft = [x for x in ft if x is not None]
        images, wall = shared.get(s, (0, 0.0))
        ratio = f"{prefin / stored[s]:.1f}×" if prefin and stored.get(s) else "—"
        body.append(
            [
                LABELS[s],
                f"{stored.get(s, 0):,}",
                ratio,
                _human(images),
                f"{wall:.0f}",
                len(ft),
                _human(sum(ft)),
                _human(images + sum(ft)),
            ]
        )
    text = [
        f"Parameters stored to initialise every size ({', '.join(map(str, cfg.vit.depths))} "
        f"at width {cfg.vit.width}; LeTs also at widths "
        f"{', '.join(map(str, cfg.learngene.lets_widths))}); the ImageNet model for "
        "EfficientNet. Cost in training images: the one-off *shared* cost (ancestry + "
        "Aux-Net for learngenes, counted once for all sizes and both tasks) and, per size, "
        f"its own training for one task at n = {n} (Pre-Fin: its source pre-training + "
        f"fine-tuning, {last} epochs; scratch_full: {f.full_epochs}).\n",
        markdown_table(
            [
                "strategy",
                "params stored",
                "vs Pre-Fin",
                "shared images",
                "shared wall s",
                "sizes",
                "own images (all sizes)",
                "total images",
            ],
            body,
        ),
    ]
    return "\n".join(text)


def _notes(cfg: BenchConfig) -> str:
    f = cfg.finetune
    return "\n".join(
        [
            "## How to read this\n",
            f"* Budgets {', '.join(map(str, f.budgets))} are evaluations along **one** "
            f"fine-tuning run of {max(f.budgets)} epochs (linear warm-up "
            f"{f.optim.warmup_epochs:g} epoch, cosine decay over the {max(f.budgets)} epochs), "
            "not separately scheduled runs; scratch_full is its own run of "
            f"{f.full_epochs} epochs, evaluated at the same epochs and at its end.",
            "* Budget 0 is the initialisation itself. The learngenes, the ancestry and Pre-Fin's "
            "models are trained once, 3-class, on the source and shared by both tasks: for the "
            "binary task the head is new (random), so 0-epoch binary scores are chance; for the "
            "3-class task the source head is kept, so 0 epochs = the source model on shifted data.",
            "* logreg is fitted to convergence (L-BFGS) and listed at the last budget; its "
            "train_images = events × iterations.",
            "* Seeds change the labelled subset drawn from the target pool (except at the full "
            "pool), fresh parameters, batch order and augmentation; the source-side artifacts "
            f"are one training each. Headline cells (depth {cfg.grid.headline_depth} and the "
            f"baselines at n = {cfg.grid.headline_size}) have {cfg.grid.seeds} seeds, the others "
            f"{cfg.grid.other_seeds}.",
            "* No validation set and no early stopping on the target: every run trains for its "
            "budget, so the numbers are not picked on the test set.\n",
        ]
    )


# --------------------------------------------------------------------------- figures

FIGURES = {
    "f1_vs_epochs_binary.png": "Proton F1 vs fine-tuning epochs per size, binary",
    "f1_vs_epochs_multiclass.png": "Proton F1 vs fine-tuning epochs per size, 3-class",
    "f1_vs_params.png": "Proton F1 vs model parameters",
    "storage_cost.png": "Parameters stored and training cost per strategy",
    "binary_vs_multiclass.png": "Binary vs 3-class, headline size",
}


def _xpos(b: int) -> float:
    """Budgets on a log-like axis that keeps 0: log2(1 + epochs)."""
    return float(np.log2(1 + b))


def plot_f1_vs_epochs(cfg: BenchConfig, t: Table, task: str, path: Path) -> None:
    g, v = cfg.grid, cfg.vit
    n = g.headline_size
    depths = list(v.depths)
    fig, axes = figure(3.2 * len(depths) + 1.6, 3.4, 1, len(depths))
    ticks = sorted({*cfg.finetune.budgets, cfg.finetune.full_epochs})
    for ax, depth in zip(axes[0], depths, strict=True):
        for s in g.strategies:
            if s in NON_VIT:
                continue
            xs, ys, es = [], [], []
            for b in t.budgets(s, depth, v.width, task, n):
                m, sd, _ = t.get(s, depth, v.width, task, n, b)
                xs.append(_xpos(b))
                ys.append(m)
                es.append(sd)
            if xs:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=es,
                    marker="o",
                    ms=3,
                    lw=1.2,
                    capsize=2,
                    color=COLORS[s],
                    label=LABELS[s],
                )
        for s in NON_VIT:
            est = t.get(s, 0, 0, task, n, max(cfg.finetune.budgets))
            if est is not None:
                ax.axhline(est[0], color=COLORS[s], ls=":", lw=1, label=f"{LABELS[s]} (final)")
        ax.set_xticks([_xpos(b) for b in ticks], [str(b) for b in ticks])
        ax.set(title=f"depth {depth}, width {v.width}", xlabel="fine-tuning epochs", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("proton F1 (target test)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    fig.suptitle(f"{task}, n = {n} labelled target events")
    save(fig, path)


def plot_f1_vs_params(cfg: BenchConfig, t: Table, path: Path) -> None:
    g = cfg.grid
    n, last = g.headline_size, max(cfg.finetune.budgets)
    fig, axes = figure(4.6 * len(g.tasks) + 1.6, 3.6, 1, len(g.tasks))
    for ax, task in zip(axes[0], g.tasks, strict=True):
        for s in g.strategies:
            fin = cfg.finetune.full_epochs if s == "scratch_full" else last
            groups = [
                (w, [(d, ww) for d, ww in _sizes(cfg, s, cfg.vit.depths) if ww == w])
                for w in sorted({w for _, w in _sizes(cfg, s, cfg.vit.depths)})
            ]
            for j, (w, sizes) in enumerate(groups):
                pts = []
                for d, ww in sizes:
                    est = t.get(s, d, ww, task, n, fin)
                    p = t.first(s, d, ww, task, n, fin, "model_params")
                    if est is not None and p:
                        pts.append((p, est[0], est[1]))
                if not pts:
                    continue
                p, m, sd = zip(*sorted(pts), strict=True)
                label = LABELS[s] + (f" w{w}" if s.startswith("lets") else "")
                ax.errorbar(
                    p,
                    m,
                    yerr=sd,
                    marker="os^"[j % 3],
                    ms=4,
                    lw=1,
                    capsize=2,
                    ls="-" if j == len(groups) - 1 else "--",
                    color=COLORS[s],
                    label=label,
                )
        ax.set_xscale("log")
        ax.set(
            title=f"{task}: after {last} epochs (scratch_full {cfg.finetune.full_epochs})",
            xlabel="model parameters",
            ylabel="proton F1",
            ylim=(0, 1.02),
        )
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    save(fig, path)


def plot_storage_cost(cfg: BenchConfig, rows, t: Table, path: Path) -> None:
    g, f = cfg.grid, cfg.finetune
    n, last = g.headline_size, max(f.budgets)
    stored = {r["strategy"]: r["params_stored"] for r in rows}
    shared = {r["strategy"]: r["shared_images"] for r in rows}
    strategies = [s for s in g.strategies if s in stored]
    fig, axes = figure(11, 3.8, 1, 2)
    ax = axes[0][0]
    vals = [max(stored[s], 1) for s in strategies]
    ax.bar(range(len(strategies)), vals, color=[COLORS[s] for s in strategies])
    for i, s in enumerate(strategies):
        ax.text(
            i,
            vals[i],
            _human(stored[s]) if stored[s] else "0",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_yscale("log")
    ax.set_xticks(
        range(len(strategies)), [LABELS[s] for s in strategies], rotation=40, ha="right", fontsize=7
    )
    ax.set(title="parameters stored (all sizes)", ylabel="parameters")
    ax = axes[0][1]
    task = g.tasks[-1]
    own = []
    for s in strategies:
        fin = f.full_epochs if s == "scratch_full" else last
        own.append(
            sum(
                t.first(s, d, w, task, n, fin, "train_images") or 0
                for d, w in _sizes(cfg, s, cfg.vit.depths)
            )
        )
    x = np.arange(len(strategies))
    sh = np.array([shared.get(s, 0) for s in strategies], dtype=float)
    ax.bar(x, sh, color="0.6", label="shared (ancestry + Aux-Net), once")
    ax.bar(
        x,
        own,
        bottom=sh,
        color=[COLORS[s] for s in strategies],
        label="own: pre-training (Pre-Fin) + fine-tuning, all sizes",
    )
    ax.set_xticks(x, [LABELS[s] for s in strategies], rotation=40, ha="right", fontsize=7)
    ax.set(title=f"training images to make every size ({task}, n = {n})", ylabel="images")
    ax.legend(fontsize=7)
    save(fig, path)


def plot_binary_vs_multiclass(cfg: BenchConfig, t: Table, path: Path) -> None:
    g, f, v = cfg.grid, cfg.finetune, cfg.vit
    n = g.headline_size
    budgets = [*[b for b in f.budgets if b > 0][:1], max(f.budgets)]
    budgets = sorted(set(budgets))
    fig, axes = figure(5.5 * len(budgets), 3.8, 1, len(budgets))
    width = 0.8 / max(1, len(g.tasks))
    for ax, b in zip(axes[0], budgets, strict=True):
        labels = []
        for i, s in enumerate(g.strategies):
            depth, w = (0, 0) if s in NON_VIT else (g.headline_depth, v.width)
            bb = f.full_epochs if s == "scratch_full" and b == max(f.budgets) else b
            labels.append(LABELS[s])
            for j, task in enumerate(g.tasks):
                est = t.get(s, depth, w, task, n, bb)
                if est is None:
                    continue
                ax.bar(
                    i + (j - (len(g.tasks) - 1) / 2) * width,
                    est[0],
                    width,
                    yerr=est[1],
                    capsize=2,
                    color=f"C{j}",
                    label=task if i == 0 else None,
                )
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=7)
        ax.set(
            title=f"after {b} epochs (scratch_full: {f.full_epochs}), depth "
            f"{g.headline_depth}, n = {n}",
            ylabel="proton F1",
            ylim=(0, 1.02),
        )
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    save(fig, path)


def write_report(
    cfg: BenchConfig, out: str | Path, rows: Sequence[dict[str, Any]], stages: dict[str, dict]
) -> Path:
    """Write ``out/results.md`` and ``out/figures/*.png``; return the Markdown path."""
    from attpc_classify.transfer.grid import plan_cells

    out = Path(out)
    planned = {c.key for c in plan_cells(cfg)}
    from attpc_classify.transfer.grid import cell_key

    rows = [r for r in rows if cell_key(r) in planned]
    t = Table(rows)
    figures = out / "figures"
    for task in cfg.grid.tasks:
        plot_f1_vs_epochs(cfg, t, task, figures / f"f1_vs_epochs_{task}.png")
    plot_f1_vs_params(cfg, t, figures / "f1_vs_params.png")
    plot_storage_cost(cfg, rows, t, figures / "storage_cost.png")
    plot_binary_vs_multiclass(cfg, t, figures / "binary_vs_multiclass.png")
    marker = out / "benchmark.json"
    invocations = []
    if marker.exists():
        from attpc_classify.checkpoint import read_json

        invocations = read_json(marker).get("invocations", [])
    text = results_markdown(cfg, rows, stages, invocations)
    path = out / "results.md"
    return write_text(path, text)
