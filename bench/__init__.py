"""Benchmark of the worker on PostgreSQL: delete, anonymise and the idle tick, as ratios
against raw statements and a per-row loop measured in the same run on the same data.

Not a test: it asserts nothing about time (it prints each figure next to issue 11's goal).
It does check after every variant that exactly the expired rows changed and every other
row is untouched, because a fast wrong answer is worth nothing. Run it from the repository
root with `make bench` or `python -m bench --help`; see bench/README.md.
"""
