"""`.ci/provision` (run by .ci/run): Debian packages installed only when their binary is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "provision"
BINARIES = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "debootstrap": "debootstrap",
    "chromium": "chromium",
}


def _stub(folder: Path, name: str, body: str = "exit 0") -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _provision(
    tmp_path: Path, present: list[str], *, uid: int = 0
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with only `present` (and stubs of id and apt-get) on PATH; apt-get's calls."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "apt-get.calls"
    _stub(stubs, "apt-get", f'echo "$*" >> {calls}')
    _stub(stubs, "id", f"echo {uid}")
    for name in present:
        _stub(stubs, name)
    bash = shutil.which("bash")
    assert bash is not None
    proc = subprocess.run(
        [bash, str(SCRIPT)], env={"PATH": str(stubs), "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=30
    )
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_nothing_is_installed_and_apt_is_not_updated_when_all_binaries_exist(tmp_path: Path) -> None:
    proc, calls = _provision(tmp_path, list(BINARIES))
    assert proc.returncode == 0, proc.stderr
    assert calls == []


def test_a_fresh_machine_gets_all_four_packages_after_one_update(tmp_path: Path) -> None:
    proc, calls = _provision(tmp_path, [])
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        "update -qq",
        "install -y -qq --no-install-recommends docker.io docker-registry debootstrap chromium",
    ]


@pytest.mark.parametrize("absent", list(BINARIES))
def test_only_the_missing_package_is_installed(tmp_path: Path, absent: str) -> None:
    proc, calls = _provision(tmp_path, [b for b in BINARIES if b != absent])
    assert proc.returncode == 0, proc.stderr
    assert calls == ["update -qq", f"install -y -qq --no-install-recommends {BINARIES[absent]}"]


def test_without_root_it_names_the_packages_and_fails(tmp_path: Path) -> None:
    proc, calls = _provision(tmp_path, ["dockerd", "chromium"], uid=1000)
    assert proc.returncode == 1
    assert "docker-registry debootstrap" in proc.stderr
    assert calls == []
