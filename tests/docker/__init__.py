"""Container tests: the project's image on a real Docker engine, run through a Docker work pool."""
