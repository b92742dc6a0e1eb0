"""Event display: the 3-D point cloud and the image views exactly as the model gets them.

Object-oriented matplotlib on the Agg canvas (no pyplot, no global backend switch), so
it works on machines without a display and does not disturb other figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from data_prep.events import CLASS_NAMES, Event
from data_prep.images import VIEW_AXES, ImageConfig

AXIS_NAMES = ("x", "y", "z")


def event_figure(
    images: np.ndarray,
    config: ImageConfig,
    *,
    event: Event | None = None,
    title: str = "",
) -> Figure:
    """A figure with the point cloud (when ``event`` has points) and one panel per view.

    Parameters
    ----------
    images
        ``(C, S, S)`` image of one event, as stored (uint8 or float16).
    config
        The image config that made ``images`` (views, ranges, size).
    event
        The event's point cloud, drawn in 3-D coloured by charge; None for image files.
    title
        Figure title.

    Each view panel shows the stored pixel array with row 0 at the bottom (the vertical
    axis ascending, as `project` fills it) and the axes labelled in mm over the image's
    ranges, so a point at known x, y is where you expect it.
    """
    has_cloud = event is not None and event.n_points > 0
    n_panels = len(config.views) + int(has_cloud)
    fig = Figure(figsize=(4.4 * n_panels, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ranges = config.ranges
    col = 1
    if has_cloud:
        ax = fig.add_subplot(1, n_panels, col, projection="3d")
        x, y, z, q = (event.points[:, i] for i in range(4))
        # Beam (z) along the long horizontal axis, pad plane (x, y) across it.
        sc = ax.scatter(z, x, y, c=q, cmap="viridis", s=4, depthshade=False)
        ax.set_xlim(*ranges[2])
        ax.set_ylim(*ranges[0])
        ax.set_zlim(*ranges[1])
        ax.set_xlabel("z [mm]")
        ax.set_ylabel("x [mm]")
        ax.set_zlabel("y [mm]")
        ax.set_title(f"point cloud ({event.n_points} points)")
        fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.15, label="charge [ADC]")
        col += 1
    vmax = 255 if np.dtype(config.dtype) == np.uint8 else 1.0
    for c, view in enumerate(config.views):
        ax = fig.add_subplot(1, n_panels, col + c)
        col_axis, row_axis = VIEW_AXES[view]
        extent = (*ranges[col_axis], *ranges[row_axis])
        im = ax.imshow(
            # the first pixel value of the view (summed charge unless configured otherwise)
            np.asarray(images[c * len(config.pixel_values)], dtype=np.float32),
            origin="lower",
            extent=extent,
            aspect="auto",
            cmap="magma",
            vmin=0,
            vmax=vmax,
            interpolation="nearest",
        )
        ax.set_xlabel(f"{AXIS_NAMES[col_axis]} [mm]")
        ax.set_ylabel(f"{AXIS_NAMES[row_axis]} [mm]")
        ax.set_title(f"view {view}: {config.size}x{config.size} px, channel {c}")
        _charge_colorbar(fig, ax, im, config, vmax)
    if title:
        fig.suptitle(title)
    return fig


def pixel_charge(value: np.ndarray, config: ImageConfig, vmax: float) -> np.ndarray:
    """Summed charge [ADC] of a pixel from its stored value (inverse of the transform)."""
    frac = np.asarray(value, dtype=np.float64) / vmax
    if config.charge_transform == "log1p":
        return np.expm1(frac * np.log1p(config.charge_scale))
    return frac * config.charge_scale  # linear (binary has no charge scale)


def _charge_colorbar(fig: Figure, ax, im, config: ImageConfig, vmax: float) -> None:
    """Colour bar in summed charge per pixel [ADC], the stored pixel value beside it."""
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    if config.charge_transform == "binary":
        bar.set_ticks([0, vmax], labels=["no hit", "hit"])
        bar.set_label("pixel (binary: any charge)")
        return
    ticks = np.linspace(0, vmax, 6)
    charges = pixel_charge(ticks, config, vmax)
    stored = [f"{t:.0f}" if vmax > 1 else f"{t:.1f}" for t in ticks]
    bar.set_ticks(ticks, labels=[f"{q:,.0f} ({s})" for q, s in zip(charges, stored, strict=True)])
    bar.set_label(
        f"charge per pixel [ADC] (stored value), {config.charge_transform} scale", fontsize=8
    )


def describe_event(
    run: int, event_id: int, label: int, class_names: tuple[str, ...] = CLASS_NAMES
) -> str:
    """``run 7, event 12, label carbon`` (``unlabelled`` for -1)."""
    name = class_names[label] if 0 <= label < len(class_names) else "unlabelled"
    return f"run {run}, event {event_id}, {name}"


def save_event_png(
    path: str | Path,
    images: np.ndarray,
    config: ImageConfig,
    *,
    event: Event | None = None,
    title: str = "",
    dpi: int = 100,
) -> Path:
    """Draw `event_figure` and write it as a PNG (atomically); returns the path."""
    from attpc_classify.plots import save

    fig = event_figure(images, config, event=event, title=title)
    return save(fig, path, dpi=dpi)
