"""Delete-throughput benchmark of the worker, as ratios against baselines from the same run.

Not a test: it asserts nothing about time. It does check that every variant removed
exactly the rows it should, because a fast wrong answer is worth nothing. Run it from the
repository root with `make bench` or `python -m bench --help`; see bench/README.md.
"""
