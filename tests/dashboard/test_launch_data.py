"""The launch form's Data section: its pure pieces, and the client against a real backend."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from utils.backend_server import BackendServer
from utils.csv_files import write_csv

from dashboard.client import BackendClient, BackendError, Endpoints
from dashboard.components import data_overrides, dataset_options, decode_upload


def test_dataset_options_split_csv_and_reference() -> None:
    files = [
        {"name": "air.csv", "source": "data_dir", "kind": "csv",
         "columns": ["a", "b", "c", "d", "e"]},
        {"name": "upload:g.json", "source": "upload", "kind": "reference", "columns": None},
    ]
    csv_options, reference_options = dataset_options(files)
    assert csv_options == [{"label": "air.csv (data dir, 5 columns: a, b, c, d, …)",
                            "value": "air.csv"}]
    assert reference_options == [{"label": "upload:g.json (uploaded)", "value": "upload:g.json"}]


def test_decode_upload_and_overrides() -> None:
    encoded = "data:text/csv;base64," + base64.b64encode(b"a,b\n1,2\n").decode()
    assert decode_upload(encoded) == b"a,b\n1,2\n"
    with pytest.raises(ValueError, match="unexpected form"):
        decode_upload("data:text/csv;base64,@@@")
    assert data_overrides("csv", "upload:x.csv", None) == {
        "dataset": "csv", "data_file": "upload:x.csv", "reference_file": None}
    assert data_overrides("uci", "upload:x.csv", "r.json") == {
        "dataset": "uci", "data_file": None, "reference_file": None}
    assert data_overrides(None, None, None) == {}


@pytest.fixture
def client(tmp_path: Path, uci_csv_path: Path) -> Iterator[BackendClient]:
    with BackendServer(tmp_path, uci_csv_path) as server:
        yield BackendClient(Endpoints(server.url, server.url))


def test_client_uploads_lists_and_reports_refusals(client: BackendClient, tmp_path: Path) -> None:
    body = write_csv(tmp_path / "mine.csv").read_bytes()
    stored = client.upload_dataset("mine.csv", body)
    assert stored["name"] == "upload:mine.csv" and stored["kind"] == "csv"
    assert [f["name"] for f in client.datasets()] == ["upload:mine.csv"]
    with pytest.raises(BackendError) as refused:
        client.upload_dataset("mine.csv", body)
    assert refused.value.status == 409 and "exists already" in refused.value.message
    with pytest.raises(BackendError) as bad:
        client.upload_dataset("../mine.csv", body)
    assert bad.value.status == 422 and bad.value.field == "name"
