"""Timing helpers, kept where bench/ and older scripts import them from; they live in :mod:`verify.timing`."""

from verify.timing import interleaved_samples, median_times

__all__ = ["interleaved_samples", "median_times"]
