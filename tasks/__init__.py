"""Pipeline stages. Each module is one stage: pure functions plus thin Prefect task wrappers.

I/O happens only in `fetch` (FRED or the demo source), `storage` and `model_store` (the storage block).
"""
