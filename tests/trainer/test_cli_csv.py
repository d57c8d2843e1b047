"""`causalwatch train --set dataset=csv --data FILE [--reference JSON]`: the real CLI, good and
bad files, exit codes and messages naming the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from utils.csv_files import CHAIN, write_csv, write_reference

from trainer.protocol import EpochRecord

pytestmark = pytest.mark.cli


def train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", "--preset", "uci", "--set", "dataset=csv",
         "--runs-dir", "runs", "--quiet", *args],
        cwd=cwd, capture_output=True, text=True, timeout=240, check=False,
    )


def records(run_dir: Path) -> list[dict]:
    out = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in out:
        EpochRecord.model_validate(r)
    return out


def test_csv_with_reference_is_scored(tmp_path: Path) -> None:
    write_csv(tmp_path / "chain.csv", missing="-200")
    write_reference(tmp_path / "chain.json")
    proc = train("--data", "chain.csv", "--reference", "chain.json", "--set", "csv_missing=-200",
                 "--epochs", "2", "--run-id", "ref", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    recs = records(tmp_path / "runs" / "ref")
    assert [r["epoch"] for r in recs] == [1, 2]
    assert recs[0]["shd"] is None and recs[1]["shd"] is not None  # evaluation epochs only
    assert recs[1]["f1"] is not None and recs[1]["edges_topk"] == 3  # k = the reference's edges
    assert "against the user reference graph" in proc.stdout
    log = (tmp_path / "runs" / "ref" / "train.log").read_text()
    assert "dataset csv (user reference graph)" in log
    assert "standardized=True" in log  # on by default for csv, as for uci


def test_csv_without_reference_has_null_shd_and_f1(tmp_path: Path) -> None:
    # `;` with decimal commas and a trailing separator, the UCI file's conventions.
    write_csv(tmp_path / "semi.csv", sep=";", decimal=",", trailing=";")
    proc = train("--data", "semi.csv", "--epochs", "2", "--run-id", "noref", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    recs = records(tmp_path / "runs" / "noref")
    for r in recs:
        assert [r[k] for k in ("shd", "f1", "precision", "recall", "f1_skeleton")] == [None] * 5
    assert recs[-1]["val_recon"] is not None  # the label-free part is still measured
    assert "no reference graph: SHD and F1 not computed" in proc.stdout
    assert "dataset csv (none)" in (tmp_path / "runs" / "noref" / "train.log").read_text()


def _no_header(d: Path) -> Path:
    return write_csv(d / "bad.csv", header=False)


def _text_column(d: Path) -> Path:
    path = write_csv(d / "bad.csv")
    lines = path.read_text().splitlines()
    lines = [lines[0] + ",station"] + [line + ",north" for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _one_column(d: Path) -> Path:
    path = d / "bad.csv"
    path.write_text("alpha\n" + "".join(f"{i}.5\n" for i in range(60)))
    return path


def _empty(d: Path) -> Path:
    path = d / "bad.csv"
    path.write_text("")
    return path


def _header_only(d: Path) -> Path:
    path = d / "bad.csv"
    path.write_text("alpha,beta\n")
    return path


def _duplicate_names(d: Path) -> Path:
    path = d / "bad.csv"
    path.write_text("alpha,alpha\n" + "1,2\n" * 60)
    return path


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (_no_header, "no header: the first row is numbers"),
        (_text_column, "column 'station' has a value that is not a finite number: 'north'"),
        (_one_column, "only one column"),
        (_empty, "file is empty"),
        (_header_only, "only 0 usable row(s)"),
        (_duplicate_names, "duplicate column name(s) 'alpha'"),
    ],
)
def test_bad_csv_exits_2_naming_the_file(tmp_path: Path, make: object, fragment: str) -> None:
    make(tmp_path)  # type: ignore[operator]
    proc = train("--data", "bad.csv", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"causalwatch: data error: {tmp_path / 'bad.csv'}: " in proc.stderr
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists(), "no run folder for refused data"


@pytest.mark.parametrize(
    ("graph", "fragment"),
    [
        ({"edges": [{"from": "alpha", "to": "omega"}, {"from": "Beta", "to": "gamma"}]},
         "names variable(s) not in the data: 'omega', 'Beta'; the data's columns are 'alpha'"),
        ({"edges": [*CHAIN["edges"], {"from": "delta", "to": "beta"}]},
         "the reference graph has a cycle: beta -> gamma -> delta -> beta"),
        ({"edges": [{"from": "alpha", "to": "alpha"}]}, "edge 1 is a self-loop on 'alpha'"),
        ({"edges": [{"from": "alpha"}]}, 'edge 1 is not {"from": "<column>", "to": "<column>"}'),
        ([["alpha", "beta"]], 'expected a JSON object with an "edges" list'),
    ],
)
def test_bad_reference_exits_2_naming_the_file(
    tmp_path: Path, graph: object, fragment: str
) -> None:
    write_csv(tmp_path / "chain.csv")
    write_reference(tmp_path / "ref.json", graph)
    proc = train("--data", "chain.csv", "--reference", "ref.json", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"causalwatch: data error: {tmp_path / 'ref.json'}: {fragment}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_reference_that_is_not_json(tmp_path: Path) -> None:
    write_csv(tmp_path / "chain.csv")
    (tmp_path / "ref.json").write_text("alpha -> beta\n")
    proc = train("--data", "chain.csv", "--reference", "ref.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{tmp_path / 'ref.json'}: is not JSON" in proc.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--data", "missing.csv"], "--data missing.csv: file not found (resolved to "),
        (["--data", "chain.csv", "--reference", "nope.json"],
         "--reference nope.json: file not found (resolved to "),
        ([], "dataset csv needs --data PATH"),
        (["--set", "data_file=chain.csv"], "data_file 'chain.csv' is a name only the backend"),
    ],
)
def test_missing_files_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    write_csv(tmp_path / "chain.csv")
    proc = train(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_reference_only_for_csv(tmp_path: Path) -> None:
    write_reference(tmp_path / "ref.json")
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "--preset", "synthetic", "--reference", "ref.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2
    assert "ref.json: a reference graph is read for dataset 'csv' only" in proc.stderr
