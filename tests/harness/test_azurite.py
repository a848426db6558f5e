"""Tests of tests/harness/azurite.py against a real Azurite on 127.0.0.1.

Azurite is started inside each test body (not in a fixture) so that a missing
node/npm or a failed start makes the tests FAIL rather than error or skip.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import ContainerClient
from prefect_azure import AzureBlobStorageCredentials
from prefect_azure.blob_storage import AzureBlobStorageContainer

from tests.harness.azurite import Azurite, AzuriteUnavailable


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """One Azurite for the read-mostly tests; each test calls ``start()`` itself."""
    azurite = Azurite(tmp_path_factory.mktemp("azurite"))
    yield azurite
    azurite.stop()


def _container_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def _prefect_container(azurite: Azurite, name: str) -> AzureBlobStorageContainer:
    credentials = AzureBlobStorageCredentials(connection_string=azurite.connection_string)
    return AzureBlobStorageContainer(container_name=name, credentials=credentials)


def test_blob_round_trip_with_azure_storage_blob(shared: Azurite) -> None:
    azurite = shared.start()
    assert azurite.blob_endpoint == f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
    name = _container_name()
    azurite.create_container(name)
    azurite.create_container(name)  # "already exists" is ignored

    with azurite.blob_service_client(retry_total=0) as client:
        blob = client.get_blob_client(name, "forecasts/SP500.csv")
        blob.upload_blob(b"date,value\n2024-01-02,4742.83\n")
        assert blob.download_blob().readall() == b"date,value\n2024-01-02,4742.83\n"


def test_prefect_container_write_read_and_list(shared: Azurite) -> None:
    azurite = shared.start()
    name = _container_name()
    azurite.create_container(name)
    container = _prefect_container(azurite, name)

    container.write_path("latest/SP500.csv", b"a,b\n1,2\n")
    container.write_path("latest/SP500.csv", b"a,b\n3,4\n")  # overwrite is allowed
    container.write_path("latest/DGS10.csv", b"x\n")

    assert container.read_path("latest/SP500.csv") == b"a,b\n3,4\n"
    assert sorted(container.list_blobs()) == ["latest/DGS10.csv", "latest/SP500.csv"]


def test_read_list_sas_lists_and_reads_but_cannot_write(shared: Azurite) -> None:
    azurite = shared.start()
    name = _container_name()
    azurite.create_container(name)
    with azurite.blob_service_client(retry_total=0) as client:
        client.get_blob_client(name, "SP500.csv").upload_blob(b"published")

    sas_url = azurite.container_sas_url(name)  # read + list
    assert sas_url.startswith(f"http://127.0.0.1:{azurite.port}/devstoreaccount1/{name}?")
    with ContainerClient.from_container_url(sas_url, retry_total=0) as reader:
        assert [b.name for b in reader.list_blobs()] == ["SP500.csv"]
        assert reader.download_blob("SP500.csv").readall() == b"published"
        with pytest.raises(HttpResponseError) as excinfo:
            reader.upload_blob("new.csv", b"nope")
    assert excinfo.value.status_code == 403
    assert excinfo.value.error_code == "AuthorizationPermissionMismatch"


def test_expired_sas_is_rejected_with_403(shared: Azurite) -> None:
    azurite = shared.start()
    name = _container_name()
    azurite.create_container(name)

    expired = azurite.container_sas_url(name, expiry_minutes=-5)
    with (
        ContainerClient.from_container_url(expired, retry_total=0) as reader,
        pytest.raises(HttpResponseError) as excinfo,
    ):
        list(reader.list_blobs())
    assert excinfo.value.status_code == 403
    assert excinfo.value.error_code == "AuthorizationFailure"


def test_prefect_write_path_to_missing_container_raises_runtime_error(shared: Azurite) -> None:
    azurite = shared.start()
    container = _prefect_container(azurite, "does-not-exist")

    with pytest.raises(RuntimeError) as excinfo:
        container.write_path("latest/SP500.csv", b"x")

    # prefect-azure wraps the SDK's 404 in a plain RuntimeError.
    assert type(excinfo.value) is RuntimeError
    assert str(excinfo.value) == (
        "An error occurred when attempting to upload from container does-not-exist:"
        " The specified container does not exist."
    )
    cause = excinfo.value.__cause__
    assert isinstance(cause, ResourceNotFoundError)
    assert cause.error_code == "ContainerNotFound"


def test_prefect_read_path_from_missing_container_raises_runtime_error(shared: Azurite) -> None:
    azurite = shared.start()
    container = _prefect_container(azurite, "does-not-exist")

    with pytest.raises(RuntimeError) as excinfo:
        container.read_path("latest/SP500.csv")

    assert type(excinfo.value) is RuntimeError
    assert str(excinfo.value) == (
        "An error occurred when attempting to download from container does-not-exist:"
        " The specified container does not exist."
    )
    cause = excinfo.value.__cause__
    assert isinstance(cause, ResourceNotFoundError)
    assert cause.error_code == "ContainerNotFound"


def test_kill_fails_fast_and_restart_keeps_persisted_data(tmp_path: Path) -> None:
    with Azurite(tmp_path / "azurite") as azurite:
        port = azurite.port
        azurite.create_container("data")
        with azurite.blob_service_client(retry_total=0, connection_timeout=2) as client:
            blob = client.get_blob_client("data", "SP500.csv")
            blob.upload_blob(b"before the crash")
            azurite.wait_persisted()  # Azurite saves its metadata every 5 s

            azurite.kill()
            assert not azurite.running
            with pytest.raises(ServiceRequestError):
                blob.download_blob().readall()
            azurite.kill()  # idempotent

            azurite.restart()
            assert azurite.port == port
            assert blob.download_blob().readall() == b"before the crash"
        azurite.stop()
        azurite.stop()  # idempotent
        assert not azurite.running


def test_start_on_a_busy_port_raises_azurite_unavailable_with_log_tail(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        azurite = Azurite(tmp_path / "azurite", port=squatter.getsockname()[1])
        with pytest.raises(AzuriteUnavailable, match="EADDRINUSE"):
            azurite.start(timeout=20)
    assert not azurite.running
    assert (tmp_path / "azurite" / "azurite.log").exists()
