"""Point formation: attpc-engine's charge per (pad, time bucket) -> the points of a cloud.

Three ways (``electronics.point_formation``), each what some real analysis chain makes:

``peaks`` (default)
    Spyral's PointcloudPhase: each pad's GET trace is the charge per bucket convolved
    with the GET response (attpc-engine's `get_response`, 4095 ADC saturation); peaks
    are found by Spyral's own `GetTrace.find_peaks` (scipy `find_peaks` with Spyral's
    separation, prominence, width and threshold); a trace with more than 5 peaks is
    dropped, as Spyral's `point_cloud_from_get` does. A pad gives one point per pulse.
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
    from spyral.core.config import GetParameters
    from spyral.core.hardware_id import HardwareID
    from spyral.trace.get_trace import GetTrace

    if len(raw) == 0:
        return np.empty((0, 4)), np.empty(0, dtype=np.int64)
    pads, traces = pad_traces(raw, response)
    delay = peak_delay(response)
    raw_pads = raw[:, 0].astype(np.int64)
    params = GetParameters(
        baseline_window_scale=float(spyral["baseline_window_scale"]),
        peak_separation=float(spyral["peak_separation"]),
        peak_prominence=float(spyral["peak_prominence"]),
        peak_max_width=float(spyral["peak_max_width"]),
        peak_threshold=float(threshold),
    )
    rows: list[tuple[float, float, float, float]] = []
    point_labels: list[int] = []
    for pad, trace in zip(pads.tolist(), traces, strict=True):
        if mode == "pad":
            top = int(np.argmax(trace))
            if trace[top] <= threshold:
                continue
            found = [(float(top), float(trace[top]), float(trace.sum()))]
        else:
            get = GetTrace(np.rint(trace), HardwareID(pad_id=pad), params, rng)
            peaks = get.get_peaks()
            if not peaks or len(peaks) > SPYRAL_MAX_PEAKS:
                continue
            found = [(p.centroid, p.amplitude, float(p.integral)) for p in peaks]
        on_pad = raw_pads == pad
        for centroid, amplitude, integral in found:
            tb = centroid - delay
            nearest = np.argmin(np.abs(raw[on_pad, 1] - tb))
            rows.append((pad, tb, amplitude, integral))
            point_labels.append(int(labels[on_pad][nearest]))
    return np.array(rows, dtype=float).reshape(-1, 4), np.array(point_labels, dtype=np.int64)
