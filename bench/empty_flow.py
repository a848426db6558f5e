"""An empty flow, deployed and started as a worker starts the daily flow: the cost of Prefect itself.

The benchmark runs a flow run of it with the worker's command (`prefect flow-run execute <id>`),
exactly as it runs the daily flow's. What it takes from process start to Completed, and its peak
RSS, is what any flow pays under that command before doing any work of its own: the floor under
the daily run's figures.
"""

from __future__ import annotations

from prefect import flow


@flow(name="bench-empty-flow", log_prints=False)
def empty_flow() -> None:
    """Does nothing: its flow run is Prefect's own cost."""
