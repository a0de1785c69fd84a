"""Benchmarks: scripts that print figures (`python -m benchmarks.NAME`), never tests."""
