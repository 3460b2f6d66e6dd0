"""What the benchmarks share: summary figures of a list of timings."""

import statistics


def stats(values: list[float]) -> dict:
    """Median, 95th percentile and maximum, in the values' unit, rounded to microseconds of a millisecond."""
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "max": round(ordered[-1], 3),
    }
