"""The pipeline, in layers (docs/architecture.md).

`core` (pure), `adapters` (FRED and storage I/O), `ops` (alerts, dashboard artifacts) and `stages`
(thin Prefect tasks). Imports point one way: stages -> ops -> adapters -> core.
"""
