"""Rows, fields and bad input, read back from an offline run's journal (no server needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import causalwatch as cw
from causalwatch.local import read_messages


@pytest.fixture
def run(tmp_path: Path) -> cw.Run:
    return cw.init(name="rows", mode="offline", dir=tmp_path, epochs=4,
                   variables=["x", "y"], reference=[("x", "y")])


def records(run: cw.Run) -> list[dict[str, Any]]:
    return [m["record"] for m in read_messages(run.folder) if m["type"] == "epoch"]


def test_rows_follow_wandb_step_semantics(run: cw.Run) -> None:
    run.log({"loss_recon": 3.0}, step=5)
    run.log({"loss_sparse": 1.0, "acc": 0.5}, step=5)  # same step: the same row
    assert records(run) == []  # the row stays open until a new step
    run.log({"loss_recon": 2.0}, step=7)  # a new step completes the row of step 5
    run.log({"acc": 0.75})  # no step: the open row (step 7), sent at once
    run.log({"acc": 0.8}, commit=False)  # the next step, kept open
    run.log({"loss_recon": 1.0})
    run.finish()
    rows = records(run)
    assert [(r["epoch"], r["step"]) for r in rows] == [(1, 5), (2, 7), (3, 8)]
    assert rows[0]["loss_recon"] == 3.0 and rows[0]["custom"] == {"acc": 0.5}
    # Shares derived from the weighted terms given (docs/metrics.md): 3 / (3 + 1).
    assert rows[0]["share_recon"] == 75.0 and rows[0]["share_sparse"] == 25.0
    # Terms not logged weigh 0 in this objective: the balance rules can read all four.
    assert (rows[0]["loss_acyclic"], rows[0]["share_acyclic"], rows[0]["share_disen"]) == (
        0.0, 0.0, 0.0,
    )
    assert rows[1]["share_recon"] == 100.0 and rows[1]["custom"] == {"acc": 0.75}
    assert rows[2]["custom"] == {"acc": 0.8} and rows[2]["loss_recon"] == 1.0
    for r in rows:
        assert r["run_id"] == run.id and r["epoch_seconds"] >= 0
        assert r["eta_seconds"] >= 0  # epochs=4 was given
    assert rows[-1]["eta_seconds"] == pytest.approx(
        sum(r["epoch_seconds"] for r in rows) / 3 * 1
    )
    kinds = [m["type"] for m in read_messages(run.folder)]
    assert kinds == ["started", "epoch", "epoch", "epoch", "finished"]


def test_field_sources_fill_beneath_the_users_values(run: cw.Run) -> None:
    seen: list[int] = []

    def health(epoch: int) -> dict[str, Any]:
        seen.append(epoch)
        return {"logit_std": 0.5, "clip_pct": 10.0, "shd": None, "probe": epoch}

    def broken(epoch: int) -> dict[str, Any]:
        raise RuntimeError("a bug in a source costs its fields only")

    run.add_field_source(health)
    run.add_field_source(broken)
    run.log({"clip_pct": 99.0, "share_recon": 40.0, "loss_recon": 1.0}, step=0)
    run.log({"loss_recon": 1.0}, step=1)
    run.finish()
    first, second = records(run)
    assert seen == [1, 2]
    assert first["clip_pct"] == 99.0 and first["logit_std"] == 0.5  # the user's key wins
    assert second["clip_pct"] == 10.0 and "shd" not in second
    assert first["custom"] == {"probe": 1.0} and second["custom"] == {"probe": 2.0}
    assert first["share_recon"] == 40.0 and "share_sparse" not in first  # given, not derived


def test_log_graph_goes_with_the_open_rows_epoch(run: cw.Run) -> None:
    run.log({"loss_recon": 1.0}, step=0)
    run.log_graph([[0.0, 0.9], [0.1, 0.0]])  # the open row: epoch 1
    run.log({"loss_recon": 1.0}, step=1)
    run.log_graph([[0.0, 0.8], [0.2, 0.0]], step=2)  # completes step 1's row: epoch 3
    run.finish()
    graphs = [m for m in read_messages(run.folder) if m["type"] == "graph"]
    assert [g["epoch"] for g in graphs] == [1, 3]
    assert [(r["epoch"], r["step"]) for r in records(run)] == [(1, 0), (2, 1), (3, 2)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"loss_recon": "1.0"}, "loss_recon: must be a number, got str '1.0'"),
        ({"my_metric": None}, "my_metric: must be a number, got NoneType None"),
        ({"loss_total": float("nan")}, "loss_total: must be a finite number, got nan"),
        ({"acc": float("inf")}, "acc: must be a finite number, got inf"),
        ({"has space": 1.0}, "'has space': a key is 1–64 characters"),
        ({"k" * 65: 1.0}, "k': a key is 1–64 characters"),
        ({3: 1.0}, "3: keys must be strings, got int"),
        ({"clip_pct": 101}, "clip_pct: must be ≤ 100, got 101.0"),
        ({"edges_at_05": 2.5}, "edges_at_05: must be a whole number, got 2.5"),
        ({"grad_norm_recon": -1.0}, "grad_norm_recon: must be ≥ 0, got -1.0"),
        ({f"k{i}": 1.0 for i in range(101)}, "custom keys: at most 100 per row, got 101"),
    ],
)
def test_bad_values_raise_naming_the_key(run: cw.Run, data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run.log(data, step=0)
    run.log({"loss_total": 1.0}, step=0)  # the run goes on
    run.finish()
    assert len(records(run)) == 1


def test_bad_steps_graphs_and_arguments_raise_naming_them(run: cw.Run, tmp_path: Path) -> None:
    run.log({"a": 1.0}, step=3)
    with pytest.raises(ValueError, match=re.escape("step: 2 is before the open row's step 3")):
        run.log({"a": 1.0}, step=2)
    run.log({"a": 1.0}, step=4, commit=True)  # sent now: step 4 is closed
    with pytest.raises(ValueError, match=re.escape("step: 4 was already sent")):
        run.log({"a": 1.0}, step=4)
    with pytest.raises(ValueError, match=r"^step: must be a whole number, got 1.5"):
        run.log({"a": 1.0}, step=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^probabilities: 3 × 3 for a run over 2 variables"):
        run.log_graph([[0.0] * 3] * 3)
    with pytest.raises(ValueError, match=r"^probabilities\[0\]\[1\]: must be in \[0, 1\]"):
        run.log_graph([[0.0, 1.5], [0.0, 0.0]])
    run.finish()
    missing = tmp_path / "edges.csv"
    with pytest.raises(ValueError, match=re.escape(f"reference {missing}: file not found")):
        cw.init(mode="offline", dir=tmp_path, reference=missing)
    with pytest.raises(ValueError, match=re.escape("reference: 'z' is not one of the variables")):
        cw.init(mode="offline", dir=tmp_path, variables=["x", "y"], reference=[("x", "z")])
    with pytest.raises(ValueError, match=re.escape("config.seed: must be JSON")):
        cw.init(mode="offline", dir=tmp_path, config={"seed": object()})
    with pytest.raises(ValueError, match=re.escape("server: must look like http://host:port")):
        cw.init(server="localhost:8000")
    with pytest.raises(ValueError, match=re.escape("mode: must be one of 'auto', 'online'")):
        cw.init(mode="later", dir=tmp_path)  # type: ignore[typeddict-item]
    # A misspelt option is refused as a misspelt keyword argument is, not ignored.
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'epoch'$"):
        cw.init(mode="offline", dir=tmp_path, epoch=3)  # type: ignore[call-arg]
    with pytest.raises(RuntimeError, match=r"no run is open; call causalwatch.init\(\) first"):
        cw.log({"a": 1.0})


def test_reference_files_csv_and_json(tmp_path: Path) -> None:
    csv_file = tmp_path / "edges.csv"
    csv_file.write_text("cause,effect\nx,y\ny,z\n")
    json_file = tmp_path / "edges.json"
    json_file.write_text('{"edges": [{"from": "x", "to": "y"}]}')
    for path, edges in ((csv_file, [("x", "y"), ("y", "z")]), (json_file, [("x", "y")])):
        run = cw.init(mode="offline", dir=tmp_path, reference=path)
        assert run.reference == edges
        started = read_messages(run.folder)[0]
        assert started["data"]["reference_kind"] == "user"
        assert started["data"]["reference_edges"] == [list(e) for e in edges]
        run.finish()


def test_a_torn_last_line_is_skipped(run: cw.Run) -> None:
    run.log({"a": 1.0})
    run.finish()
    journal = run.folder / "messages.jsonl"
    with journal.open("a") as f:
        f.write('{"v": 1, "type": "epo')  # a process killed mid-write
    assert [m["type"] for m in read_messages(run.folder)] == ["started", "epoch", "finished"]


def test_import_causalwatch_loads_nothing_heavy() -> None:
    code = (
        "import sys, causalwatch\n"
        "heavy = {'torch', 'pydantic', 'websockets', 'httpx', 'numpy', 'trainer'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip() == "[]"


FORKING_SCRIPT = """
import os, sys
import causalwatch as cw
from causalwatch.local import read_messages
run = cw.init(mode="offline", dir=sys.argv[1])
run.log({"a": 1.0})
if os.fork() == 0:
    sys.exit(0)  # a worker process ending normally: its atexit handlers run
os.wait()
print(",".join(m["type"] for m in read_messages(run.folder)))
"""


def test_a_forked_child_exiting_does_not_finish_the_parents_run(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", FORKING_SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=True)
    # The child left the parent's run alone; the parent's own exit finished it.
    assert proc.stdout.strip() == "started,epoch"
    (folder,) = tmp_path.iterdir()
    assert [m["type"] for m in read_messages(folder)] == ["started", "epoch", "finished"]


def test_appending_to_a_journal_first_cuts_its_torn_line(tmp_path: Path) -> None:
    from causalwatch.local import Journal

    journal = tmp_path / "messages.jsonl"
    journal.write_text('{"type": "started"}\n{"type": "epo')
    appender = Journal(tmp_path)  # e.g. sync closing a killed run with its `failed`
    appender.write('{"type": "failed"}')
    appender.close()
    assert journal.read_text() == '{"type": "started"}\n{"type": "failed"}\n'
    assert [m["type"] for m in read_messages(tmp_path)] == ["started", "failed"]
