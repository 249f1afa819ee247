"""Benchmarks. Run them all with `make bench`, or one with `python -m bench.<name>`."""
