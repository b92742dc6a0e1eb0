"""``attpc-classify health``: how a run's detector ran, beside the runs a model knows.

Examples::

    attpc-classify health run_0042.h5 run_0043.h5
    attpc-classify health runs/ --reference sim/rand --out health.json
    attpc-classify health sim/rand --model runs/trees --out runs/trees/health.json  # once
    attpc-classify health runs/ --model runs/trees    # reference: runs/trees/health.json

Per run file, on a seeded sample of its events (``--events``): points per event, the
point charge and its saturation, the depth range, the fitted beam line, hot and dead
pads, chips firing whole, bursts and sparks, what the structured-noise rules drop,
the charge unit of the elastic-proton band, and whether the pads just outside the
features' beam core see the tracks that pass them (`data_prep.health`). With ``--reference``
(point-cloud files or directories, or a report ``--out`` wrote) each number is compared
with its range over the reference files, and the files outside are named: before
trusting a model's calls on a run, see where the run differs from the simulation it was
trained on. A report kept in the model's run directory as ``health.json`` is the
reference of ``--model RUN`` when no ``--reference`` is given. The numbers are measured
with the preprocessing of ``--model RUN``, of ``--config``/``--set``, or else of the
README's recommended model. docs/sim-to-real.md, "Detector health".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attpc_classify.commands.preprocess import (
    add_image_arguments,
    add_reader_arguments,
    image_config,
    image_settings_given,
    reader_options,
)

#: the preprocessing of the README's recommended model, on configs/prep/features.yaml
RECIPE_SETTINGS = ("features=tracks_v7", "cluster_z_scale=0.5", "charge_calibration=proton_band")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Detector health of run files, and where it differs from a reference."
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("inputs", nargs="+", type=Path, help="point-cloud files or directories")
    parser.add_argument("--out", "-o", type=Path, help="write the report as JSON")
    parser.add_argument(
        "--reference",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a file or directory to compare with (e.g. the training simulation), or a "
        "health report JSON; repeat for more",
    )
    parser.add_argument("--model", type=Path, help="measure with this trained run's preprocessing")
    parser.add_argument(
        "--events", type=int, default=1000, help="events sampled per file (1000; seeded)"
    )
    parser.add_argument("--workers", type=int, default=1, help="files measured at once (1)")
    add_image_arguments(parser)
    add_reader_arguments(parser)


def _config(args: argparse.Namespace):
    """The preprocessing to measure with (see the module docstring)."""
    from attpc_classify.config import load_config
    from data_prep.errors import InputError
    from data_prep.images import ImageConfig

    given = image_settings_given(args)
    if args.model is not None:
        if given:
            raise InputError("--model measures with the run's preprocessing; drop --config/--set")
        from attpc_classify.checkpoint import read_info

        info, _ = read_info(args.model)
        return info.image_config
    if given:
        return image_config(args)
    return load_config(ImageConfig, "features", list(RECIPE_SETTINGS))


def _reference(args: argparse.Namespace, config, options: dict, pool):
    """The reference files' health: read from a report, or measured here."""
    from data_prep.build import expand_inputs
    from data_prep.health import MODEL_REFERENCE, measure_files, read_health

    given = list(args.reference)
    kept = args.model / MODEL_REFERENCE if args.model is not None else None
    if not given and kept is not None and kept.is_file():
        print(f"reference: {kept}")
        given = [kept]
    elif not given and kept is not None:  # the table will have no ranges: say why
        print(f"no reference: {kept} is missing (--reference SIM_DIR measures one)")
    reports = [p for p in given if p.suffix == ".json"]
    files = [p for p in given if p.suffix != ".json"]
    found = [h for p in reports for h in read_health(p)]
    if files:
        found += measure_files(
            expand_inputs(files), config, format=args.format, reader_options=options,
            n_events=args.events, executor=pool,
        )  # fmt: skip
    return found


def run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from data_prep.atomic import check_writable
    from data_prep.build import expand_inputs
    from data_prep.errors import InputError, plural
    from data_prep.health import health_table, measure_files, reference_ranges, write_health

    if args.events < 1:
        raise InputError("--events must be at least 1")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    if args.out is not None:
        check_writable(args.out)
    config = _config(args)
    files = expand_inputs(args.inputs)
    options = reader_options(args)
    if args.workers > 1:
        from attpc_classify.predict import worker_pool

        pool_context = worker_pool(args.workers)
    else:
        pool_context = nullcontext(None)
    with pool_context as pool:
        healths = measure_files(files, config, format=args.format, reader_options=options,
                                n_events=args.events, executor=pool)  # fmt: skip
        reference = _reference(args, config, options, pool)
    ranges = reference_ranges(reference)
    sampled = sum(h.sampled for h in healths)
    against = f", against {plural(len(reference), 'reference file')}" if reference else ""
    print(f"health of {plural(len(healths), 'file')} ({plural(sampled, 'event')} sampled){against}")
    print(health_table(healths, ranges))
    if args.out is not None:
        write_health(args.out, healths, config, reference)
        print(f"-> {args.out}")
    return 0
