"""`python -m blocks setup`: blocks from the old system's environment variables, idempotently.

The validation is tested as a pure function (`plan_blocks`); the command itself runs as a
subprocess against the session's real Prefect server (and Azurite for --create-container).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks.fred import FRED_BURST, FRED_RATE_LIMIT, FRED_REQUESTS_PER_MINUTE
from blocks.setup import SetupVariables, plan_blocks, read_environment
from blocks.setup import _api_description as api_description
from tests.alerts.stack import DEFAULT_BLOCKS, clean_env, delete_blocks, run_blocks_command

FRED_KEY = "abcdef0123456789abcdef0123456789"
SMTP_PASSWORD = "Smtp-pa55-setup-test"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)
FULL_ENV = {
    "FRED_API_KEY": FRED_KEY,
    "EMAIL_HOST": "127.0.0.1",
    "EMAIL_PORT": "587",
    "EMAIL_USER": "alerts@example.org",
    "EMAIL_PASS": SMTP_PASSWORD,
    "NOTIFICATION_EMAIL": "ops@example.org, oncall@example.org",
    "AZURE_STORAGE_CONNECTION_STRING": CONNECTION_STRING,
    "AZURE_CONTAINER_NAME": "market-forecast-runs",
}
SECRETS = (FRED_KEY, SMTP_PASSWORD, ACCOUNT_KEY)


def documents(server: Any) -> dict[tuple[str, str], tuple[str, str]]:
    """Every block document on the server, anonymous ones included: (type, name or id) -> (id, updated)."""
    import httpx

    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for anonymous in (False, True):
        response = httpx.post(
            f"{server.api_url}/block_documents/filter",
            json={"include_secrets": False, "block_documents": {"is_anonymous": {"eq_": anonymous}}},
            timeout=30,
        )
        response.raise_for_status()
        for doc in response.json():
            rows[(doc["block_type"]["slug"], doc["name"] or doc["id"])] = (doc["id"], doc["updated"])
    return rows


@dataclass
class SetupRuns:
    before_first: dict[tuple[str, str], tuple[str, str]]
    first: Any
    second: Any
    before_second: dict[tuple[str, str], tuple[str, str]]
    after_second: dict[tuple[str, str], tuple[str, str]]


@pytest.fixture(scope="module")
def setup_server(prefect_server: Any) -> Iterator[Any]:
    delete_blocks(prefect_server, DEFAULT_BLOCKS)
    yield prefect_server
    delete_blocks(prefect_server, DEFAULT_BLOCKS)


@pytest.fixture(scope="module")
def setup_twice(setup_server: Any) -> SetupRuns:
    env = clean_env(setup_server, **FULL_ENV)
    before_first = documents(setup_server)
    first = run_blocks_command(setup_server, "setup", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    before = documents(setup_server)
    second = run_blocks_command(setup_server, "setup", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    return SetupRuns(before_first, first, second, before, documents(setup_server))


@pytest.fixture
def blocks_restored(setup_twice: SetupRuns, setup_server: Any) -> Iterator[None]:
    """For a test that changes the saved blocks: they hold setup_twice's values again afterwards,
    so the tests that read them pass in any order."""
    yield
    run = run_blocks_command(setup_server, "setup", env=clean_env(setup_server, **FULL_ENV))
    assert run.returncode == 0, run.stdout + run.stderr


# ---------------------------------------------------------------- the command against a real server


def test_first_setup_creates_every_block_from_the_variables(setup_twice: SetupRuns) -> None:
    for reference in DEFAULT_BLOCKS:
        assert f"created    {reference}" in setup_twice.first.stdout
    assert (
        "Registered block types: fred-credentials, email-alerts, email-server-credentials" in setup_twice.first.stdout
    )
    new_documents = setup_twice.before_second.keys() - setup_twice.before_first.keys()
    # Exactly the five named documents: the nested SMTP and Azure credentials are references to
    # the saved blocks, not anonymous copies.
    assert new_documents == {tuple(reference.split("/")) for reference in DEFAULT_BLOCKS}


def test_second_setup_run_creates_no_duplicates_and_changes_nothing(setup_twice: SetupRuns) -> None:
    for reference in DEFAULT_BLOCKS:
        assert f"unchanged  {reference}" in setup_twice.second.stdout
    assert "created" not in setup_twice.second.stdout and "updated" not in setup_twice.second.stdout
    assert setup_twice.after_second == setup_twice.before_second  # same documents, same `updated` times


def test_setup_creates_the_shared_fred_budget_once(setup_twice: SetupRuns, setup_server: Any) -> None:
    assert f"global concurrency limit {FRED_RATE_LIMIT}" in setup_twice.first.stdout
    assert f"unchanged  global concurrency limit {FRED_RATE_LIMIT}" in setup_twice.second.stdout
    with setup_server.client() as client:
        limit = client.read_global_concurrency_limit_by_name(FRED_RATE_LIMIT)
    assert limit.active and limit.limit == FRED_BURST
    assert limit.slot_decay_per_second == pytest.approx(FRED_REQUESTS_PER_MINUTE / 60)


def test_read_environment_takes_a_dotenv_file_and_the_environment_wins(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(f"FRED_API_KEY={FRED_KEY}\nEMAIL_HOST=from-dotenv.example.org\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMAIL_HOST", "from-environment.example.org")
    found = read_environment()
    assert found["FRED_API_KEY"] == FRED_KEY
    assert found["EMAIL_HOST"] == "from-environment.example.org"


def test_setup_never_prints_a_secret(setup_twice: SetupRuns) -> None:
    for run in (setup_twice.first, setup_twice.second):
        for secret in SECRETS:
            assert secret not in run.stdout + run.stderr


def test_saved_blocks_hold_the_values_and_reference_each_other(setup_twice: SetupRuns, setup_server: Any) -> None:
    from prefect_azure import AzureBlobStorageContainer

    from blocks.fred import FredCredentials
    from blocks.notifications import EmailAlerts

    with setup_server.settings():
        alerts = EmailAlerts.load("market-forecast-alerts")
        container = AzureBlobStorageContainer.load("market-forecast")
        fred = FredCredentials.load("fred")
    assert alerts.recipients == ["ops@example.org", "oncall@example.org"]
    assert alerts.email_server_credentials._block_document_name == "market-forecast-smtp"
    assert alerts.email_server_credentials.smtp_type.name == "STARTTLS"
    assert alerts.email_server_credentials.password.get_secret_value() == SMTP_PASSWORD
    assert container.container_name == "market-forecast-runs"
    assert container.credentials._block_document_name == "market-forecast-azure"
    assert fred.api_key.get_secret_value() == FRED_KEY


def test_setup_updates_a_changed_value_in_place(
    setup_twice: SetupRuns, setup_server: Any, blocks_restored: None
) -> None:
    from blocks.notifications import EmailAlerts

    env = clean_env(setup_server, **{**FULL_ENV, "NOTIFICATION_EMAIL": "new-oncall@example.org"})
    third = run_blocks_command(setup_server, "setup", env=env)

    assert third.returncode == 0, third.stdout + third.stderr
    assert "updated    email-alerts/market-forecast-alerts" in third.stdout
    assert "unchanged  email-server-credentials/market-forecast-smtp" in third.stdout
    after = documents(setup_server)
    assert after.keys() == setup_twice.after_second.keys()  # no new document
    key = ("email-alerts", "market-forecast-alerts")
    assert after[key][0] == setup_twice.after_second[key][0]  # same document, updated
    with setup_server.settings():
        assert EmailAlerts.load("market-forecast-alerts").recipients == ["new-oncall@example.org"]


def test_setup_keeps_what_was_edited_in_the_ui_where_no_variable_says_otherwise(
    setup_twice: SetupRuns, setup_server: Any
) -> None:
    from prefect_azure import AzureBlobStorageContainer
    from prefect_email import EmailServerCredentials

    from blocks.fred import FRED_API_URL, FredCredentials
    from blocks.notifications import EmailAlerts

    edits: list[tuple[type[Any], str, str, Any, Any]] = [
        (EmailServerCredentials, "market-forecast-smtp", "verify", False, True),
        (EmailAlerts, "market-forecast-alerts", "subject_prefix", "[ops]", "[market-forecast]"),
        (EmailAlerts, "market-forecast-alerts", "sender", "forecasts@example.org", None),
        (AzureBlobStorageContainer, "market-forecast", "base_folder", "production", None),
        (FredCredentials, "fred", "api_url", "http://127.0.0.1:9/fred", FRED_API_URL),
    ]

    def save_fields(values: dict[tuple[type[Any], str], dict[str, Any]]) -> None:
        """What a user does in the UI's Blocks page: change a field of a saved block and save it."""
        with setup_server.settings():
            for (block_type, name), fields in values.items():
                block = block_type.load(name)
                for field_name, value in fields.items():
                    setattr(block, field_name, value)
                block.save(name, overwrite=True)

    def grouped(index: int) -> dict[tuple[type[Any], str], dict[str, Any]]:
        values: dict[tuple[type[Any], str], dict[str, Any]] = {}
        for edit in edits:
            values.setdefault((edit[0], edit[1]), {})[edit[2]] = edit[index]
        return values

    save_fields(grouped(3))
    try:
        third = run_blocks_command(setup_server, "setup", env=clean_env(setup_server, **FULL_ENV))
        assert third.returncode == 0, third.stdout + third.stderr
        for reference in DEFAULT_BLOCKS:
            assert f"unchanged  {reference}" in third.stdout
        with setup_server.settings():
            kept = {(t, n, f): getattr(t.load(n), f) for t, n, f, *_ in edits}
        assert kept == {(t, n, f): value for t, n, f, value, _ in edits}

        # A variable still wins over the edit of the field it sets.
        env = clean_env(setup_server, **{**FULL_ENV, "EMAIL_FROM": "desk@example.org"})
        fourth = run_blocks_command(setup_server, "setup", env=env)
        assert "updated    email-alerts/market-forecast-alerts" in fourth.stdout
        with setup_server.settings():
            alerts = EmailAlerts.load("market-forecast-alerts")
        assert (alerts.sender, alerts.subject_prefix) == ("desk@example.org", "[ops]")
    finally:
        save_fields(grouped(4))


def test_without_email_port_the_smtp_port_and_type_edited_in_the_ui_stay(
    setup_twice: SetupRuns, setup_server: Any, blocks_restored: None
) -> None:
    from prefect_email import EmailServerCredentials

    with setup_server.settings():
        smtp = EmailServerCredentials.load("market-forecast-smtp")
        smtp.smtp_port, smtp.smtp_type = 2525, "INSECURE"  # a relay, as set in the Blocks page
        smtp.save("market-forecast-smtp", overwrite=True)
    env = {name: value for name, value in FULL_ENV.items() if name != "EMAIL_PORT"}
    run = run_blocks_command(setup_server, "setup", env=clean_env(setup_server, **env))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "unchanged  email-server-credentials/market-forecast-smtp" in run.stdout
    assert "127.0.0.1 (port and type as saved, else SSL on its default port)" in run.stdout
    with setup_server.settings():
        smtp = EmailServerCredentials.load("market-forecast-smtp")
    assert (smtp.smtp_port, smtp.smtp_type.name) == (2525, "INSECURE")


def test_setup_names_every_malformed_variable_and_saves_nothing(setup_server: Any) -> None:
    before = documents(setup_server)
    env = clean_env(
        setup_server,
        FRED_API_KEY="not-a-key-" + FRED_KEY[:6],
        EMAIL_HOST="smtp://mail.example.org",
        EMAIL_PORT="five-eight-seven",
        EMAIL_PASS=SMTP_PASSWORD,
        NOTIFICATION_EMAIL="ops@example.org; nobody",
        AZURE_STORAGE_CONNECTION_STRING=f"AccountKey={ACCOUNT_KEY}",
        AZURE_CONTAINER_NAME="Bad_Container",
    )
    run = run_blocks_command(setup_server, "setup", env=env)

    assert run.returncode == 2
    for variable in (
        "FRED_API_KEY",
        "EMAIL_HOST",
        "EMAIL_PORT",
        "EMAIL_USER",
        "NOTIFICATION_EMAIL",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_CONTAINER_NAME",
    ):
        assert f"- {variable}" in run.stdout, variable
    assert "Nothing was saved" in run.stdout
    for secret in (SMTP_PASSWORD, ACCOUNT_KEY, FRED_KEY[:6]):
        assert secret not in run.stdout + run.stderr
    assert documents(setup_server) == before


def test_setup_skips_blocks_whose_variables_are_absent_and_says_why(setup_server: Any) -> None:
    run = run_blocks_command(setup_server, "setup", env=clean_env(setup_server, FRED_API_KEY=FRED_KEY))

    assert run.returncode == 0, run.stdout + run.stderr
    assert "fred-credentials/fred" in run.stdout
    assert "skipped    email-server-credentials/market-forecast-smtp: EMAIL_HOST is not set" in run.stdout
    assert "skipped    email-alerts/market-forecast-alerts: NOTIFICATION_EMAIL is not set" in run.stdout
    assert (
        "skipped    azure-blob-storage-credentials/market-forecast-azure: AZURE_STORAGE_CONNECTION_STRING is not set"
        in run.stdout
    )


def test_setup_create_container_creates_the_missing_container(
    setup_server: Any, azurite: Any, blocks_restored: None
) -> None:
    from prefect_azure import AzureBlobStorageContainer

    container = "mf-setup-created"
    with azurite.blob_service_client() as client:
        assert not client.get_container_client(container).exists()
    env = clean_env(
        setup_server, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string, AZURE_CONTAINER_NAME=container
    )

    first = run_blocks_command(setup_server, "setup", "--create-container", env=env)
    again = run_blocks_command(setup_server, "setup", "--create-container", env=env)

    assert first.returncode == 0, first.stdout + first.stderr
    assert f"container  {container}: created" in first.stdout
    assert f"container  {container}: already exists" in again.stdout
    with azurite.blob_service_client() as client:
        assert client.get_container_client(container).exists()
    with setup_server.settings():
        block = AzureBlobStorageContainer.load("market-forecast")
        block.write_path("probe.txt", b"ok")
        assert block.read_path("probe.txt") == b"ok"


# ---------------------------------------------------------------- validation, pure


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("FRED_API_KEY", "short", "FRED_API_KEY is malformed: a FRED API key is 32 lower-case letters and digits"),
        ("EMAIL_PORT", "99999", "EMAIL_PORT='99999' is malformed"),
        ("EMAIL_PORT", "2525", "EMAIL_PORT=2525 is not a standard SMTP port"),
        ("EMAIL_SMTP_TYPE", "TLS", "EMAIL_SMTP_TYPE='TLS' is malformed: use SSL, STARTTLS or INSECURE"),
        (
            "NOTIFICATION_EMAIL",
            "ops.example.org",
            "NOTIFICATION_EMAIL is malformed: 'ops.example.org' is not an e-mail address",
        ),
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            "AccountName=x",
            "AZURE_STORAGE_CONNECTION_STRING is malformed: it needs AccountName and AccountKey",
        ),
        ("AZURE_CONTAINER_NAME", "a", "AZURE_CONTAINER_NAME='a' is malformed"),
    ],
)
def test_plan_names_the_malformed_variable(variable: str, value: str, expected: str) -> None:
    plan = plan_blocks({**FULL_ENV, variable: value})

    assert any(expected in error for error in plan.errors), plan.errors


def test_setup_help_lists_every_variable_it_reads() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "blocks", "setup", "--help"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    listed = shown.split("environment variables:", 1)[1].split()
    assert set(SetupVariables.model_fields) <= set(listed)
    assert SetupVariables.model_fields["NOTIFICATION_EMAIL"].description in shown


def test_plan_needs_both_email_user_and_pass() -> None:
    plan = plan_blocks({"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": "465", "EMAIL_USER": "ops@example.org"})

    assert plan.errors == ["EMAIL_PASS is not set but EMAIL_USER is: set both (SMTP login) or neither (no login)."]


def test_plan_errors_never_contain_a_secret() -> None:
    plan = plan_blocks(
        {
            "FRED_API_KEY": FRED_KEY.upper(),
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PASS": SMTP_PASSWORD,
            "AZURE_STORAGE_CONNECTION_STRING": f"AccountKey={ACCOUNT_KEY}",
        }
    )

    text = "\n".join(plan.errors)
    assert len(plan.errors) == 3
    for secret in (FRED_KEY, FRED_KEY.upper(), SMTP_PASSWORD, ACCOUNT_KEY):
        assert secret not in text


def test_a_password_in_a_url_is_never_printed() -> None:
    proxy = "https://alice:Sup3rSecretPw@proxy.example.org/fred"
    (fred,) = plan_blocks({"FRED_API_KEY": FRED_KEY, "FRED_API_URL": proxy}).blocks
    assert fred.summary.endswith("api_url https://alice:***@proxy.example.org/fred")
    malformed = plan_blocks({"FRED_API_KEY": FRED_KEY, "FRED_API_URL": "ftp://alice:Sup3rSecretPw@proxy.example.org"})
    assert malformed.errors and "Sup3rSecretPw" not in "\n".join(malformed.errors)
    with temporary_settings({PREFECT_API_URL: "http://admin:S3cretPw0rd@127.0.0.1:4200/api"}):
        assert api_description() == "http://admin:***@127.0.0.1:4200/api"


@pytest.mark.parametrize("flag", ["--fred-burst", "--fred-requests-per-minute"])
def test_a_fred_budget_of_zero_is_refused_before_anything_is_saved(flag: str) -> None:
    # A burst of 0 makes every FRED fetch of every run fail; the budget must stay above 0.
    run = subprocess.run(
        [sys.executable, "-m", "blocks", "setup", flag, "0"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2 and f"argument {flag}: must be above 0, got 0" in run.stderr
