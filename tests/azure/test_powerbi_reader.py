"""Power BI's side, in Python: the REST requests docs/pbi_integration.md's M code makes, with a read+list SAS.

`PowerBIReader` mirrors the M queries step by step (SasQuery, ListRunBlobs, GetLatestFolder,
GetModelTrainingFolder, GetDataFromLatestFolder with ColumnTypes), so what runs here against
Azurite is what Power BI asks Azure for. The column types are read from the document itself.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import parse_qsl, quote, urlencode
from urllib.request import urlopen

import pandas as pd
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient

from tasks.core.outputs import SCHEMAS
from tests.azure.stores import DAILY_AS_OF, TRAINING_ONLY_FILES, Published, Store, copy_blobs
from tests.harness.azurite import Azurite

DOC = Path(__file__).resolve().parents[2] / "docs" / "pbi_integration.md"


def m_blocks() -> list[str]:
    return re.findall(r"```m\n(.*?)```", DOC.read_text(), flags=re.S)


def m_query(name: str) -> str:
    """The M code under the document's heading "### `name`: ..."."""
    (code,) = re.findall(rf"^### `{name}`[^\n]*\n(?:[^\n]*\n)*?```m\n(.*?)```", DOC.read_text(), flags=re.S | re.M)
    return code


# What each step of PowerBIReader does, as the document's M code spells it. A change to the M code
# that changes what Power BI asks Azure for (another prefix, the oldest folder first, no 404
# handling, another file) fails here, so the reader cannot silently test a query nobody runs.
MIRRORED = {
    "SasQuery": ['Text.TrimStart(SasToken, "?")', 'Uri.Parts("https://sas.invalid/?" & Token)[Query]'],
    "ListRunBlobs": [
        '[restype = "container", comp = "list", prefix = "runs/"]',
        "[marker = marker]",
        'ChildRows("NextMarker")',
        "RelativePath = ContainerName, Query = Query",
    ],
    "GetLatestFolder": [
        'RelativePath = ContainerName & "/latest.json", Query = SasQuery, ManualStatusHandling = {404}',
        "if LatestStatus = 404 then null else Json.Document(LatestResponse)[run_folder]",
        'Text.EndsWith(_, "/manifest.json")',
        'Text.BeforeDelimiter(_, "/", 1)',
        "Order.Descending",
        "else CompleteFolders{0}",
    ],
    "GetModelTrainingFolder": ['GetLatestFolder() & "/manifest.json"', "Manifest[model_training_run]"],
    "GetDataFromLatestFolder": [
        'List.Contains({"model_history.csv", "backtest_metrics.csv"}, fileName)',
        "then GetModelTrainingFolder()",
        "else GetLatestFolder()",
        'RelativePath = ContainerName & "/" & Folder & "/" & fileName',
        "Table.PromoteHeaders",
        'Record.Field(ColumnTypes, fileName), "en-US"',
    ],
    "Charts": [
        'FileNames(Folder), each Text.StartsWith(_, "fan_chart_") and Text.EndsWith(_, ".png")',
        'FileNames(TrainingFolder), each _ = "skill_by_horizon.png"',
        ")[files],",
        'Text.BetweenDelimiters(_, "fan_chart_", ".png")',
        '[run_folder] & "/" & [file] & "?"',
    ],
}


def documented_column_types() -> dict[str, list[tuple[str, str]]]:
    """The `ColumnTypes` record of the document: file -> [(column, M type)], in order."""
    (block,) = [b for b in m_blocks() if '#"actuals.csv" = {' in b]
    tables = re.findall(r'#"([a-z_]+\.csv)" = \{(.*?)\n    \}', block, flags=re.S)
    return {
        name: re.findall(r'\{"(\w+)", (type date|type text|type number|type logical|Int64\.Type)\}', body)
        for name, body in tables
    }


def apply_m_type(column: pd.Series, m_type: str) -> pd.Series:
    """What Table.TransformColumnTypes(..., "en-US") does to a CSV text column; raises where it would error."""
    if m_type == "type text":
        return column
    values = column.replace("", None)
    if m_type == "type date":
        return pd.to_datetime(values, format="%Y-%m-%d")
    if m_type == "type logical":
        assert set(values.dropna()) <= {"true", "false"}, set(values)
        return values.map({"true": True, "false": False})
    numbers = pd.to_numeric(values)
    if m_type == "Int64.Type":
        assert numbers.notna().all() and (numbers == numbers.round()).all()
        return numbers.astype("int64")
    return numbers.astype("float64")


class PowerBIReader:
    """The M queries of docs/pbi_integration.md, as Python over the same REST requests."""

    def __init__(self, account_url: str, container: str, sas_token: str) -> None:
        self.account_url = account_url.rstrip("/")  # parameter StorageAccountUrl
        self.container = container  # parameter ContainerName
        # SasQuery: Uri.Parts decodes the token into a record; Web.Contents encodes it again.
        self.sas_query = dict(parse_qsl(sas_token.lstrip("?"), keep_blank_values=True))
        self.requests: list[str] = []

    def web_contents(
        self, relative_path: str, query: dict[str, str] | None = None, *, allow_404: bool = False
    ) -> tuple[int, bytes]:
        """Web.Contents(StorageAccountUrl, [RelativePath=..., Query=SasQuery & query, ManualStatusHandling=...])."""
        self.requests.append(relative_path)
        query_string = urlencode({**self.sas_query, **(query or {})}, quote_via=quote)
        url = f"{self.account_url}/{quote(relative_path)}?{query_string}"
        try:
            with urlopen(url, timeout=10) as response:
                return response.status, response.read()
        except HTTPError as error:
            if allow_404 and error.code == 404:
                return 404, error.read()
            raise

    def list_run_blobs(self, page_size: int | None = None) -> list[str]:
        """ListRunBlobs (page_size only to exercise NextMarker paging on a small container)."""
        names: list[str] = []
        marker: str | None = None
        while True:
            query = {"restype": "container", "comp": "list", "prefix": "runs/"}
            if marker is not None:
                query["marker"] = marker
            if page_size is not None:
                query["maxresults"] = str(page_size)
            _, body = self.web_contents(self.container, query)
            root = ET.fromstring(body)
            blobs = root.find("Blobs")
            names += [blob.findtext("Name") for blob in (blobs.findall("Blob") if blobs is not None else [])]
            marker = root.findtext("NextMarker") or None
            if marker is None:
                return names

    def get_latest_folder(self) -> str:
        status, body = self.web_contents(f"{self.container}/latest.json", allow_404=True)
        if status != 404:
            return json.loads(body)["run_folder"]
        manifests = [name for name in self.list_run_blobs() if name.endswith("/manifest.json")]
        complete = sorted({"/".join(name.split("/")[:2]) for name in manifests}, reverse=True)
        if not complete:
            raise LookupError(f"Container {self.container} has no latest.json and no runs/<timestamp>/manifest.json")
        return complete[0]

    def get_model_training_folder(self) -> str:
        _, body = self.web_contents(f"{self.container}/{self.get_latest_folder()}/manifest.json")
        return json.loads(body)["model_training_run"]

    def get_data(self, file_name: str) -> pd.DataFrame:
        """GetDataFromLatestFolder(file_name) with the document's ColumnTypes."""
        folder = self.get_model_training_folder() if file_name in TRAINING_ONLY_FILES else self.get_latest_folder()
        _, content = self.web_contents(f"{self.container}/{folder}/{file_name}")
        # Csv.Document + Table.PromoteHeaders: every cell is text until the types are applied.
        table = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, encoding="utf-8")
        types = documented_column_types()[file_name]
        assert list(table.columns) == [column for column, _ in types], file_name
        return pd.DataFrame({column: apply_m_type(table[column], m_type) for column, m_type in types})

    def file_names(self, folder: str) -> list[str]:
        """The `files` of a run folder's manifest (the `FileNames` function of the `Charts` query)."""
        _, body = self.web_contents(f"{self.container}/{folder}/manifest.json")
        return [entry["name"] for entry in json.loads(body)["files"]]

    def charts(self, sas_token: str) -> pd.DataFrame:
        """The `Charts` query: the latest run's fan charts and its model's skill chart, with image URLs."""
        folder, training = self.get_latest_folder(), self.get_model_training_folder()
        fans = [n for n in self.file_names(folder) if n.startswith("fan_chart_") and n.endswith(".png")]
        skill = [n for n in self.file_names(training) if n == "skill_by_horizon.png"]
        rows = [(folder, n, n.removeprefix("fan_chart_").removesuffix(".png")) for n in fans]
        rows += [(training, n, None) for n in skill]
        table = pd.DataFrame(rows, columns=["run_folder", "file", "series_id"])
        token = sas_token.lstrip("?")
        table["image_url"] = [
            f"{self.account_url}/{self.container}/{row.run_folder}/{row.file}?{token}" for row in table.itertuples()
        ]
        return table


def sas_token(azurite: Azurite, container: str, **permissions: object) -> str:
    return azurite.container_sas_url(container, **permissions).split("?", 1)[1]


@pytest.fixture(scope="module")
def reader(published: Published) -> PowerBIReader:
    store = published.store
    return PowerBIReader(store.azurite.blob_endpoint, store.container, sas_token(store.azurite, store.container))


def test_reader_follows_latest_json_to_the_daily_run_without_listing(
    reader: PowerBIReader, published: Published
) -> None:
    reader.requests.clear()
    assert reader.get_latest_folder() == published.result["run_folder"]
    assert reader.requests == [f"{published.store.container}/latest.json"]


def test_reader_lists_every_run_blob_under_runs(reader: PowerBIReader, published: Published) -> None:
    expected = sorted(name for name in published.store.blobs("runs/"))
    assert reader.list_run_blobs() == expected
    assert f"{published.result['run_folder']}/manifest.json" in expected


def test_reader_pages_through_the_listing_with_next_marker(reader: PowerBIReader) -> None:
    reader.requests.clear()
    assert reader.list_run_blobs(page_size=3) == reader.list_run_blobs()
    assert len(reader.requests) > 2  # several pages were read


def test_reader_loads_every_csv_with_the_documented_column_types(reader: PowerBIReader, published: Published) -> None:
    for name in SCHEMAS:
        table = reader.get_data(name)
        assert not table.empty, name
        if "model_version" in table:
            assert set(table["model_version"]) == {published.result["model_version"]}, name
    actuals = reader.get_data("actuals.csv")
    assert actuals["date"].dtype.kind == "M" and actuals["filled"].dtype == bool and actuals["value"].dtype == float
    forecast = reader.get_data("forecasted_data.csv")
    assert set(forecast["as_of"]) == {pd.Timestamp(DAILY_AS_OF)}
    assert forecast["horizon"].max() == 30
    assert set(reader.get_data("predicted.csv")["split"]) <= {"train", "validation", "test", "live"}


def test_reader_takes_model_files_from_the_champion_training_run(reader: PowerBIReader, published: Published) -> None:
    folder = reader.get_model_training_folder()
    assert folder == published.trained.result["run_folder"]
    listed = reader.list_run_blobs()
    assert all(f"{folder}/{name}" in listed for name in TRAINING_ONLY_FILES)


def test_chart_urls_show_the_published_pngs_to_a_browser_with_the_read_only_sas(
    reader: PowerBIReader, published: Published
) -> None:
    token = sas_token(published.store.azurite, published.store.container)
    charts = reader.charts(token)
    assert charts["series_id"].tolist()[:-1] == list(published.trained.settings.series)
    assert pd.isna(charts["series_id"].iloc[-1])  # the skill chart is about every series
    assert charts["file"].iloc[-1] == "skill_by_horizon.png"
    for row in charts.itertuples():
        # What Power BI's image URL does: a plain GET from the viewer's browser, the SAS in the URL.
        with urlopen(row.image_url, timeout=10) as response:
            assert response.headers["Content-Type"] == "image/png", row.file
            assert response.read() == published.store.read(f"{row.run_folder}/{row.file}"), row.file
    svg = published.store.read(f"{published.result['run_folder']}/fan_chart_SP500.svg")
    with urlopen(charts["image_url"].iloc[0].replace(".png?", ".svg?"), timeout=10) as response:
        assert response.headers["Content-Type"] == "image/svg+xml" and response.read() == svg


def test_reader_falls_back_to_the_newest_complete_folder_without_latest_json(
    live_azurite: Azurite, published: Published, champion_store: Callable[..., Store]
) -> None:
    store = champion_store("fallback")
    copy_blobs(published.store.blobs("runs/"), live_azurite, store.container)  # a training and a daily run
    copy_blobs({"runs/29991231_235959/actuals.csv": b"date\n"}, live_azurite, store.container)  # newer, incomplete
    fallback_reader = PowerBIReader(
        live_azurite.blob_endpoint, store.container, sas_token(live_azurite, store.container)
    )

    assert fallback_reader.get_latest_folder() == published.result["run_folder"]
    assert list(fallback_reader.get_data("forecasted_data.csv").columns) == SCHEMAS["forecasted_data.csv"]


def test_read_list_sas_cannot_write_or_delete(published: Published) -> None:
    store = published.store
    before = store.listing()
    client = ContainerClient.from_container_url(store.azurite.container_sas_url(store.container), retry_total=0)
    with client:
        with pytest.raises(HttpResponseError) as write:
            client.upload_blob("latest.json", b'{"run_folder": "runs/forged"}', overwrite=True)
        with pytest.raises(HttpResponseError) as delete:
            client.delete_blob(f"{published.result['run_folder']}/manifest.json")
    assert write.value.status_code == 403 and delete.value.status_code == 403
    assert store.listing() == before


def test_expired_sas_is_refused(published: Published) -> None:
    store = published.store
    expired = PowerBIReader(
        store.azurite.blob_endpoint, store.container, sas_token(store.azurite, store.container, expiry_minutes=-5)
    )
    with pytest.raises(HTTPError) as refused:
        expired.get_latest_folder()
    assert refused.value.code == 403


@pytest.mark.parametrize("query", list(MIRRORED))
def test_the_reader_mirrors_the_documents_m_code(query: str) -> None:
    code = " ".join(m_query(query).split())  # whitespace-insensitive
    missing = [expression for expression in MIRRORED[query] if " ".join(expression.split()) not in code]
    assert missing == [], f"docs/pbi_integration.md's {query} no longer does what PowerBIReader mirrors"
    assert set(TRAINING_ONLY_FILES) == {"model_history.csv", "backtest_metrics.csv"}  # the reader's list


def test_documented_column_types_match_the_output_contract() -> None:
    documented = documented_column_types()
    assert {name: [column for column, _ in types] for name, types in documented.items()} == SCHEMAS


def unbalanced(code: str) -> str | None:
    """Why an M snippet's strings, comments and brackets do not close, or None if they do."""
    stack: list[str] = []
    i = 0
    while i < len(code):
        char = code[i]
        if char == '"':  # a text literal; "" inside it is an escaped quote
            end = i + 1
            while True:
                end = code.find('"', end)
                if end == -1:
                    return f"unterminated text literal at {i}"
                if code[end + 1 : end + 2] == '"':
                    end += 2
                    continue
                break
            i = end + 1
            continue
        if code.startswith("//", i):
            i = code.find("\n", i) if "\n" in code[i:] else len(code)
            continue
        if code.startswith("/*", i):
            end = code.find("*/", i + 2)
            if end == -1:
                return f"unterminated comment at {i}"
            i = end + 2
            continue
        if char in "([{":
            stack.append(char)
        elif char in ")]}" and (not stack or "([{"[")]}".index(char)] != stack.pop()):
            return f"unexpected {char!r} at {i}"
        i += 1
    return f"unclosed {stack}" if stack else None


def test_documented_m_code_has_balanced_brackets_strings_and_comments() -> None:
    blocks = m_blocks()
    assert len(blocks) >= 8
    for block in blocks:
        assert unbalanced(block) is None, (unbalanced(block), block)
