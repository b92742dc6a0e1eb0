"""Point formation: attpc-engine's charge per (pad, time bucket) -> the points of a cloud.

Three ways (``electronics.point_formation``), each what some real analysis chain makes:

``peaks`` (default)
    Spyral's PointcloudPhase: each pad's GET trace is the charge per bucket convolved
    with the GET response (attpc-engine's `get_response`, 4095 ADC saturation); peaks
    are found as Spyral's `GetTrace.find_peaks` finds them (scipy `find_peaks` with
    Spyral's separation, prominence, width and threshold; `spyral_peaks` repeats that
    computation without the per-call overhead, equal to Spyral's own on every trace in
    tests/test_sim_shortcuts.py); a trace with more than 5 peaks is dropped, as Spyral's
    `point_cloud_from_get` does. A pad gives one point per pulse.
``pad``
    pytpc's ``peaks_only``: one point per pad, at the trace maximum.
``bucket``
    attpc-engine's `SpyralWriter`: one point per (pad, bucket) above threshold (a heavy
    track becomes a column of ~18 points per pad).

The time of a peak is the time of the trace maximum, which the shaper delays by
`peak_delay` buckets after the charge arrives; it is subtracted, as a real analysis
calibrates z on the micromegas and window edges of its own data.
"""

from __future__ import annotations

import functools
import math

import numpy as np

NUM_TB = 512
ADC_MAX = 4095.0
POINT_MODES = ("peaks", "pad", "bucket")
#: Spyral's point_cloud_from_get skips traces with more peaks than this (noisy pads).
SPYRAL_MAX_PEAKS = 5


def peak_delay(response: np.ndarray) -> float:
    """Buckets from the arrival of a charge to the maximum of its GET pulse."""
    return float(np.argmax(response))


def pad_traces(raw: np.ndarray, response: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every hit pad's trace: ``(pads (P,), traces (P, 512))`` in ADC, saturated at 4095.

    ``raw`` rows are attpc-engine's ``[pad, time bucket, electrons]`` (already times the
    gain); the trace is the charge per whole bucket convolved with the response.
    """
    pads, inverse = np.unique(raw[:, 0].astype(np.int64), return_inverse=True)
    charge = np.zeros((len(pads), NUM_TB))
    np.add.at(charge, (inverse, np.clip(raw[:, 1].astype(np.int64), 0, NUM_TB - 1)), raw[:, 2])
    n = 2 * NUM_TB  # linear, not circular, convolution
    traces = np.fft.irfft(np.fft.rfft(charge, n) * np.fft.rfft(response, n), n)[:, :NUM_TB]
    return pads, np.clip(traces, 0.0, ADC_MAX)


@functools.cache
def _steps():
    """find_peaks' compiled steps, looked up once: the import statement inside
    `spyral_peaks` cost more per call than the steps themselves (measured)."""
    from scipy.signal._peak_finding_utils import (
        _local_maxima_1d,
        _peak_prominences,
        _peak_widths,
        _select_by_peak_distance,
    )

    return _local_maxima_1d, _select_by_peak_distance, _peak_prominences, _peak_widths


def spyral_peaks(
    trace: np.ndarray,
    *,
    separation: float,
    prominence: float,
    max_width: float,
    threshold: float,
    rng: np.random.Generator,
    rel_height: float = 0.95,
) -> list[tuple[float, float, float]]:
    """``(centroid, amplitude, integral)`` of each peak Spyral keeps on one pad's trace.

    The computation of ``GetTrace(trace, ...).find_peaks`` (spyral 1.x) with
    ``scipy.signal.find_peaks(distance, prominence, width=(1, max_width), rel_height)``,
    calling find_peaks' own compiled steps in its order: local maxima, distance,
    prominences, widths. What it leaves out is argument handling, ~3/4 of a call's time
    on a 512-bucket trace. Spyral draws the centroid's sub-bucket jitter for every peak
    scipy finds, before its threshold cut; so does this, so ``rng`` advances alike.
    """
    _local_maxima_1d, _select_by_peak_distance, _peak_prominences, _peak_widths = _steps()
    data = np.rint(trace).astype(np.int32)  # GetTrace widens the trace to int32
    x = data.astype(np.float64)  # as find_peaks' _arg_x_as_expected
    peaks, _, _ = _local_maxima_1d(x)
    peaks = peaks[_select_by_peak_distance(peaks, x[peaks], separation)]
    prominences, left_bases, right_bases = _peak_prominences(x, peaks, -1)  # wlen None
    keep = prominence <= prominences
    peaks, prominences = peaks[keep], prominences[keep]
    left_bases, right_bases = left_bases[keep], right_bases[keep]
    widths, _, left_ips, right_ips = _peak_widths(
        x, peaks, rel_height, prominences, left_bases, right_bases
    )
    keep = (1.0 <= widths) & (widths <= max_width)
    found = []
    # lists: Python scalars are cheaper than NumPy ones
    lefts, rights = left_ips[keep].tolist(), right_ips[keep].tolist()
    for p, left, right in zip(peaks[keep].tolist(), lefts, rights, strict=True):
        centroid = float(p) + rng.random() / 1000.0
        amplitude = float(data[p])
        # |trace| summed in int64 over [floor(left_ips), ceil(right_ips)), as Spyral does
        integral = np.abs(data[math.floor(left) : math.ceil(right)]).sum(dtype=np.int64)
        if amplitude > threshold:
            found.append((centroid, amplitude, float(integral)))
    return found


def gettrace_peaks(
    trace: np.ndarray, *, rng: np.random.Generator, **options: float
) -> list[tuple[float, float, float]]:
    """`spyral_peaks` (same keywords) by Spyral's own ``GetTrace``, slower: the reference
    it reproduces, for the tests and benchmarks/sim_overhead.py."""
    from spyral.core.config import GetParameters
    from spyral.core.hardware_id import HardwareID
    from spyral.trace.get_trace import GetTrace

    params = GetParameters(
        baseline_window_scale=20.0,  # unused: simulated traces have no baseline
        peak_separation=options["separation"],
        peak_prominence=options["prominence"],
        peak_max_width=options["max_width"],
        peak_threshold=options["threshold"],
    )
    peaks = GetTrace(np.rint(trace), HardwareID(pad_id=1), params, rng).get_peaks()
    return [(p.centroid, p.amplitude, float(p.integral)) for p in peaks]


def trace_points(
    raw: np.ndarray,
    labels: np.ndarray,
    response: np.ndarray,
    *,
    mode: str,
    threshold: float,
    spyral: dict[str, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Points of ``mode`` "peaks" or "pad" from the raw charge of one reaction.

    Returns
    -------
    rows, labels
        ``(N, 4)`` ``[pad, time bucket, amplitude, integral]`` and the nucleus label of
        each point (that of the charge nearest in time on the pad).
    """
    if len(raw) == 0:
        return np.empty((0, 4)), np.empty(0, dtype=np.int64)
    pads, traces = pad_traces(raw, response)
    delay = peak_delay(response)
    # each pad's charges in their original order (a stable sort): the nearest charge of a
    # peak is then found among the same rows, in the same order, as a mask would give
    raw_pads = raw[:, 0].astype(np.int64)
    order = np.argsort(raw_pads, kind="stable")
    ends = np.cumsum(np.bincount(np.searchsorted(pads, raw_pads[order])))
    starts = np.concatenate(([0], ends[:-1]))
    times, charge_labels = raw[order, 1], labels[order]
    options = dict(
        separation=float(spyral["peak_separation"]),
        prominence=float(spyral["peak_prominence"]),
        max_width=float(spyral["peak_max_width"]),
        threshold=float(threshold),
    )
    rows: list[tuple[float, float, float, float]] = []
    point_labels: list[int] = []
    # a trace that never crosses the threshold has no peak Spyral would keep: skip it
    # before looking for peaks (most pads at the edge of the diffusion cloud)
    loud = np.flatnonzero(traces.max(axis=1) > threshold)
    for k in loud.tolist():
        pad, trace = int(pads[k]), traces[k]
        if mode == "pad":
            top = int(np.argmax(trace))
            if trace[top] <= threshold:
                continue
            found = [(float(top), float(trace[top]), float(trace.sum()))]
        else:
            found = spyral_peaks(trace, **options, rng=rng)
            if not found or len(found) > SPYRAL_MAX_PEAKS:
                continue
        on_pad = slice(starts[k], ends[k])
        for centroid, amplitude, integral in found:
            tb = centroid - delay
            nearest = np.argmin(np.abs(times[on_pad] - tb))
            rows.append((pad, tb, amplitude, integral))
            point_labels.append(int(charge_labels[on_pad][nearest]))
    return np.array(rows, dtype=float).reshape(-1, 4), np.array(point_labels, dtype=np.int64)
