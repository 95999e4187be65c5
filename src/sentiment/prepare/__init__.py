"""The prepare stage: Amazon review CSVs -> BlazingText train/validation/test files (Spark).

`prepare(...)` is called by `sentiment prepare` and by tests; it returns the manifest it wrote.
"""

from sentiment.prepare.job import Source, prepare, resolve_inputs

__all__ = ["Source", "prepare", "resolve_inputs"]
