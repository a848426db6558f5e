"""Test harness: the real local components the integration tests run against, and helpers around them.

`process` holds the one life cycle every component shares (`Service`: start, stop, context manager)
and the managed child process (`ManagedProcess`) that the Prefect server, its workers and Azurite
are; the FRED-compatible server and the SMTP sink are in-process threads with the same interface;
`docker_engine` holds a Docker engine and a registry (the user's, or private ones it starts).
Fixtures live in the conftest files; everything they and the tests import lives here.
"""
