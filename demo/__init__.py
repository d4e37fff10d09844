"""Reference schemas and synthetic data for demonstrating and testing the worker.

`demo.schemas` holds the tables each product's mapping (config/products/*.yaml) expects;
`demo.generator` fills them with deterministic, obviously fake Dutch records. Nothing here
runs at import time.
"""
