"""Measuring architectures on this machine: latency, hardware counters and saved device profiles."""
