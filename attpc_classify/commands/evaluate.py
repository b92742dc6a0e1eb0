"""``attpc-classify evaluate RUN --data FILE [FILE ...]``: metrics with 95 % intervals, and
figures, for each labelled image file (one process: the run is loaded once)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory written by `train`")
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="FILE",
        help="labelled image file(s) (preprocess output); several are scored one after "
        "another by the same loaded model",
    )
    parser.add_argument(
        "--out",
        help="output directory (default RUN/eval/<data stem>/); with several --data files, "
        "the directory that holds one <data stem>/ per file",
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--resample",
        choices=("events", "runs"),
        default="events",
        help="what the bootstrap draws: events, or whole runs (by the file's run numbers), "
        "so that the interval also covers what the events of one run share: its detector "
        "(wants many runs)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="inference precision (auto = bf16 on CPUs with native bf16, else fp32)",
    )
    parser.add_argument(
        "--sim",
        nargs="+",
        metavar="RUN_FILE",
        help="simulate's run files (or their directory) behind --data: errors per channel; "
        "with several --data files, one run file or directory per data file, in order",
    )
    parser.add_argument("--no-figures", action="store_true", help="metrics.json only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


#: below this many runs a bootstrap over runs draws from too few clusters: its intervals
#: come out narrow by chance (3 runs of 100 events: narrower than the events' own)
FEW_RUNS = 10


def summary_lines(metrics: dict, figures: bool = True) -> list[str]:
    """Human-readable lines of an evaluation's headline numbers (``figures``: name the
    reliability diagram drawn beside them)."""
    from attpc_classify.report import fmt_estimate
    from data_prep.errors import plural

    boot = metrics.get("bootstrap", {})
    lines = [
        plural(metrics["n_labelled"], "labelled event")
        + (f" ({metrics['n_unlabelled']} unlabelled excluded)" if metrics["n_unlabelled"] else "")
        + (
            f"; intervals resample whole runs ({boot['n_runs']} runs"
            + (", too few for them to be trusted" if boot["n_runs"] < FEW_RUNS else "")
            + ")"
            if boot.get("resample") == "runs"
            else ""
        )
    ]
    for task, m in metrics["tasks"].items():
        lines.append(
            f"  {task:10s} accuracy {fmt_estimate(m['accuracy'])}  "
            f"macro-F1 {fmt_estimate(m['macro_f1'])}"
        )
        for name, pc in m["per_class"].items():
            lines.append(
                f"    {name:8s} F1 {fmt_estimate(pc['f1'])}  precision "
                f"{fmt_estimate(pc['precision'])}  recall {fmt_estimate(pc['recall'])}  "
                f"(n={pc['support']})"
            )
        if "roc_auc" in m:
            lines.append(
                f"    proton ROC AUC {fmt_estimate(m['roc_auc'])}  "
                f"AP {fmt_estimate(m['average_precision'])}"
            )
    if "calibration" in metrics:
        cal = metrics["calibration"]
        drawn = " (reliability.png)" if figures else ""
        lines.append(f"  calibration: ECE top label {cal['top_label']['ece']:.3f}, "
                     f"p(proton) {cal['proton']['ece']:.3f}{drawn}")  # fmt: skip
    for task, rows in metrics.get("by_channel", {}).items():
        lines.append(f"  {task} errors by simulated channel:")
        for channel, r in rows.items():
            called = ", ".join(f"{k} {v}" for k, v in r["called"].items())
            lines.append(
                f"    {channel:12s} {r['wrong']:5d} / {r['n']:<5d}"
                + (f" called {called}" if called else "")
            )
    return lines


def eval_plan(
    data: list[str], out: str | None, sim: list[str] | None
) -> list[tuple[str, str | None, list[str] | None]]:
    """``(data file, output directory or None for the default, sim files)`` per file.

    One file keeps the single-file meaning of ``--out`` and ``--sim``; several files put
    each result in ``OUT/<stem>/`` and take one ``--sim`` entry per file.
    """
    from pathlib import Path

    from data_prep.errors import InputError

    if len(data) == 1:
        return [(data[0], out, sim)]
    stems = [Path(d).stem for d in data]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise InputError(
            f"several --data files share the name {twice[0]!r}: their results would "
            "overwrite each other; evaluate them in separate calls"
        )
    if sim is not None and len(sim) != len(data):
        raise InputError(
            f"with {len(data)} --data files, --sim needs one run file or directory per "
            f"data file ({len(sim)} given)"
        )
    return [
        (d, str(Path(out) / stem) if out else None, [sim[i]] if sim is not None else None)
        for i, (d, stem) in enumerate(zip(data, stems, strict=True))
    ]


def run(args: argparse.Namespace) -> int:

    from pathlib import Path

    from attpc_classify.checkpoint import load_run
    from attpc_classify.commands import event_bar
    from attpc_classify.evaluate import check_evaluation, evaluate_run
    from data_prep.imagefile import read_info

    plan = eval_plan(args.data, args.out, args.sim)
    trained = load_run(args.run)
    for data, _, _ in plan:  # every file checked before the first is scored
        check_evaluation(
            trained,
            Path(data),
            n_boot=args.n_boot,
            batch_size=args.batch_size,
            resample=args.resample,
        )
    scored: list[tuple[str, dict]] = []
    for data, out, sim in plan:
        if len(plan) > 1:
            print(f"== {data}")
        n = int(read_info(data).get("n_events", 0))
        bar = None

        def progress(k: int, n: int = n) -> None:
            # opened on the first batch, so a mismatch error prints only its one line
            nonlocal bar
            if bar is None:
                bar = event_bar(n, "evaluate", quiet=args.quiet)
            bar.update(k)

        try:
            result = evaluate_run(
                trained,
                data,
                out_dir=out,
                n_boot=args.n_boot,
                seed=args.seed,
                resample=args.resample,
                batch_size=args.batch_size,
                precision=args.precision,
                figures=not args.no_figures,
                progress=progress,
                sim_files=sim,
            )
        finally:
            if bar is not None:
                bar.close()
        for line in summary_lines(result.metrics, figures=not args.no_figures):
            print(line)
        print(f"wrote {result.metrics_path}")
        scored.append((data, result.metrics))
    if len(scored) > 1:
        print()
        for line in comparison_lines(scored):
            print(line)
    return 0


def comparison_lines(scored: list[tuple[str, dict]]) -> list[str]:
    """One line per scored file: labelled events, proton F1 (binary reading) and, for a
    3-class run, macro-F1, each with its interval: the files side by side."""
    from attpc_classify.report import fmt_estimate

    lines = ["file: labelled events, proton F1 [95 %], 3-class macro-F1 [95 %]"]
    for data, m in scored:
        tasks = m["tasks"]
        proton = fmt_estimate(tasks["binary"]["per_class"]["proton"]["f1"])
        macro = fmt_estimate(tasks["multiclass"]["macro_f1"]) if "multiclass" in tasks else "—"
        lines.append(f"  {data}: {m['n_labelled']}, {proton}, {macro}")
    return lines
