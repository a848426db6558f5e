"""Measured figures of the container path: image size, build times, a daily run in its container.

One command (`make bench-docker`)::

    python -m bench.docker [--out bench/results] [--keep-engine-cache]

What it does:

1. Starts a Docker engine and a local registry with the test harness (tests/harness/docker_engine.py:
   DOCKER_HOST or the default socket if an engine answers there, else a private dockerd; needs root
   and Debian's docker.io, docker-registry and debootstrap then) and gets the stand-in base image
   (from the harness's cache, or built from Debian packages: no Docker Hub on the test machines).
2. Clones the repository's committed HEAD into a temporary folder (so the figures belong to a commit).
3. **Cold build** of the `training` target: prefect-docker's `build_docker_image` step, called as
   prefect.yaml's build step calls it (Dockerfile, linux/amd64, pull: false, host network, the same
   build args), with `nocache=True`: every layer is built, every wheel downloaded (the Dockerfile
   keeps no pip cache). Then the `daily` target with the layer cache: it shares the base and the
   daily dependency layers with the training image, so only its project layer is built.
4. **Image sizes**: what `docker image inspect` reports (uncompressed, base included) for both, and
   the daily image's size over the training image's (target: <= 0.4).
5. **Rebuild after a code-only change**: a comment appended to tasks/core/settings.py in the clone,
   committed, the training target built again with the layer cache: both dependency layers
   (`pip install -r requirements-daily.lock`, `... requirements-training.lock`) must come from the
   cache (`dependency_layer_reused`).
6. **Daily flow in a container**: a `prefect server`, a `docker` work pool and a Docker worker;
   `prefect --no-prompt deploy` of both Docker deployments from the clone (its build is all cache
   hits; the image is pushed to the registry); `train-model-docker` with a small model on the demo
   data, then `daily-forecast-docker`, both writing to a named volume (storage_block=null,
   fred_block=null: no Azure or FRED needed). Reported: from the daily container's start
   (`State.StartedAt`) to the run's Completed state, and from the run's creation to Completed.

Prints a table and writes the figures as JSON to `--out` (git-ignored bench/results/). Timings are
wall-clock on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULT_FORMAT = "market-forecast-bench-docker/1"
IMAGE_REPOSITORY = "market-forecast"
AS_OF = "2026-11-20"
TRAIN_SETTINGS = {"history_start": "2023-01-01", "epochs": 2, "lstm_units": 8, "champion_gate": {"max_rel_mae": 100}}
VOLUME = "market-forecast-bench-data"
DEPENDENCY_STEPS = ("-r requirements-daily.lock", "-r requirements-training.lock")
DAILY_SIZE_RATIO_MAX = 0.4


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _build(
    workdir: Path, image: str, tag: str, base: str, log: Path, *, target: str, nocache: bool
) -> tuple[float, str]:
    """prefect.yaml's build step (prefect-docker's build_docker_image) of `target` in `workdir`; seconds, output."""
    from prefect_docker.deployments.steps import build_docker_image

    began = time.monotonic()
    with open(log, "a") as out, contextlib.redirect_stdout(out), contextlib.chdir(workdir):
        out.write(f"--- build {image}:{tag} nocache={nocache}\n")
        build_docker_image(
            image_name=image,
            tag=tag,
            dockerfile="Dockerfile",
            platform="linux/amd64",
            pull=False,
            network_mode="host",
            nocache=nocache,
            target=target,
            buildargs={"BASE_IMAGE": base, "GIT_SHA": tag, "SOURCE_URL": ""},
        )
    seconds = time.monotonic() - began
    text = log.read_text(errors="replace")
    return seconds, text[text.rindex(f"--- build {image}:{tag}") :]


def _dependency_layers_cached(build_output: str) -> bool:
    """True when the classic builder reused the cache for every `pip install -r <lock>` step."""
    steps = re.split(r"\nStep \d+/\d+ : ", build_output)
    found = {
        dependency: "Using cache" in step
        for step in steps
        for dependency in DEPENDENCY_STEPS
        if step.startswith("RUN") and dependency in step.splitlines()[0]
    }
    if set(found) != set(DEPENDENCY_STEPS):
        raise RuntimeError(f"the build output has no step for {sorted(set(DEPENDENCY_STEPS) - set(found))}")
    return all(found.values())


def _timestamp(value: str) -> float:
    """Seconds since the epoch of Docker's RFC 3339 time with nanoseconds."""
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", value).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


def _daily_in_container(engine: Any, clone: Path, base: str, work: Path) -> dict[str, float]:
    """Deploy from the clone, train, then time the daily run in its container."""
    from tests.deploy.deployments import DOCKER_POOL
    from tests.harness.prefect_server import PrefectServer

    server = PrefectServer(work / "prefect")
    server.start()
    try:
        server.create_work_pool(DOCKER_POOL, type="docker")
        env = server.env(
            MARKET_FORECAST_IMAGE=f"{engine.registry}/{IMAGE_REPOSITORY}",
            MARKET_FORECAST_BASE_IMAGE=base,
            **engine.env(),
        )
        with open(work / "deploy.log", "w") as log:
            subprocess.run(
                [
                    server.prefect_executable, "--no-prompt", "deploy",
                    "--name", "daily-forecast-docker", "--name", "train-model-docker",
                ],
                cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=1800,
            )  # fmt: skip
        server.start_worker(DOCKER_POOL, cwd=work, extra_env=engine.env(), ready_timeout=90)
        job = [
            "--job-variable",
            f'volumes=["{VOLUME}:/opt/market-forecast/data"]',
            "--job-variable",
            'network_mode="host"',
        ]
        common = ["-p", "storage_block=null", "-p", "fred_block=null", "-p", f"as_of={AS_OF}", *job, "--watch"]
        train = server.cli(
            "deployment",
            "run",
            "train-model/train-model-docker",
            "-p",
            f"settings={json.dumps(TRAIN_SETTINGS)}",
            *common,
            timeout=900,
            check=False,
        )
        if train.returncode != 0:
            raise RuntimeError(f"training run failed:\n{train.stdout[-3000:]}\n{train.stderr[-3000:]}")
        daily = server.cli(
            "deployment", "run", "daily-forecast/daily-forecast-docker", *common, timeout=900, check=False
        )
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", daily.stdout)
        if daily.returncode != 0 or not found:
            raise RuntimeError(f"daily run failed:\n{daily.stdout[-3000:]}\n{daily.stderr[-3000:]}")
        with server.client() as client:
            flow_run = client.read_flow_run(found.group(1))
        with engine.session() as docker:
            (container,) = docker.containers.list(all=True, filters={"label": f"io.prefect.flow-run-id={flow_run.id}"})
            started = _timestamp(container.attrs["State"]["StartedAt"])
        completed = flow_run.state.timestamp.timestamp()
        return {
            "daily_container_start_to_completed_s": round(completed - started, 1),
            "daily_created_to_completed_s": round(completed - flow_run.created.timestamp(), 1),
        }
    finally:
        server.stop()
        with contextlib.suppress(Exception), engine.session() as docker:
            for container in docker.containers.list(all=True, filters={"label": "io.prefect.flow-run-id"}):
                container.remove(force=True)
            docker.volumes.get(VOLUME).remove(force=True)


def run(out_dir: Path) -> dict[str, Any]:
    """Measure; returns the result written to `out_dir`."""
    from tests.harness.docker_engine import DockerEngine, ensure_base_image

    began = datetime.now(UTC)
    with DockerEngine() as engine, tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        os.environ.update(engine.env())  # prefect-docker's build step reads DOCKER_HOST
        work = Path(tmp)
        log = work / "build.log"
        base = ensure_base_image(engine)
        clone = work / "src"
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(clone)], check=True)
        sha = _git("rev-parse", "--short=12", "HEAD", cwd=clone)
        image = f"{engine.registry}/{IMAGE_REPOSITORY}"

        cold_seconds, _ = _build(clone, image, f"{sha}-training", base, log, target="training", nocache=True)
        daily_seconds, _ = _build(clone, image, f"{sha}-daily", base, log, target="daily", nocache=False)
        with engine.session() as client:
            sizes = {t: client.images.get(f"{image}:{sha}-{t}").attrs["Size"] for t in ("daily", "training")}

        with open(clone / "tasks" / "core" / "settings.py", "a") as code:
            code.write("\n# bench.docker: a code-only change\n")
        _git(
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-q",
            "-am",
            "code-only change",
            cwd=clone,
        )
        changed = _git("rev-parse", "--short=12", "HEAD", cwd=clone)
        rebuild_seconds, output = _build(
            clone, image, f"{changed}-training", base, log, target="training", nocache=False
        )

        ratio = sizes["daily"] / sizes["training"]
        figures = {
            "training_image_size_mb": round(sizes["training"] / 1e6),
            "daily_image_size_mb": round(sizes["daily"] / 1e6),
            "daily_over_training_size": round(ratio, 3),
            "daily_size_target": f"<= {DAILY_SIZE_RATIO_MAX}: {'PASS' if ratio <= DAILY_SIZE_RATIO_MAX else 'MISS'}",
            "cold_build_s": round(cold_seconds, 1),
            "daily_build_after_training_s": round(daily_seconds, 1),
            "rebuild_after_code_change_s": round(rebuild_seconds, 1),
            "dependency_layer_reused": _dependency_layers_cached(output),
            **_daily_in_container(engine, clone, base, work),
        }
        engine_kind = "own dockerd" if engine.own_daemon else "existing engine"
    result = {
        "format": RESULT_FORMAT,
        "started_utc": began.isoformat(timespec="seconds"),
        "commit": sha,
        "engine": engine_kind,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "figures": figures,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"docker-{began.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    result["path"] = str(path)
    return result


LABELS = {
    "training_image_size_mb": "training image size (MB, uncompressed, base included)",
    "daily_image_size_mb": "daily image size (MB, uncompressed, base included)",
    "daily_over_training_size": "daily image size / training image size",
    "daily_size_target": "target: daily image <= 0.4x the training image",
    "cold_build_s": "cold build of the training image (s, no layer cache)",
    "daily_build_after_training_s": "daily image build after it (s, shared layers cached)",
    "rebuild_after_code_change_s": "rebuild after a code-only change (s)",
    "dependency_layer_reused": "dependency layers reused on rebuild",
    "daily_container_start_to_completed_s": "daily flow: container start -> Completed (s)",
    "daily_created_to_completed_s": "daily flow: run created -> Completed (s, pull included)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.docker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="folder of the JSON result")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    result = run(args.out)
    print(f"market-forecast images, commit {result['commit']}, {result['engine']}, {result['machine']['cpus']} CPUs")
    for key, value in result["figures"].items():
        print(f"  {LABELS[key]:<58} {value}")
    print(f"written to {result['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
