"""Numbers on real pages are written by dashboard/format.py: no "None", no raw floats."""

from __future__ import annotations

import re
from typing import Any

from utils.backend_server import BackendServer
from utils.dashboard_browser import DashboardPage
from utils.records import epoch_record
from utils.sdk_feed import feed_records

EPOCHS = 20  # the scorecard's Minimum level is judged from epoch 20
RAW_FLOAT = re.compile(r"\d\.\d{4,}")  # 0.210526, 85.9649: unformatted


def _fed_run(stack: BackendServer, **overrides: Any) -> str:
    """A run of kind sdk whose records carry long floats, as a trainer sends them."""
    run_id = str(stack.create_sdk("synthetic", epochs=EPOCHS, **overrides)["id"])
    evaluation = {"shd": 12, "f1": 0.210526, "f1_skeleton": 0.3333333, "val_recon": 0.123456}
    feed_records(stack, run_id, [
        epoch_record(epoch, run_id, clip_pct=85.9649, logit_std=2.94428, is_best=epoch == 4,
                     **(evaluation if epoch % 2 == 0 else {}))
        for epoch in range(1, EPOCHS + 1)
    ])
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
