"""Fix efficacy: how often one click on a red flag's suggested fix repairs the run (issue 11).

Corpus: the configurations of docs/presets.md, "Configurations that make each red flag appear
on real data", plus the presets `standard` and `uci` as they are, each over seeds 0, 1, 2
(`seed` overridden), on the real UCI data (`--data`) with a reduced epoch budget
(`--epochs`, default 30; `patience` 0 so early stopping cannot end a run before a rule's
epoch). 30 is the smallest budget at which the Good scorecard can be judged (its criteria
read epoch 30). Everything runs through one real backend (`causalwatch up --no-dashboard`,
SQLite in a temp dir, `--max-runs 2`), through its public API only:

1. each corpus run is created (`POST /api/runs`) and waited for; its alerts are read;
2. for every fired alert with `suggested_changes`, the run is restarted with it
   (`POST /api/runs/{id}/restart {"alert_id": ...}`, which keeps the parent's config, budget
   and seed) and the child is waited for. Recorded per alert:
   - cleared: the same rule did not fire in the child;
   - both figures below are read at a run's label-free best checkpoint (`best_epoch`, the
     lowest `val_recon`, chosen without the reference graph: what a user would keep; its F1
     is the run's `f1_at_best`), or at its last evaluation when it has none (a run that
     failed early); `max_f1_seen` is printed beside F1, not judged;
   - val_recon worse: the child's is higher than the parent's. Not compared when the fix
     changes `standardize` (raw-scale MSE against standardized MSE); a parent with no
     evaluation leaves nothing to be worse than;
   - F1 worse: the child's is below the parent's;
   - repaired = cleared and neither worse. No tolerance: any worse value counts.
   Alerts without a suggested change count as "no fix offered", outside the rate.
3. clicks from `standard` (seed 0) to the Minimum and Good scorecard
   (`GET /api/runs/{id}/scorecard`): follow the top fix, the first alert in the run page's
   order (the API's: creation order) whose "Restart with this fix" button is enabled (it has
   a suggested change), up to 3 restarts.

Identical child configs (the same patch reached twice) run once; the corpus restart of
`standard` seed 0's top alert is the chain's first click. At most `--max-runs` runs are in
the backend at once, so the click chain can go ahead of the queue.

Cost: trainer CPU seconds (user + system of every reaped trainer process, read from the
backend process's children times: includes torch import and data load) and training-loop
seconds (sum of the runs' `epoch_seconds`).

Prints markdown tables on stdout (progress on stderr); `--out` also writes them.

    .venv/bin/python bench/fix_efficacy.py [--quick] [--seeds 3] [--epochs 30] [--data PATH]
        [--out FILE.md] [--keep]

`--quick`: seed 0 only, 12 epochs (clip_high fires at 11; f1_stalled and the scorecard's
epoch-20/30 criteria cannot be reached), a smoke test of the machinery.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import itertools
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import Backend, add_backend_args, drop_temp_dir, loadavg, stage

from backend.thresholds import VERIFY_F1_TOLERANCE, VERIFY_VAL_RECON_TOLERANCE

# The corpus. A copy of docs/presets.md's table "Configurations that make each red flag appear
# on real data", as tests/backend/test_red_flags_e2e.py's PATHOLOGIES runs it (tests/ is not a
# package, and the test cuts each configuration to its own epochs; here one budget serves all).
# The recon-share line uses λ_sparse 13, the test's value since sparsity became per variable
# (docs/presets.md still says 1). The clip%, raw-variance, near-deterministic and F1-stall
# lines are `standard` (or `uci`) itself. (label, preset, overrides)
CORPUS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("standard", "standard", {}),
    ("uci", "uci", {}),
    ("uci, adjacency_lr_scale=1", "uci", {"adjacency_lr_scale": 1.0}),
    ("uci, λ_sparse=13, sigmoid", "uci",
     {"lambda_sparse": 13.0, "sparsify_method": "sigmoid"}),
    ("uci, dagma, λ_acyclic=1", "uci", {"acyclicity": "dagma", "lambda_acyclic": 1.0}),
)
CHAIN_START = "standard"  # the story's failing start (DESIGN.md)
MAX_CLICKS = 3
MAX_RUNS = 2  # trainer slots: one per core
RUN_TIMEOUT = 900.0  # seconds a run may take once submitted before it is stopped
POLL = 1.0  # seconds between status polls
FINISHED = ("completed", "stopped", "failed")


# --- one finished run, as the API shows it ---------------------------------------------------


@dataclass
class RunResult:
    id: str
    config: dict[str, Any]
    status: str
    status_reason: str
    alerts: list[dict[str, Any]]
    # Judged at the best checkpoint (best_epoch: lowest val_recon, chosen without the
    # reference), else at the last evaluation (a run that failed before it had one).
    f1: float | None  # = f1_at_best when at_best
    max_f1_seen: float | None
    val_recon: float | None
    judged_epoch: int | None
    at_best: bool
    levels: dict[str, bool | None]  # scorecard level → achieved
    loop_seconds: float  # sum of epoch_seconds
    epochs: int

    @property
    def rules(self) -> set[str]:
        return {a["rule"] for a in self.alerts}

    def top_fix(self) -> dict[str, Any] | None:
        """The first alert whose restart button is enabled on the run page."""
        return next((a for a in self.alerts if fix_of(a)), None)


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    resp = client.get(path, params=params)
    if resp.status_code != 200:
        raise SystemExit(f"GET {path}: {resp.status_code} {resp.text[:500]}")
    return resp.json()


PROBE_WAIT = 1800.0  # seconds a finished run's alerts may wait for their probes' verdicts


def _settled_alerts(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """The run's alerts once no probe verdict is pending (at once when probes are off)."""
    deadline = time.monotonic() + PROBE_WAIT
    while True:
        alerts = _get(client, f"/api/runs/{run_id}/alerts")
        pending = [a for a in alerts if (a.get("verification") or {}).get("status") == "pending"]
        if not pending or time.monotonic() > deadline:
            return alerts
        time.sleep(POLL)


def probe_verdict(alert: dict[str, Any]) -> str:
    if alert.get("fix_verified"):
        return "verified"
    return str((alert.get("verification") or {}).get("status") or "not probed")


def fix_of(alert: dict[str, Any]) -> dict[str, Any]:
    """What the alert's restart button applies: the best verified probe's patch, else the
    rule's first choice."""
    return dict(alert.get("fix", alert["suggested_changes"]))


def collect(client: httpx.Client, run_id: str) -> RunResult:
    run = _get(client, f"/api/runs/{run_id}")
    records = _get(client, f"/api/runs/{run_id}/metrics",
                   fields="epoch,val_recon,f1,epoch_seconds")
    evals = [r for r in records if r.get("val_recon") is not None]
    best = next((r for r in evals if r["epoch"] == run.get("best_epoch")), None)
    judged = best or (evals[-1] if evals else None)
    # The best checkpoint's F1 is the run's f1_at_best; the two are read from one record.
    assert best is None or best.get("f1") == run.get("f1_at_best"), (run_id, best, run)
    card = _get(client, f"/api/runs/{run_id}/scorecard")
    return RunResult(
        id=run_id,
        config=run["config"],
        status=run["status"],
        status_reason=((run.get("status_reason") or "").splitlines() or [""])[0],
        alerts=_settled_alerts(client, run_id),
        f1=judged.get("f1") if judged else None,
        max_f1_seen=run.get("max_f1_seen"),
        val_recon=judged["val_recon"] if judged else None,
        judged_epoch=judged["epoch"] if judged else None,
        at_best=best is not None,
        levels={lv["level"]: lv["achieved"] for lv in card["levels"]},
        loop_seconds=sum(r.get("epoch_seconds") or 0.0 for r in records),
        epochs=len(records),
    )


# --- a small scheduler: at most MAX_RUNS runs in the backend, chain first ------------------


@dataclass
class Request:
    """A run to make: `POST /api/runs` (no parent) or a restart of `parent` with `alert`."""

    key: str  # the resulting config, as JSON: identical configs run once
    preset: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    parent: str | None = None
    alert_id: int | None = None
    waiters: list[Callable[[RunResult], None]] = field(default_factory=list)
    run_id: str | None = None
    submitted_at: float = 0.0
    result: RunResult | None = None


def config_key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


class Lab:
    def __init__(self, backend: Backend, max_active: int) -> None:
        self.backend = backend
        self.client = backend.client
        self.max_active = max_active
        self._queue: list[tuple[int, int, Request]] = []
        self._seq = itertools.count()
        self._by_key: dict[str, Request] = {}
        self._active: dict[str, Request] = {}
        self.results: dict[str, RunResult] = {}
        self.deduped = 0

    def ask(self, req: Request, then: Callable[[RunResult], None], priority: int = 1) -> None:
        known = self._by_key.get(req.key)
        if known is not None:
            self.deduped += 1
            if known.result is not None:
                then(known.result)
            else:
                known.waiters.append(then)
            return
        req.waiters.append(then)
        self._by_key[req.key] = req
        heapq.heappush(self._queue, (priority, next(self._seq), req))

    def _submit(self, req: Request) -> None:
        if req.parent is None:
            resp = self.client.post("/api/runs", json={
                "preset": req.preset, "overrides": req.overrides, "name": req.name})
        else:
            # The bench runs each config once itself (Request.key); a user run of the same
            # config, e.g. another seed's chain, is no reason to refuse.
            resp = self.client.post(f"/api/runs/{req.parent}/restart",
                                    json={"alert_id": req.alert_id, "allow_repeat": True})
        if resp.status_code != 201:
            raise SystemExit(f"{resp.request.url}: {resp.status_code} {resp.text[:500]}")
        req.run_id = str(resp.json()["id"])
        req.submitted_at = time.monotonic()
        self._active[req.run_id] = req
        print(f"  started {req.run_id} ({req.name or 'restart'})", file=sys.stderr)

    def run(self) -> None:
        while self._queue or self._active:
            while self._queue and len(self._active) < self.max_active:
                self._submit(heapq.heappop(self._queue)[2])
            time.sleep(POLL)
            for run_id, req in list(self._active.items()):
                status = _get(self.client, f"/api/runs/{run_id}")["status"]
                if status not in FINISHED:
                    if time.monotonic() - req.submitted_at > RUN_TIMEOUT:
                        self.client.post(f"/api/runs/{run_id}/stop")
                    continue
                del self._active[run_id]
                req.result = self.results[run_id] = collect(self.client, run_id)
                print(f"  {run_id}: {status}, alerts {sorted(req.result.rules)}",
                      file=sys.stderr)
                for then in req.waiters:
                    then(req.result)


# --- the bench ----------------------------------------------------------------------------


@dataclass
class Repair:
    """One fired alert of a corpus run, and what its fix did."""

    label: str
    seed: int
    order: tuple[int, int]  # (corpus line, alert position): the report's row order
    rule: str
    patch: dict[str, Any]
    parent: RunResult
    child: RunResult | None = None
    # What the probes said of the fix tried: verified, or the alert's status when none was
    # (refuted, cancelled, pending), "not probed" without probes.
    probe: str = "not probed"

    @property
    def offered(self) -> bool:
        return bool(self.patch)

    @property
    def cleared(self) -> bool:
        return self.child is not None and self.rule not in self.child.rules

    @property
    def recon_comparable(self) -> bool:
        return "standardize" not in self.patch and self.parent.val_recon is not None

    @property
    def recon_worse(self) -> bool:
        if self.child is None or not self.recon_comparable:
            return False
        assert self.parent.val_recon is not None
        # A child with no evaluation at all has nothing to show: worse.
        return self.child.val_recon is None or self.child.val_recon > self.parent.val_recon

    @property
    def f1_worse(self) -> bool:
        if self.child is None or self.parent.f1 is None:
            return False
        return self.child.f1 is None or self.child.f1 < self.parent.f1

    @property
    def repaired(self) -> bool:
        return self.cleared and not self.recon_worse and not self.f1_worse

    @property
    def repaired_within_tolerance(self) -> bool:
        """Repaired by the probes' own standard: worse only beyond their tolerances (val_recon
        up more than 5%, F1 down more than 0.05; backend/thresholds.py)."""
        if not self.cleared or self.child is None:
            return False
        p, c = self.parent, self.child
        if self.recon_comparable and p.val_recon is not None and (
            c.val_recon is None or c.val_recon > p.val_recon * (1 + VERIFY_VAL_RECON_TOLERANCE)
        ):
            return False
        return p.f1 is None or (c.f1 is not None and c.f1 >= p.f1 - VERIFY_F1_TOLERANCE)


@dataclass
class Click:
    step: int  # 0: the start run
    run: RunResult
    via: str  # the rule whose fix made this run ("" for the start)
    patch: dict[str, Any]


class Bench:
    def __init__(self, lab: Lab, seeds: list[int], epochs: int) -> None:
        self.lab = lab
        self.seeds = seeds
        self.budget = {"epochs": epochs, "patience": 0}
        self.repairs: list[Repair] = []
        self.clicks: list[Click] = []
        self.chain_end = ""

    def start(self) -> None:
        # The chain's start first, at the chain's priority, so its clicks are not queued last.
        for seed in self.seeds:
            for line, (label, preset, overrides) in enumerate(CORPUS):
                chain = seed == self.seeds[0] and label == CHAIN_START
                over = {**overrides, **self.budget, "seed": seed}
                req = Request(key=f"{preset}:{config_key(over)}", preset=preset, overrides=over,
                              name=f"fix-efficacy {label} seed {seed}")
                self.lab.ask(req, lambda res, ln=line, sd=seed, ch=chain:
                             self._parent_done(ln, sd, res, ch), priority=0 if chain else 1)

    def _restart(self, parent: RunResult, alert: dict[str, Any],
                 then: Callable[[RunResult], None], priority: int) -> None:
        key = config_key({**parent.config, **fix_of(alert)})
        self.lab.ask(Request(key=key, parent=parent.id, alert_id=alert["id"]), then, priority)

    def _parent_done(self, line: int, seed: int, res: RunResult, chain: bool) -> None:
        if chain:
            self._clicked(Click(0, res, "", {}))
        for i, alert in enumerate(res.alerts):
            rep = Repair(CORPUS[line][0], seed, (line, i), alert["rule"], fix_of(alert), res,
                         probe=probe_verdict(alert))
            self.repairs.append(rep)
            if rep.offered:
                self._restart(res, alert, lambda child, r=rep: setattr(r, "child", child),
                              priority=0 if chain else 1)

    def _clicked(self, click: Click) -> None:
        self.clicks.append(click)
        if click.run.levels.get("Good"):
            self.chain_end = "Good reached"
            return
        if click.step >= MAX_CLICKS:
            self.chain_end = f"{MAX_CLICKS} restarts made"
            return
        top = click.run.top_fix()
        if top is None:
            self.chain_end = f"dead end: no alert of click {click.step}'s run offers a fix"
            return
        self._restart(click.run, top, lambda child, s=click.step + 1, t=top: self._clicked(
            Click(s, child, t["rule"], fix_of(t))), priority=0)


# --- report -------------------------------------------------------------------------------


def _f(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _last(run: RunResult) -> str:
    """Marks a value read at the last evaluation: the run has no best checkpoint."""
    return "" if run.at_best or run.judged_epoch is None else f" (last eval, ep {run.judged_epoch})"


def _patch(patch: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in patch.items()) or "—"


def _rate(n: int, d: int) -> str:
    return f"{n}/{d} = {100 * n / d:.0f}%" if d else "—"


def rule_table(repairs: list[Repair], probes: bool) -> list[str]:
    mode = "with probes (the verified fix)" if probes else "without probes (first choice)"
    lines = [
        "| rule | fired | no fix offered | fix tried | cleared | val_recon worse | F1 worse "
        f"| repaired | repair rate, {mode} | within the probes' tolerances |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rules = sorted({r.rule for r in repairs}, key=[r.rule for r in repairs].index)
    for name in [*rules, None]:
        rows = [r for r in repairs if name is None or r.rule == name]
        tried = [r for r in rows if r.offered]
        cells = [
            f"`{name}`" if name else "**all**", str(len(rows)), str(len(rows) - len(tried)),
            str(len(tried)), str(sum(r.cleared for r in tried)),
            str(sum(r.recon_worse for r in tried)), str(sum(r.f1_worse for r in tried)),
            str(sum(r.repaired for r in tried)),
            _rate(sum(r.repaired for r in tried), len(tried)),
            _rate(sum(r.repaired_within_tolerance for r in tried), len(tried)),
        ]
        if name is None:
            cells = [f"**{c}**" if i else c for i, c in enumerate(cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def detail_table(repairs: list[Repair]) -> list[str]:
    lines = [
        "| configuration | seed | rule | fix tried | probes said | child fired it again | "
        "val_recon parent → child | F1 parent → child (max seen) | repaired |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in repairs:
        if not r.offered:
            continue
        c = r.child
        if c is None:
            lines.append(f"| {r.label} | {r.seed} | `{r.rule}` | {_patch(r.patch)} | {r.probe} | "
                         "child did not finish | | | no |")
            continue
        f1 = (f"{_f(r.parent.f1)}{_last(r.parent)} → {_f(c.f1)}{_last(c)} "
              f"({_f(r.parent.max_f1_seen)} → {_f(c.max_f1_seen)})")
        recon = (f"{_f(r.parent.val_recon, '.4g')}{_last(r.parent)} → "
                 f"{_f(c.val_recon, '.4g')}{_last(c)}")
        if not r.recon_comparable:
            recon += " (not compared)"
        again = "yes" if r.rule in c.rules else "no"
        if c.status != "completed":
            again += f" (child {c.status})"
        worse = [w for w, bad in (("val_recon", r.recon_worse), ("F1", r.f1_worse)) if bad]
        verdict = ("**yes**" if r.repaired
                   else "no: " + ", ".join((["not cleared"] if not r.cleared else []) + [
                       f"{w} worse" for w in worse]))
        lines.append(f"| {r.label} | {r.seed} | `{r.rule}` | {_patch(r.patch)} | {r.probe} | "
                     f"{again} | {recon} | {f1} | {verdict} |")
    return lines


def probe_lines(repairs: list[Repair]) -> list[str]:
    """How well a probe's verdict (10–11 epochs) foretold the full run's repair."""
    tried = [r for r in repairs if r.offered and r.probe != "not probed"]
    if not tried:
        return []
    parts = []
    for verdict in sorted({r.probe for r in tried}):
        rows = [r for r in tried if r.probe == verdict]
        parts.append(f"{verdict}: {sum(r.repaired for r in rows)}/{len(rows)} repaired")
    return ["- what the probes said of each fix tried, against the full run: "
            + "; ".join(parts)]


def no_fix_lines(repairs: list[Repair]) -> list[str]:
    counts: dict[str, int] = {}
    for r in repairs:
        if not r.offered:
            counts[r.rule] = counts.get(r.rule, 0) + 1
    return [f"- no fix offered: {', '.join(f'`{k}` ×{v}' for k, v in counts.items())}"] \
        if counts else []


def chain_table(clicks: list[Click]) -> list[str]:
    lines = [
        "| clicks | run made by the top fix of | change | Minimum | Good | F1 | "
        "alerts in page order (top fix in bold) |",
        "|---|---|---|---|---|---|---|",
    ]
    word = {True: "met", False: "missed", None: "pending"}
    for c in sorted(clicks, key=lambda c: c.step):
        top = c.run.top_fix()
        fired = ", ".join(f"**{a['rule']}**" if a is top else a["rule"] for a in c.run.alerts)
        lines.append(
            f"| {c.step} | {'`' + c.via + '`' if c.via else '(start: `standard`)'} | "
            f"{_patch(c.patch)} | {word[c.run.levels.get('Minimum')]} | "
            f"{word[c.run.levels.get('Good')]} | {_f(c.run.f1)} | {fired or '—'} |"
        )
    return lines


def clicks_to(clicks: list[Click], level: str, chain_end: str) -> str:
    for c in sorted(clicks, key=lambda c: c.step):
        if c.run.levels.get(level):
            return f"{c.step}"
    made = max((c.step for c in clicks), default=0)
    return f"not reached in {made} (chain ended: {chain_end})"


def cpu_line(backend: Backend, lab: Lab, bench: Bench) -> list[str]:
    assert backend.ps is not None
    times = backend.ps.cpu_times()
    trainer_cpu = times.children_user + times.children_system
    results = list(lab.results.values())
    parents = {r.parent.id for r in bench.repairs}
    children = {r.child.id: r.child for r in bench.repairs if r.child is not None}
    loop_all = sum(r.loop_seconds for r in results)
    loop_fix = sum(c.loop_seconds for c in children.values())
    tried = sum(r.offered for r in bench.repairs)
    per_alert = loop_fix / tried if tried else 0.0
    chain_only = len(results) - len(parents) - len(children)
    probes = _get(backend.client, "/api/runs", kind="probe", limit=5000)["runs"]
    probed = {p["parent_alert_id"] for p in probes}
    probe_loop = sum(
        sum(r.get("epoch_seconds") or 0.0
            for r in _get(backend.client, f"/api/runs/{p['id']}/metrics", fields="epoch_seconds"))
        for p in probes
    )
    probe_text = (
        f"probes: {len(probes)} runs for {len(probed)} alerts, training loops "
        f"{probe_loop:,.0f} s = **{probe_loop / len(probed):.0f} s per probed alert** "
        "(their CPU is inside the trainer CPU above)"
        if probed else "probes: none (run without --probes)"
    )
    return [
        f"- cost: {len(results)} trainer runs ({len(parents)} corpus runs, {len(children)} "
        f"runs of their fixes, {chain_only} more for the click chain; {lab.deduped} "
        f"restart(s) reused the run of an identical config); trainer processes' CPU "
        f"{trainer_cpu:,.0f} s (user + system of every reaped trainer, incl. start-up); "
        f"training loops {loop_all:,.0f} s (sum of `epoch_seconds`), of which the corpus "
        f"fixes' runs {loop_fix:,.0f} s = **{per_alert:.0f} s per fix tried** (one "
        f"full-budget run per click); {probe_text}",
    ]


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), no GPU"


def report(args: argparse.Namespace, command: str, backend: Backend, lab: Lab, bench: Bench,
           *, wall: float, load_start: float) -> str:
    load_end = loadavg()[0]
    repairs = sorted(bench.repairs, key=lambda r: (r.seed, r.order))
    lines = [
        f"{dt.date.today().isoformat()}, {machine()}; load average (1 min) at start / end "
        f"{load_start:.1f} / {load_end:.1f}; wall {wall / 60:.1f} min. Seeds "
        f"{', '.join(map(str, bench.seeds))}; budget {args.epochs} epochs, patience 0 "
        f"(children inherit it); real UCI data; one backend, `--max-runs {MAX_RUNS}`, "
        + ("probes on (`--max-probes 1`): each fix tried is the alert's best verified one, "
           "else its first choice." if args.probes else "probes off: each fix tried is the "
           "rule's first choice."),
        "",
        *rule_table(repairs, args.probes),
        "",
        *no_fix_lines(repairs),
        *probe_lines(repairs),
        f"- clicks on the top fix from `standard` (seed {bench.seeds[0]}) to **Minimum: "
        f"{clicks_to(bench.clicks, 'Minimum', bench.chain_end)}**, to **Good: "
        f"{clicks_to(bench.clicks, 'Good', bench.chain_end)}**",
        *cpu_line(backend, lab, bench),
        "",
        "Per fix tried. val_recon and F1 are read at the label-free best checkpoint "
        "(`best_epoch`, lowest val_recon; that F1 is the run's `f1_at_best`), or at the last "
        "evaluation when a run has none (marked); `max_f1_seen` in brackets, not judged. "
        "val_recon is not compared across a change of `standardize` (raw-scale MSE).",
        "",
        *detail_table(repairs),
        "",
        "Clicking only the top fix (the first alert, in the run page's order, whose restart "
        f"button is enabled), from `standard` seed {bench.seeds[0]}:",
        "",
        *chain_table(bench.clicks),
        "",
        f"`{command}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (3)")
    parser.add_argument("--epochs", type=int, help="budget of every run (30; --quick 12)")
    parser.add_argument("--quick", action="store_true", help="seed 0, 12 epochs: a smoke test")
    parser.add_argument("--probes", action="store_true",
                        help="the backend probes each alert's fixes (--max-probes 1) and the "
                             "restart applies the best verified one; without: the rule's first "
                             "choice, unprobed")
    add_backend_args(parser, out_help="also write the markdown report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    if args.epochs is None:
        args.epochs = 12 if args.quick else 30
    if args.seeds < 1 or args.epochs < 1:
        parser.error("--seeds and --epochs must be at least 1")
    if not args.data:
        parser.error("--data: the UCI CSV is needed (or CAUSALWATCH_DATA)")
    command = ".venv/bin/python bench/fix_efficacy.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-fix-"))
    backend = Backend(tmp, Path(args.data).resolve(), max_runs=MAX_RUNS,
                      max_probes=1 if args.probes else 0)
    load_start = loadavg()[0]
    t0 = time.monotonic()
    try:
        with stage("backend start"):
            backend.start()
        lab = Lab(backend, MAX_RUNS)
        bench = Bench(lab, list(range(args.seeds)), args.epochs)
        with stage("runs"):
            bench.start()
            lab.run()
        text = report(args, command.strip(), backend, lab, bench, wall=time.monotonic() - t0,
                      load_start=load_start)
    finally:
        backend.stop()
    print(text)
    if args.out:
        args.out.write_text(text, "utf-8")
    drop_temp_dir(tmp, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
