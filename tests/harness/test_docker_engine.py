"""The private dockerd's names (tests/harness/docker_engine.py), without starting it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness.docker_engine import containerd_namespace

# containerd's rule for a namespace identifier (its error message quotes it).
CONTAINERD_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$")


@pytest.mark.parametrize("name", ["mfd-_nphmfuo", "mfd-ab__cd", "mfd-abcd_", "mfd-Q1w2e3r4"])
def test_the_containerd_namespace_is_valid_whatever_mkdtemp_drew(name: str) -> None:
    namespace = containerd_namespace(Path("/tmp") / name)
    assert CONTAINERD_IDENTIFIER.fullmatch(namespace), namespace
    assert CONTAINERD_IDENTIFIER.fullmatch(namespace + "-plugins")
