"""The README documents exactly the columns the code writes (docs that match the code)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.core.contracts import (
    ChampionPointer,
    GroupModel,
    LatestPointer,
    ManifestFile,
    ModelCard,
    RunClaim,
    RunManifest,
)
from tasks.core.outputs import SCHEMAS

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


STORED_JSON_SECTIONS = {
    "**`manifest.json`**": RunManifest,
    "Each entry of `files`": ManifestFile,
    "Each entry of `model_groups`": GroupModel,
    "**`latest.json`**": LatestPointer,
    "**`runs/<folder>/claim.json`**": RunClaim,
    "**`models/champion.json`**": ChampionPointer,
    "**`models/<version>/model_card.json`**": ModelCard,
}


@pytest.mark.parametrize("heading", sorted(STORED_JSON_SECTIONS))
def test_readme_documents_every_field_of_the_stored_json(heading: str) -> None:
    model = STORED_JSON_SECTIONS[heading]
    stored = README.split("## Stored JSON", 1)[1].split("\n## ", 1)[0]
    section = stored.split(heading, 1)[1]
    table = section.split("| field | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = {
        cells[1].strip().strip("`"): cells[2].strip()
        for cells in (line.split("|") for line in table.splitlines())
        if len(cells) > 3 and cells[1].strip().startswith("`")
    }
    assert documented == {name: field.description for name, field in model.model_fields.items()}
