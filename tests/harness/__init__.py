"""Harnesses of real components the integration tests start and stop (a Docker engine, ...)."""
