"""The Python environments the designs' children run in: the packages each is deployed with.

The benchmark's own venv (`.venv`, the `[test]` extra) holds much that neither design deploys:
statsforecast, for the peers, pulls in pyarrow, and pandas imports pyarrow whenever it is installed,
which adds about 45 MB to the daily flow's process. A run measured there would not be the one a
worker runs. So the designs' children run in venvs made from the image locks:

- ``daily``: requirements-daily.lock and the project without its dependencies, as the daily image
  (Dockerfile, target ``daily``): no TensorFlow, no pyarrow. The project's daily flow as a worker
  starts it, the engine alone and Prefect's floor run here.
- ``training``: requirements-daily.lock and requirements-training.lock (TensorFlow, Keras, SciPy,
  Dask) and the project, as the training image, plus scikit-learn (the seed design's MinMaxScaler,
  pinned by requirements.lock; the project never imports it). The seed design (training and its
  daily script) and the project's training child run here. The seed's code comes from the
  repository (`PYTHONPATH`).

The peers child (statsforecast) and the child that creates the daily flow runs are not measured
against anything and run in this interpreter.

Each is made once under ``.venv-bench/<name>`` (git-ignored) with this interpreter's ``venv`` and
pip (from pip's cache after the first time), and made again when a lock, pyproject.toml or the
interpreter changes (the stamp file holds a hash of them). A lock file serialises two benchmarks
making the same one. pip's output goes to ``.venv-bench/<name>.log``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from bench.errors import BenchError
from bench.processes import REPO_ROOT

ENVIRONMENTS_DIR = REPO_ROOT / ".venv-bench"
STAMP_FILE = ".bench-stamp"
PIP_TIMEOUT_SECONDS = 1800.0
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


@dataclass(frozen=True)
class Recipe:
    """What one environment holds.

    Attributes:
        locks: Lock files (repository root) installed as they are, ``--no-deps``, like the Dockerfile.
        constrained: Further requirements, resolved with requirements.lock as constraints.
        project: Whether the project itself is installed (editable, ``--no-deps``), as in the images.
    """

    locks: tuple[str, ...]
    constrained: tuple[str, ...] = ()
    project: bool = False


RECIPES: Mapping[str, Recipe] = {
    "daily": Recipe(locks=("requirements-daily.lock",), project=True),
    "training": Recipe(
        locks=("requirements-daily.lock", "requirements-training.lock"), constrained=("scikit-learn",), project=True
    ),
}


def python_of(folder: Path) -> Path:
    """The interpreter of the venv in `folder`."""
    return folder / "bin" / "python"


def stamp(name: str, recipe: Recipe) -> str:
    """A hash of what makes the environment: the recipe, the files it installs from, the interpreter."""
    digest = hashlib.sha256(json.dumps({"name": name, **asdict(recipe), "python": sys.version}).encode())
    files = [*recipe.locks]
    files += ["requirements.lock"] if recipe.constrained else []
    files += ["pyproject.toml"] if recipe.project else []
    for file in files:
        digest.update((REPO_ROOT / file).read_bytes())
    return digest.hexdigest()


def ensure_environment(name: str, *, say: Callable[[str], None], root: Path = ENVIRONMENTS_DIR) -> Path:
    """The interpreter of environment `name`, made (or made again) first if its stamp is not current.

    Raises:
        BenchError: unknown name, or pip failed (with the end of its log).
    """
    recipe = RECIPES.get(name)
    if recipe is None:
        raise BenchError(f"no benchmark environment {name!r}; known: {', '.join(sorted(RECIPES))}")
    root.mkdir(parents=True, exist_ok=True)
    folder, expected = root / name, stamp(name, recipe)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_path = folder / STAMP_FILE
        if stamp_path.is_file() and stamp_path.read_text() == expected and python_of(folder).exists():
            return python_of(folder)
        log_path = root / f"{name}.log"
        say(f"making the {name!r} environment in {folder} (pip, log: {log_path}; once per lock change)")
        shutil.rmtree(folder, ignore_errors=True)
        with open(log_path, "w") as log:
            for command in _commands(folder, recipe):
                _run(command, log=log)
        stamp_path.write_text(expected)
    return python_of(folder)


def ensure_environments(names: Iterable[str], *, say: Callable[[str], None]) -> dict[str, str]:
    """Environment name -> its interpreter, for each of `names` (each made if needed)."""
    return {name: str(ensure_environment(name, say=say)) for name in sorted(set(names))}


def _commands(folder: Path, recipe: Recipe) -> list[list[str]]:
    python = str(python_of(folder))
    locks = [arg for lock in recipe.locks for arg in ("-r", str(REPO_ROOT / lock))]
    commands = [
        [sys.executable, "-m", "venv", str(folder)],
        [python, *PIP, "install", "--no-deps", *locks],
    ]
    if recipe.constrained:
        constraints = ["-c", str(REPO_ROOT / "requirements.lock")]
        commands.append([python, *PIP, "install", *constraints, *recipe.constrained])
    if recipe.project:
        commands.append([python, *PIP, "install", "--no-deps", "-e", str(REPO_ROOT)])
    commands.append([python, *PIP, "check"])  # the set is complete for this interpreter
    return commands


def _run(command: list[str], *, log: IO[str]) -> None:
    print(f"$ {' '.join(command)}", file=log, flush=True)
    try:
        subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=PIP_TIMEOUT_SECONDS, cwd=REPO_ROOT
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log_path = Path(log.name)
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise BenchError(f"making a benchmark environment failed ({exc}); end of {log_path}:\n{tail}") from None
