"""``attpc-classify adapt RUN --data unlabelled.h5 --out RUN2``: adapt without labels.

AdaBN then confident, class-balanced pseudo-label self-training with a guard against
collapse (`attpc_classify.adapt`); a tree run (gbt) is refitted on its simulated training
events plus the confident target events instead (`attpc_classify.trees_adapt`). Prints
how the predicted class fractions move. The adapted run works with evaluate / classify /
compare like any run.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from attpc_classify.commands.preprocess import add_reader_arguments

    # dest run_dir: `--run` (a reader option, the run number) is another argument
    parser.add_argument("run_dir", metavar="RUN", help="run directory written by `train`")
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="target events without labels: image files made with the run's preprocessing, "
        "or point-cloud files (projected with it)",
    )
    parser.add_argument("--out", required=True, help="directory of the adapted run")
    parser.add_argument("--max-events", type=int, default=20000, help="target sample size")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="self-training rounds after AdaBN (default 0; trees: refits, at least 1)",
    )
    parser.add_argument("--no-adabn", action="store_true", help="keep the source BN statistics")
    parser.add_argument("--confidence", type=float, default=0.7, help="pseudo-label p >= this")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    # point-cloud targets: the reader options of preprocess (format, pytpc drift, map, ...)
    add_reader_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from attpc_classify.adapt import AdaptConfig, adapt, target_inputs
    from attpc_classify.checkpoint import load_run
    from attpc_classify.commands.preprocess import reader_options
    from attpc_classify.trees_adapt import self_train
    from data_prep.errors import InputError

    if args.max_events < 1:
        raise InputError("--max-events must be >= 1")
    torch.set_num_threads(min(torch.get_num_threads(), 4))
    cfg = AdaptConfig(adabn=not args.no_adabn, rounds=args.rounds, confidence=args.confidence,
                      lr=args.lr, seed=args.seed)  # fmt: skip
    trained = load_run(args.run_dir, device="cpu")
    inputs = target_inputs(trained, args.data, args.max_events, args.seed, format=args.format,
                           reader_options=reader_options(args))  # fmt: skip
    # trees (gbt) have no BatchNorm and no gradient: they are refitted instead
    method = self_train if trained.info.input == "features" else adapt
    report = method(args.run_dir, inputs, args.out, cfg, source=" ".join(args.data))
    print(f"wrote {args.out} ({report['n_target']} target events"
          + (", self-training stopped by the collapse guard)" if report["stopped_by_guard"]
             else ")"))  # fmt: skip
    return 0
