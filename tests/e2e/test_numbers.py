"""Numbers on real pages are written by dashboard/format.py: no "None", no raw floats."""

from __future__ import annotations

import json
import re
from typing import Any

from utils.backend_server import BackendServer
from utils.dashboard_browser import DashboardPage
from websockets.sync.client import connect

from trainer.protocol import EpochRecord

EPOCHS = 20  # the scorecard's Minimum level is judged from epoch 20
RAW_FLOAT = re.compile(r"\d\.\d{4,}")  # 0.210526, 85.9649: unformatted


def _fed_run(stack: BackendServer, **overrides: Any) -> str:
    """A run of kind sdk whose records carry long floats, as a trainer sends them."""
    run_id = str(stack.create_sdk("synthetic", epochs=EPOCHS, **overrides)["id"])
    frames = []
    for epoch in range(1, EPOCHS + 1):
        record = {name: 0.0 for name in EpochRecord.model_fields if name != "custom"}
        evaluated = epoch % 2 == 0
        record.update(
            run_id=run_id, epoch=epoch, step=epoch, time=1.7e9 + epoch, loss_total=2.0,
            loss_recon=2.0, share_recon=100.0, clip_pct=85.9649, logit_std=2.94428,
            edges_at_05=3, edges_tuned=3, edges_topk=13, threshold_tuned=0.5,
            shd=12 if evaluated else None, f1=0.210526 if evaluated else None,
            precision=None, recall=None, f1_skeleton=0.3333333 if evaluated else None,
            val_recon=0.123456 if evaluated else None, is_best=epoch == 4,
            epoch_seconds=0.1, eta_seconds=1.0, lr=1e-4,
        )
        frames.append(json.dumps({"v": 1, "type": "epoch", "run_id": run_id,
                                  "seq": epoch, "record": record}))
    with connect(f"{stack.ws_url}/ws/ingest/{run_id}", open_timeout=10,
                 additional_headers=stack.ingest_headers(run_id)) as ws:
        for frame in frames:
            ws.send(frame)
        for _ in frames:
            reply = json.loads(ws.recv(timeout=30))
            assert reply["type"] == "ack", reply
    assert stack.client.post(f"/api/runs/{run_id}/stop").status_code == 200
    return run_id


def _clean(text: str) -> None:
    assert "None" not in text and "nan" not in text.lower(), text
    assert not RAW_FLOAT.search(text), RAW_FLOAT.findall(text)


def test_scorecard_header_and_compare_table_show_formatted_numbers(
    page: DashboardPage, stack: BackendServer
) -> None:
    tiny = _fed_run(stack, lambda_sparse=2.24e-10)
    other = _fed_run(stack, lambda_sparse=1e-5, topk_edges=15)

    page.open(f"/run/{tiny}")
    scorecard = page.wait_text("#run-scorecard", lambda t: "86.0%" in t, 30,
                               "clip % in the scorecard as 86.0%")
    assert "0.21" in scorecard and "2.94" in scorecard
    _clean(scorecard)
    header = page.wait_text("#run-f1-at-best", lambda t: t.startswith("epoch 4"), 20)
    assert header == "epoch 4: F1 0.21, SHD 12"
    _clean(header + page.text("#run-max-f1"))

    page.open(f"/compare?runs={tiny},{other}")
    table = page.wait_text(".compare-table", lambda t: "lambda_sparse" in t, 30,
                           "the side-by-side table")
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.strip()}
    assert rows["lambda_sparse"] == ["2.24e-10", "1e-5"], rows
    assert rows["topk_edges"] == ["—", "15"], rows  # a missing value, not "None"
    _clean(table)
    page.assert_clean()
