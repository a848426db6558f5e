"""The layers of docs/architecture.md hold: imports point one way, the core is pure, no circles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "tasks", "blocks")


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def import_circles(*packages: str) -> list[list[str]]:
    """Every circle of imports among the modules of `packages` found by a depth-first walk.

    Function-level imports count too: grimp reads every import statement of the source.
    """
    graph = grimp.build_graph(*packages)
    on_path: list[str] = []
    done: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        on_path.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported in on_path:
                circles.append([*on_path[on_path.index(imported) :], imported])
            elif imported not in done:
                visit(imported)
        on_path.pop()
        done.add(module)

    for module in sorted(graph.modules):
        if module not in done:
            visit(module)
    return circles


def test_no_module_imports_itself_through_a_circle() -> None:
    circles = import_circles(*PACKAGES)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_importing_the_core_loads_neither_prefect_nor_tensorflow_nor_matplotlib() -> None:
    core = sorted(p.stem for p in (REPO / "tasks" / "core").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import tasks.core.{name}\n" for name in core)
        + "heavy = {'prefect', 'tensorflow', 'fredapi', 'azure', 'blocks', 'matplotlib', 'PIL'}\n"
        + "loaded = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        + "print(','.join(loaded))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "", f"importing tasks.core loaded {proc.stdout.strip()}"
