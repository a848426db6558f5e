"""The README documents exactly the columns the code writes (docs that match the code)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.outputs import SCHEMAS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_readme_documents_every_column_of(name: str) -> None:
    section = README.split(f"**`{name}`**", 1)[1].split("\n\n**", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = [c for cell in first_cells for c in re.findall(r"`([a-z_0-9]+)`", cell)]
    assert sorted(documented) == sorted(SCHEMAS[name])


def test_readme_quick_start_has_exactly_the_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick_start.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]

