"""Thin Prefect stages.

Each `@task` calls one or two functions of the core or an adapter, and adds what Prefect gives
(retries of transient I/O failures, logging, a name in the UI).
"""
