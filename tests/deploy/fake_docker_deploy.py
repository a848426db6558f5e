"""Run the real `prefect` CLI with prefect-docker's image build and push replaced by recorders.

There is no Docker engine on the test machines. Everything else `prefect deploy` does for the
Docker deployments still runs for real: prefect.yaml is read, the `run_shell_script` steps run,
`{{ $ENV }}` / `{{ step-id.key }}` templates are rendered, the work pool's job variables are
checked and the deployments are registered. The two Docker calls are replaced by functions that
check their arguments against the real signatures (the step's and docker-py's `APIClient.build`,
which receives the extra keyword arguments), append them to a JSON file and return what the real
steps return.

Usage: python -m tests.deploy.fake_docker_deploy RECORD.json <prefect CLI arguments...>
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

import docker.api.build
import prefect_docker.deployments.steps as docker_steps

FAKE_IMAGE_ID = "sha256:" + "0" * 64


def _recorder(record: Path) -> tuple[Any, Any]:
    real_build = docker_steps.build_docker_image
    real_push = docker_steps.push_docker_image
    docker_build_signature = inspect.signature(docker.api.build.BuildApiMixin.build)
    build_parameters = set(inspect.signature(real_build).parameters) - {"build_kwargs"}

    def save(step: str, kwargs: dict[str, Any]) -> None:
        calls = json.loads(record.read_text()) if record.exists() else []
        calls.append({"step": step, "cwd": os.getcwd(), "kwargs": kwargs})
        record.write_text(json.dumps(calls, indent=2))

    def build_docker_image(*args: Any, **kwargs: Any) -> dict[str, Any]:
        inspect.signature(real_build).bind(*args, **kwargs)  # TypeError on a wrong argument
        extra = {k: v for k, v in kwargs.items() if k not in build_parameters}
        # What prefect-docker (build_backend docker-py) hands to docker-py.
        docker_build_signature.bind(
            None, path=os.getcwd(), dockerfile=kwargs.get("dockerfile", "Dockerfile"), pull=True, decode=True, labels={}, **extra
        )
        save("build_docker_image", kwargs)
        image_name, tag = kwargs["image_name"], kwargs["tag"]
        return {
            "image_name": image_name,
            "tag": tag,
            "image": f"{image_name}:{tag}",
            "image_id": FAKE_IMAGE_ID,
            "additional_tags": kwargs.get("additional_tags") or [],
        }

    def push_docker_image(*args: Any, **kwargs: Any) -> dict[str, Any]:
        inspect.signature(real_push).bind(*args, **kwargs)
        save("push_docker_image", kwargs)
        image_name, tag = kwargs["image_name"], kwargs["tag"]
        return {
            "image_name": image_name,
            "tag": tag,
            "image": f"{image_name}:{tag}",
            "additional_tags": kwargs.get("additional_tags") or [],
        }

    return build_docker_image, push_docker_image


def main() -> None:
    record = Path(sys.argv[1])
    docker_steps.build_docker_image, docker_steps.push_docker_image = _recorder(record)
    from prefect.cli import app

    sys.argv = ["prefect", *sys.argv[2:]]
    sys.exit(app())


if __name__ == "__main__":
    main()
