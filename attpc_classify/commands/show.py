"""``attpc-classify show``: a PNG of one event, its point cloud and its image views.

Examples::

    attpc-classify show sim/run_0000.h5 --event 12                 # -> run_0000_event12.png
    attpc-classify show real.root --event 3 --views xy,zy,zx --size 128 --out ev3.png
    attpc-classify show images.h5 --event 12                        # stored images only
    attpc-classify show images.h5 --event 12 --run 5                # event 12 of run 5

For point-cloud files the views are made with the same `project` call preprocessing
uses (defaults <- ``--config`` <- ``--set`` <- flags), so the panels are exactly what a
model trained with that config sees. For image files the stored images are shown;
``--run`` picks the run when an event id occurs in several.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Save a PNG of one event: its 3-D point cloud and its image views."
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("file", type=Path, metavar="FILE", help="point-cloud or image file")
    parser.add_argument("--event", type=int, required=True, help="event id (not position)")
    parser.add_argument("--out", "-o", type=Path, help="PNG to write (default: FILE_eventN.png)")
    add_image_arguments(parser)
    add_reader_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import numpy as np

    from attpc_classify.display import describe_event, save_event_png
    from data_prep.atomic import check_writable
    from data_prep.build import check_memory
    from data_prep.errors import InputError, plural
    from data_prep.events import CLASS_NAMES
    from data_prep.images import project
    from data_prep.quantiles import file_beam_axis, file_charge_unit
    from data_prep.readers import detect_format, open_events

    out = args.out or Path(f"{args.file.stem}_event{args.event}.png")
    check_writable(out)
    fmt = detect_format(args.file) if args.format == "auto" else args.format
    if fmt == "images":
        from data_prep.imagefile import read_images, read_info

        if image_settings_given(args):
            raise InputError(
                "image files are shown as stored; drop --config/--views/--size/--charge/--set",
                path=args.file,
            )
        info = read_info(args.file)
        with open_events(args.file, "images") as reader:
            match = reader.event_ids() == args.event
            runs = reader.runs()
        if args.run is not None:
            match &= runs == args.run
        where = np.flatnonzero(match)
        in_run = "" if args.run is None else f" of run {args.run}"
        if where.size == 0:
            raise InputError(f"no event {args.event}{in_run} in this image file", path=args.file)
        if len(set(runs[where].tolist())) > 1:
            found = ", ".join(str(r) for r in sorted(set(runs[where].tolist())))
            raise InputError(
                f"event {args.event} is in runs {found}: say which with --run", path=args.file
            )
        data = read_images(args.file, select=where[:1])
        names = tuple(info["class_names"])
        what = describe_event(int(data.run[0]), args.event, int(data.label[0]), names)
        title = f"{args.file.name}: {what} (stored images)"
        save_event_png(out, data.images[0], data.config, title=title)
    else:
        config = image_config(args)
        check_memory(config)
        options = {**reader_options(args), "charge": config.charge_column}
        with open_events(args.file, fmt, **options) as reader:
            event = reader.read_event(args.event)
            names = reader.class_names or CLASS_NAMES
        if config.beam_axis == "run":  # the file's own beam line, as preprocess fits it
            fit = file_beam_axis(args.file, config, format=fmt, reader_options=options)
            config = replace(config, run_beam_axis=fit.axis)
        if config.charge_calibration != "none":  # the file's own unit, as preprocess finds it
            unit = file_charge_unit(args.file, config, axis=config.run_beam_axis, format=fmt,
                                    reader_options=options)  # fmt: skip
            config = replace(config, run_charge_unit=unit.unit)
        proj = project([event], config)
        what = describe_event(event.run, event.event_id, event.label, names)
        outside, nonpositive = int(proj.n_outside[0]), int(proj.n_nonpositive[0])
        title = (
            f"{args.file.name}: {what}, {plural(event.n_points, 'point')} ({outside} outside "
            f"ranges, {nonpositive} with charge <= 0{', blank images' if proj.empty[0] else ''})"
        )
        save_event_png(out, proj.images[0], config, event=event, title=title)
    print(out)
    return 0
