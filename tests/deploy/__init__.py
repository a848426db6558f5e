"""Tests of the containerized deployment: Dockerfile, .dockerignore, the lock file, prefect.yaml."""
