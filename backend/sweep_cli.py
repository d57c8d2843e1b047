"""`causalwatch sweep`: queue a grid (or random search) over config fields × seeds on a
running backend, which starts the members on its executor (local or Ray)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx

from backend.sweeps import SweepError, parse_grid, parse_seeds
from trainer.config import ConfigError, parse_overrides

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FINISHED = ("completed", "stopped", "failed")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="causalwatch sweep",
        description="Queue a sweep on a running backend: every combination of the --grid "
        "values × every seed is one run (a member).",
    )
    p.add_argument("--preset", default="healthy", help="the members' preset (default healthy)")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                   help="a config field and the values to try (repeatable)")
    p.add_argument("--seeds", default="0", help="seeds of each combination: 0-4, 0,2,5 (default 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config field every member gets (repeatable)")
    p.add_argument("--samples", type=int,
                   help="random search: this many of the grid's combinations, drawn at random")
    # Named as `causalwatch sync` and the SDK name it: one flag, one variable, every client.
    p.add_argument("--server",
                   default=os.environ.get("CAUSALWATCH_SERVER", "http://127.0.0.1:8000"),
                   help="the causalwatch server (default $CAUSALWATCH_SERVER, else "
                   "http://127.0.0.1:8000); its token, if any, from $CAUSALWATCH_TOKEN")
    p.add_argument("--wait", action="store_true",
                   help="wait for every member to end, then print each one's result")
    return p


def sweep_main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        body: dict[str, Any] = {
            "preset": args.preset, "grid": parse_grid(args.grid),
            "seeds": parse_seeds(args.seeds), "overrides": parse_overrides(args.overrides),
        }
    except (SweepError, ConfigError) as err:
        print(f"causalwatch sweep: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.samples is not None:
        body["samples"] = args.samples
    headers = {"X-Causalwatch-Client": "cli"}
    if os.environ.get("CAUSALWATCH_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['CAUSALWATCH_TOKEN']}"
    with httpx.Client(base_url=args.server, headers=headers, timeout=60) as client:
        try:
            resp = client.post("/api/sweeps", json=body)
        except httpx.TransportError as err:
            print(f"causalwatch sweep: --server {args.server}: cannot reach the backend ({err}); "
                  "is `causalwatch up` running?", file=sys.stderr)
            return EXIT_FAILED
        if resp.status_code != 201:
            detail = resp.json().get("detail") if resp.headers.get(
                "content-type", "").startswith("application/json") else resp.text
            print(f"causalwatch sweep: refused ({resp.status_code}): {detail}", file=sys.stderr)
            return EXIT_USAGE if resp.status_code == 422 else EXIT_FAILED
        sweep = resp.json()
        print(f"sweep {sweep['id']}: {len(sweep['members'])} members queued on {args.server}")
        for member in sweep["members"]:
            print(f"  {member['id']}  {member['name']}")
        if not args.wait:
            return EXIT_OK
        while True:
            sweep = client.get(f"/api/sweeps/{sweep['id']}").json()
            if all(m["status"] in FINISHED for m in sweep["members"]):
                break
            time.sleep(1.0)
    for member in sweep["members"]:
        summary = member.get("summary") or {}
        val = summary.get("best_val_recon")
        mark = "  ← best" if member["id"] == sweep["best"] else ""
        print(f"  {member['status']:<9} val_recon {'-' if val is None else f'{val:.4g}':<10} "
              f"F1@best {member.get('f1_at_best')}  {member['name']}{mark}")
    ok = all(m["status"] == "completed" for m in sweep["members"])
    return EXIT_OK if ok else EXIT_FAILED
