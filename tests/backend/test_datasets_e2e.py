"""Runs on the user's own CSV through a real backend: data-dir files, uploads, refusals.

SQLite only: nothing here depends on the database. One backend serves the module (each
start costs seconds), so every test uses file names of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from utils.backend_server import BackendServer
from utils.csv_files import CHAIN, write_csv, write_reference

SHORT = {"dataset": "csv", "epochs": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path) -> Iterator[
    BackendServer
]:
    tmp_path = tmp_path_factory.mktemp("datasets")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_csv(data_dir / "chain.csv")
    write_reference(data_dir / "chain.json", CHAIN)
    (data_dir / "notes.txt").write_text("not a data file")
    (data_dir / "escape.csv").symlink_to(uci_csv_path)  # inside the name, outside the folder
    (data_dir / "sub").mkdir()
    write_csv(data_dir / "sub" / "deep.csv")
    # A small upload limit, so the 413 is cheap to provoke.
    # Stand-in trainers: the real data loading and checks, no torch loop.
    with BackendServer(tmp_path, uci_csv_path, data_dir=data_dir, trainer="stream",
                       env={"CAUSALWATCH_MAX_UPLOAD_MB": "0.05"}) as backend:
        yield backend


def test_listing_offers_only_files_inside_the_folders(server: BackendServer) -> None:
    listed = server.client.get("/api/datasets").json()
    assert [(d["name"], d["source"], d["kind"]) for d in listed] == [
        ("chain.csv", "data_dir", "csv"), ("chain.json", "data_dir", "reference"),
    ]
    assert listed[0]["columns"] == ["alpha", "beta", "gamma", "delta"]


def test_upload_then_train_without_reference(server: BackendServer, tmp_path: Path) -> None:
    body = write_csv(tmp_path / "mine.csv", sep=";", decimal=",").read_bytes()
    resp = server.client.post("/api/datasets", params={"name": "mine.csv"}, content=body,
                              headers={"content-type": "text/csv"})
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"name": "upload:mine.csv", "source": "upload", "kind": "csv",
                           "size_bytes": len(body), "columns": ["alpha", "beta", "gamma", "delta"]}
    assert (server.runs_dir / "datasets" / "mine.csv").read_bytes() == body
    again = server.client.post("/api/datasets", params={"name": "mine.csv"}, content=body)
    assert again.status_code == 409 and "exists already" in again.text
    names = [d["name"] for d in server.client.get("/api/datasets").json()]
    assert names[-1] == "upload:mine.csv"

    run = server.create("uci", **SHORT, data_file="upload:mine.csv")
    done = server.wait_finished(run["id"])
    assert done["status"] == "completed", done["status_reason"]
    assert done["data"]["reference_kind"] == "none"
    metrics = server.metrics(run["id"])
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(m["shd"] is None and m["f1"] is None for m in metrics)
    assert metrics[-1]["val_recon"] is not None
    card = server.client.get(f"/api/runs/{run['id']}/scorecard").json()
    criteria = [c for level in card["levels"] for c in level["criteria"]]
    assert {c["status"] for c in criteria if c["name"] in ("f1", "shd")} == {"n/a"}
    assert all("no reference graph" in c["description"] for c in criteria
               if c["name"] in ("f1", "shd"))


def test_data_dir_file_with_reference_is_scored(server: BackendServer) -> None:
    run = server.create("uci", **SHORT, data_file="chain.csv", reference_file="chain.json")
    done = server.wait_finished(run["id"])
    assert done["status"] == "completed", done["status_reason"]
    assert done["data"]["reference_kind"] == "user reference graph"
    assert len(done["data"]["reference_edges"]) == 3
    last = server.metrics(run["id"])[-1]
    assert last["shd"] is not None and last["f1"] is not None


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"data_file": "escape.csv"}, "data_file",
         "data_file: 'escape.csv' is not a regular file inside"),
        ({"data_file": "nope.csv"}, "data_file",
         "data_file: no file 'nope.csv' among the data dir"),
        ({"data_file": "upload:nope.csv"}, "data_file",
         "data_file: no file 'nope.csv' among uploaded"),
        ({}, "data_file", "data_file: dataset csv needs a file"),
        ({"data_file": "chain.csv", "reference_file": "sub"}, "reference_file",
         "reference_file: 'sub' is not a"),
        ({"data_file": "chain.csv", "reference_file": "gone.json"}, "reference_file",
         "reference_file: no file 'gone.json' among the data dir"),
    ],
)
def test_unusable_file_is_refused_at_create_naming_the_field(
    server: BackendServer, overrides: dict[str, str], field: str, reason: str
) -> None:
    before = len(server.client.get("/api/runs").json()["runs"])
    resp = server.client.post(
        "/api/runs", json={"preset": "uci", "overrides": {**SHORT, **overrides}}
    )
    assert resp.status_code == 422, resp.text
    (detail,) = resp.json()["detail"]
    assert detail["field"] == f"overrides.{field}"
    assert reason in detail["msg"]
    assert len(server.client.get("/api/runs").json()["runs"]) == before, "no run recorded"


def test_restart_refuses_a_file_removed_since(server: BackendServer, tmp_path: Path) -> None:
    body = write_csv(tmp_path / "brief.csv").read_bytes()
    assert server.client.post(
        "/api/datasets", params={"name": "brief.csv"}, content=body
    ).status_code == 201
    run = server.create("uci", **SHORT, data_file="upload:brief.csv")
    assert server.wait_finished(run["id"])["status"] == "completed"
    (server.runs_dir / "datasets" / "brief.csv").unlink()
    resp = server.client.post(f"/api/runs/{run['id']}/restart", json={})
    assert resp.status_code == 422, resp.text
    (detail,) = resp.json()["detail"]
    assert detail["field"] == "overrides.data_file"
    assert "no file 'brief.csv' among uploaded" in detail["msg"]


@pytest.mark.parametrize(
    "name", ["../x.csv", "/etc/passwd", "sub/deep.csv", ".hidden.csv", "upload:chain.csv"]
)
def test_paths_are_refused_at_create(server: BackendServer, name: str) -> None:
    resp = server.client.post(
        "/api/runs", json={"preset": "uci", "overrides": {**SHORT, "data_file": name}}
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "overrides.data_file"


@pytest.mark.parametrize(
    ("name", "body", "status", "fragment"),
    [
        ("../x.csv", b"a,b\n1,2\n", 422, "is not a file name"),
        ("x.txt", b"a,b\n1,2\n", 422, "must end in .csv or .json"),
        ("empty.csv", b"", 422, "is empty"),
        ("one.csv", b"alpha\n1\n", 422, "no header of at least 2 columns"),
        ("latin.csv", "a,b\n\u00e9,1\n".encode("latin-1"), 422, "is not UTF-8 text"),
        ("ref.json", b"[1, 2]", 422, '"edges"'),
        ("big.csv", b"a,b\n" + b"1,2\n" * 20_000, 413, "request body larger than"),
    ],
)
def test_bad_uploads_are_refused(
    server: BackendServer, name: str, body: bytes, status: int, fragment: str
) -> None:
    resp = server.client.post("/api/datasets", params={"name": name}, content=body)
    assert resp.status_code == status, resp.text
    assert fragment in resp.json()["detail"][0]["msg"]
    uploads = server.runs_dir / "datasets"
    assert not (uploads / name).exists() and not (server.root / "x.csv").exists()
    assert not [p for p in uploads.glob(".*")], "no partial file left behind"
