"""A Docker engine and a local image registry for the container tests, plus a stand-in base image.

Usage (the `docker_engine` / `base_image` session fixtures in tests/docker/conftest.py do this):

    engine = DockerEngine().start()     # an engine the user has, else a private dockerd; + a registry
    engine.env()                        # {"DOCKER_HOST": "unix:///..."} for docker-py, prefect, workers
    engine.registry                     # "127.0.0.1:PORT", a `docker-registry serve` of its own
    base = ensure_base_image(engine)    # a stand-in for python:3.11-slim built from Debian packages
    engine.stop()                       # stops and removes everything start() and the tests made

The engine:
- `DOCKER_HOST`, if set and answering, else the default socket /var/run/docker.sock if it answers,
  is used as it is (`use_existing=True`, the default). It must run on this machine: containers
  use host networking to reach the tests' loopback services. On stop, the containers created from
  this harness's registry and the images tagged into it are removed; nothing else is touched (the
  stand-in base image stays there, for the next session).
- Otherwise a private `dockerd` (Debian's docker.io; needs root) is started with its own data
  root, exec root, pidfile, socket, config file and containerd namespaces under a temporary folder
  (/tmp/mfd-XXXX: short, because socket paths are limited to 108 bytes), without a bridge or
  iptables rules (`--bridge=none --iptables=false`): containers and builds use `network_mode:
  host`. `--host-gateway-ip=127.0.0.1` lets prefect-docker's `host.docker.internal:host-gateway`
  resolve. Two harnesses on one machine do not share anything. stop() stops the daemon (and so
  its containers), unmounts what it left mounted and deletes the folder.

The registry is always this harness's own: `docker-registry serve CONFIG` (Debian's
docker-registry, the CNCF distribution registry) on 127.0.0.1:PORT with its storage in the same
temporary folder; engines trust loopback registries without TLS. Its access log
(`registry_log()`) shows every manifest pulled.

The stand-in base (`ensure_base_image`): no public registry is reachable on the test machines,
so python:3.11-slim cannot be pulled. `debootstrap --variant=minbase bookworm` from the mirror the
host's apt uses (read at run time from /etc/apt/sources.list*; nothing is written into the repo),
with python3.11 and python3.11-venv, is imported with `docker import`; a small build on it makes
a venv the image's `python`/`pip` (Debian's own Python is externally managed, PEP 668) and copies
the host's CA bundle in with PIP_CERT pointing at it (TLS to the package index is intercepted on
these machines; pip in a container fails verification without it). The result is saved as a
tarball in a cache folder, keyed by a hash of the recipe and the CA bundle, and loaded from there
by later sessions (~10 s instead of ~1.5 min).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.harness.process import HOST, ManagedProcess, tail, tail_file

__all__ = [
    "BASE_PACKAGES",
    "BASE_REPOSITORY",
    "DockerEngine",
    "DockerUnavailable",
    "base_cache_dir",
    "ensure_base_image",
    "host_apt_mirror",
]

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

BASE_REPOSITORY = "market-forecast-test-base"
BASE_SUITE = "bookworm"
# debootstrap resolves the dependencies of --include only one level deep: python3-distutils
# (which provides python3.11-distutils, needed by python3.11-venv) must be named. passwd brings
# groupadd/useradd, which python:3.11-slim has and the project's Dockerfile uses.
BASE_PACKAGES = ("python3.11", "python3.11-venv", "python3-distutils", "passwd")
# Built on the imported root file system; copies the host CA bundle in as host-ca.crt.
BASE_DOCKERFILE = """\
FROM {rootfs}
COPY host-ca.crt /usr/local/share/market-forecast-tests/host-ca.crt
RUN python3.11 -m venv /opt/python
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PIP_CERT=/usr/local/share/market-forecast-tests/host-ca.crt \\
    LANG=C.UTF-8
CMD ["python3"]
"""

_FIX_ENGINE = (
    "The container tests need a Docker engine: set DOCKER_HOST to a running engine on this "
    "machine, or run them as root with Debian's docker.io installed (`apt-get install docker.io "
    "docker-registry debootstrap`; `bash .ci/run` does this) so that they start their own dockerd."
)


class DockerUnavailable(RuntimeError):
    """No engine could be used or started, or the registry or the base image could not be made."""


def _which(name: str) -> str | None:
    """`name` on PATH, or in the sbin folders a non-login root shell may leave out."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _client(base_url: str, timeout: float = 300) -> Any:
    import docker

    return docker.DockerClient(base_url=base_url, timeout=timeout, version="auto")


def _answers(base_url: str) -> bool:
    """True when an engine answers a ping at `base_url`."""
    if base_url.startswith("unix://") and not Path(base_url.removeprefix("unix://")).exists():
        return False
    try:
        client = _client(base_url, timeout=5)
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False
    finally:
        client.close()


_RUNNING: set[DockerEngine] = set()


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - safety net only
    for engine in list(_RUNNING):
        engine.stop()


class DockerEngine:
    """A Docker engine (the user's, or a private dockerd) and a private registry on 127.0.0.1.

    Args:
        use_existing: Use DOCKER_HOST or the default socket when an engine answers there.
        workdir: Parent folder of the harness's temporary folder (default /tmp).
    """

    def __init__(self, *, use_existing: bool = True, workdir: Path | None = None) -> None:
        self.use_existing = use_existing
        self._parent = Path(workdir) if workdir else None
        self.root: Path | None = None
        self.docker_host: str = ""
        self.own_daemon = False
        self.registry_port: int = 0
        self._dockerd: _Dockerd | None = None
        self._registry: _Registry | None = None
        self.start_seconds: float | None = None

    # -- addresses -----------------------------------------------------------------------
    @property
    def registry(self) -> str:
        """host:port of the registry, the prefix of image names pushed to it."""
        return f"{HOST}:{self.registry_port}"

    @property
    def dockerd_log(self) -> Path:
        assert self.root is not None
        return self.root / "dockerd.log"

    @property
    def registry_log_path(self) -> Path:
        assert self.root is not None
        return self.root / "registry.log"

    def env(self) -> dict[str, str]:
        """What a client process needs to use this engine (docker-py, prefect-docker, docker CLI)."""
        return {"DOCKER_HOST": self.docker_host}

    def client(self, timeout: float = 600) -> Any:
        """A docker-py DockerClient for this engine (close it after use)."""
        return _client(self.docker_host, timeout=timeout)

    @contextlib.contextmanager
    def session(self, timeout: float = 600) -> Iterator[Any]:
        """A docker-py DockerClient for the block, closed at its end."""
        client = self.client(timeout=timeout)
        try:
            yield client
        finally:
            client.close()

    def __repr__(self) -> str:
        kind = "own dockerd" if self.own_daemon else "existing engine"
        return f"<DockerEngine {self.docker_host or 'not started'} ({kind}), registry {self.registry}>"

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout: float = 60) -> DockerEngine:
        """Find or start the engine, then start the registry.

        Raises:
            DockerUnavailable: no engine answers and none can be started, or the registry does
                not start; the message says why and what to install.
        """
        began = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="mfd-", dir=self._parent or "/tmp"))
        _RUNNING.add(self)
        try:
            existing = self._existing_engine() if self.use_existing else None
            if existing:
                self.docker_host = existing
            else:
                self._start_dockerd(timeout)
            self._start_registry(timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _existing_engine(self) -> str | None:
        for candidate in (os.environ.get("DOCKER_HOST"), DEFAULT_SOCKET):
            if candidate and _answers(candidate):
                return candidate
        return None

    def _start_dockerd(self, timeout: float) -> None:
        assert self.root is not None
        dockerd = _which("dockerd")
        if dockerd is None:
            raise DockerUnavailable(f"no Docker engine answers and `dockerd` is not installed. {_FIX_ENGINE}")
        if os.geteuid() != 0:
            raise DockerUnavailable(f"no Docker engine answers, and starting dockerd needs root. {_FIX_ENGINE}")
        self._dockerd = _Dockerd(dockerd, self.root)
        self._dockerd.start(timeout=timeout)
        self.docker_host = self._dockerd.docker_host
        self.own_daemon = True

    def _start_registry(self, timeout: float) -> None:
        assert self.root is not None
        binary = _which("docker-registry")
        if binary is None:
            raise DockerUnavailable(
                "`docker-registry` is not installed (Debian package docker-registry); the container "
                "tests push the image to a registry of their own on 127.0.0.1."
            )
        self._registry = _Registry(binary, self.root)
        self._registry.start(timeout=timeout)
        self.registry_port = int(self._registry.port or 0)

    def registry_log(self, offset: int = 0) -> str:
        """The registry's log from byte `offset` (its access log lines included)."""
        try:
            with open(self.registry_log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except (OSError, AssertionError):
            return ""

    def registry_log_size(self) -> int:
        """The log's current size: pass it to registry_log() later to read what came since."""
        try:
            return self.registry_log_path.stat().st_size
        except OSError:
            return 0

    def manifest_pulls(self, repository: str, reference: str, *, since: int = 0) -> int:
        """How many times an engine resolved `repository:reference` here (a pull: HEAD or GET of
        the manifest by that tag, answered 200; the layers follow only when the engine lacks them)."""
        pattern = re.compile(
            rf'"(?:HEAD|GET) /v2/{re.escape(repository)}/manifests/{re.escape(reference)} HTTP/[\d.]+" 200'
        )
        return len(pattern.findall(self.registry_log(since)))

    def stop(self) -> None:
        """Stop what start() started and remove what the tests left. Idempotent."""
        if self._registry is not None:
            self._registry.stop()
            self._registry = None
        if self.own_daemon and self._dockerd is not None:
            self._dockerd.stop()  # dockerd stops its containers and containerd
            self._dockerd = None
        elif self.docker_host and not self.own_daemon:
            self._clean_existing_engine()
        if self.root is not None:
            _unmount_below(self.root)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        _RUNNING.discard(self)

    def _clean_existing_engine(self) -> None:
        """On a user's engine: remove the containers and images of this harness's registry."""
        prefix = f"{self.registry}/"
        with contextlib.suppress(Exception), self.session(timeout=120) as client:
            for container in client.containers.list(all=True):
                image = container.attrs.get("Config", {}).get("Image", "")
                if image.startswith(prefix):
                    container.remove(force=True)
            for image in client.images.list():
                for tag in image.tags:
                    if tag.startswith(prefix):
                        client.images.remove(tag, force=True)

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def containerd_namespace(root: Path) -> str:
    """containerd's namespace of the daemon in `root` (/tmp/mfd-XXXX): mkdtemp's random part may hold
    '_' anywhere, which containerd refuses at the edges or doubled, so only its letters and digits."""
    return "mf-" + re.sub(r"[^a-z0-9]", "", root.name.removeprefix("mfd-").lower())


class _Dockerd(ManagedProcess):
    """A private dockerd: own data root, exec root, pidfile, socket, config and containerd namespaces."""

    name = "dockerd"
    listens = False
    stop_grace = 60.0  # it stops its containers and its containerd first
    start_error = DockerUnavailable

    def __init__(self, binary: str, root: Path) -> None:
        super().__init__(root / "dockerd.log", cwd=root)
        self.binary, self.root = binary, root
        self.docker_host = f"unix://{root / 'docker.sock'}"

    def prepare(self) -> None:
        (self.root / "daemon.json").write_text("{}\n")  # never the machine's /etc/docker/daemon.json

    def command(self) -> list[str]:
        namespace = containerd_namespace(self.root)
        return [
            self.binary,
            "--config-file", str(self.root / "daemon.json"),
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "docker.pid"),
            "--host", self.docker_host,
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--host-gateway-ip=127.0.0.1",
            # Private even if the machine's containerd runs (dockerd then uses it, not its own).
            "--containerd-namespace", namespace,
            "--containerd-plugins-namespace", f"{namespace}-plugins",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}

    def probe(self) -> str | None:
        return None if _answers(self.docker_host) else "no answer to a ping yet"


class _Registry(ManagedProcess):
    """`docker-registry serve CONFIG` on 127.0.0.1:PORT, its storage and access log under `root`."""

    name = "docker-registry"
    stop_grace = 5.0
    start_error = DockerUnavailable

    def __init__(self, binary: str, root: Path) -> None:
        super().__init__(root / "registry.log", cwd=root)
        self.binary, self.root = binary, root

    def command(self) -> list[str]:
        # Written at each spawn: a retry after "address already in use" has another port.
        storage = self.root / "registry"
        storage.mkdir(exist_ok=True)
        (self.root / "registry.yml").write_text(
            json.dumps(  # YAML is a superset of JSON
                {
                    "version": 0.1,
                    "log": {"level": "info", "accesslog": {"disabled": False}},
                    "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
                    "http": {"addr": f"{HOST}:{self.port}"},
                },
                indent=2,
            )
        )
        return [self.binary, "serve", str(self.root / "registry.yml")]

    def probe(self) -> str | None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://{HOST}:{self.port}/v2/", timeout=2) as response:
                return None if response.status == 200 else f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"


def _unmount_below(root: Path) -> None:
    """Lazily unmount whatever is still mounted under `root` (overlay layers of a killed dockerd)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(root.resolve())
    points = [line.split()[1].replace("\\040", " ") for line in mounts if len(line.split()) > 1]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


# -- the stand-in base image ---------------------------------------------------------------------
def host_apt_mirror(root: Path = Path("/")) -> str:
    """The URI of the Debian archive the host's apt uses for a release's `main` component.

    Reads /etc/apt/sources.list and /etc/apt/sources.list.d/*.list / *.sources (deb822); takes
    the first `deb` entry of a plain release suite (not -security, -updates, -backports) with main.

    Raises:
        DockerUnavailable: no such entry exists.
    """
    entries: list[tuple[list[str], list[str], list[str]]] = []  # (uris, suites, components)
    apt = root / "etc" / "apt"
    one_line = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                fields = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()  # drop [options]
                if len(fields) >= 4 and fields[0] == "deb":
                    entries.append(([fields[1]], [fields[2]], fields[3:]))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            for stanza in re.split(r"\n\s*\n", path.read_text()):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
                    entries.append(
                        (
                            fields.get("uris", "").split(),
                            fields.get("suites", "").split(),
                            fields.get("components", "").split(),
                        )
                    )
    for uris, suites, components in entries:
        if uris and "main" in components and any("-" not in suite and "/" not in suite for suite in suites):
            return uris[0]
    raise DockerUnavailable(
        "the host's apt has no `deb` source for a Debian release's main component "
        "(/etc/apt/sources.list, /etc/apt/sources.list.d/); debootstrap needs one for the stand-in base image"
    )


def _apt_http_proxy() -> str | None:
    """Acquire::http::Proxy of the host's apt, if any (debootstrap honours http_proxy)."""
    if shutil.which("apt-config") is None:
        return None
    proc = subprocess.run(
        ["apt-config", "shell", "PROXY", "Acquire::http::Proxy"], capture_output=True, text=True, check=False
    )
    found = re.search(r"PROXY='([^']+)'", proc.stdout)
    return found.group(1) if found else None


def base_cache_dir() -> Path:
    """Where stand-in base tarballs are kept between sessions."""
    configured = os.environ.get("MARKET_FORECAST_TEST_CACHE")
    if configured:
        return Path(configured) / "docker-base"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "market-forecast-tests" / "docker-base"


def _recipe_key() -> str:
    """A hash of everything the stand-in base is made of (recipe, host CA bundle)."""
    digest = hashlib.sha256()
    digest.update(f"{BASE_SUITE}\n{' '.join(BASE_PACKAGES)}\nminbase\n{BASE_DOCKERFILE}".encode())
    digest.update(HOST_CA_BUNDLE.read_bytes())
    return digest.hexdigest()[:16]


def ensure_base_image(engine: DockerEngine, *, cache_dir: Path | None = None, log: Path | None = None) -> str:
    """The stand-in for python:3.11-slim on `engine`: found, loaded from the cache, or built.

    Args:
        engine: A started DockerEngine.
        cache_dir: Folder of cached tarballs (default: base_cache_dir()); None-like "" disables.
        log: File the debootstrap output is appended to (default: in the engine's folder).

    Returns:
        The image reference, `market-forecast-test-base:<recipe hash>` (local only, never pushed
        on its own).

    Raises:
        DockerUnavailable: debootstrap is missing, the host's mirror is unknown, or a step failed.
    """
    import docker.errors

    if not HOST_CA_BUNDLE.is_file():
        raise DockerUnavailable(f"the host CA bundle {HOST_CA_BUNDLE} is missing (Debian package ca-certificates)")
    key = _recipe_key()
    reference = f"{BASE_REPOSITORY}:{key}"
    cache = base_cache_dir() if cache_dir is None else cache_dir
    tarball = Path(cache) / f"{key}.tar" if cache else None
    with engine.session() as client:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(reference)
            return reference
        if tarball is not None and tarball.is_file():
            try:
                with open(tarball, "rb") as data:
                    client.images.load(data)
                client.images.get(reference)
                return reference
            except Exception:  # noqa: BLE001 - a damaged cache is rebuilt
                tarball.unlink(missing_ok=True)
        _build_base_image(engine, client, reference, log=log)
        if tarball is not None:
            _save_to_cache(client, reference, tarball)
    return reference


def _build_base_image(engine: DockerEngine, client: Any, reference: str, *, log: Path | None) -> None:
    assert engine.root is not None
    debootstrap = _which("debootstrap")
    if debootstrap is None:
        raise DockerUnavailable(
            "`debootstrap` is not installed (Debian package debootstrap): it builds the stand-in base image"
        )
    if os.geteuid() != 0:
        raise DockerUnavailable("debootstrap needs root to build the stand-in base image")
    work = Path(tempfile.mkdtemp(prefix="base-", dir=engine.root))
    rootfs = work / "rootfs"
    log_path = log or (engine.root / "debootstrap.log")
    env = dict(os.environ)
    proxy = _apt_http_proxy()
    if proxy:
        env.setdefault("http_proxy", proxy)
    try:
        cmd = [
            debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE, str(rootfs), host_apt_mirror(),
        ]  # fmt: skip
        with open(log_path, "ab") as out:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=1200
            )
        if proc.returncode != 0:
            detail = tail_file(rootfs / "debootstrap" / "debootstrap.log", 20)
            raise DockerUnavailable(
                f"debootstrap failed with exit code {proc.returncode}.\n--- {log_path} (tail) ---\n"
                f"{tail_file(log_path, 20)}\n--- debootstrap.log (tail) ---\n{detail}"
            )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        archive = work / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], check=True, capture_output=True
        )
        shutil.rmtree(rootfs)
        rootfs_reference = f"{BASE_REPOSITORY}-rootfs:{reference.rpartition(':')[2]}"
        repository, _, tag = rootfs_reference.rpartition(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag)
        archive.unlink()
        _build(
            client,
            {
                "Dockerfile": BASE_DOCKERFILE.format(rootfs=rootfs_reference).encode(),
                "host-ca.crt": HOST_CA_BUNDLE.read_bytes(),
            },
            reference,
        )
        client.images.remove(rootfs_reference)  # untag only: the base's layers stay
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build(client: Any, files: dict[str, bytes], tag: str) -> None:
    """docker build of an in-memory context (no network needed), raising with the build's output."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as context:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            context.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    output: list[str] = []
    for event in client.api.build(
        fileobj=buffer, custom_context=True, tag=tag, network_mode="none", pull=False, rm=True, decode=True
    ):
        if "stream" in event:
            output.append(event["stream"])
        if "error" in event:
            raise DockerUnavailable(f"building {tag} failed: {event['error']}\n{tail(''.join(output))}")


def _save_to_cache(client: Any, reference: str, tarball: Path) -> None:
    """`docker save` the base into the cache (atomically), dropping tarballs of other recipes."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".partial-{os.getpid()}")
    try:
        with open(partial, "wb") as out:
            for chunk in client.images.get(reference).save(named=True):
                out.write(chunk)
        partial.replace(tarball)
    except OSError:
        partial.unlink(missing_ok=True)
        return  # a cache that cannot be written only costs time
    for other in tarball.parent.glob("*.tar"):
        if other != tarball:
            other.unlink(missing_ok=True)
