"""Sweeps: a grid (or a random sample of it) over config fields × seeds, as one group of runs.

A sweep is its members: ordinary runs of kind `run`, queued together and started by the
supervisor on the chosen executor like any other (bounded by `--max-runs`, and on Ray by
the cluster's resources). What makes them one group is their name, `sweep <id>: <changes>`,
so the runs list, the API and the dashboard show where each came from with no new table.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
from typing import Any

from trainer.config import ConfigError, TrainConfig

MAX_MEMBERS = 1000  # one request; a bigger search is several sweeps
NAME_PREFIX = "sweep "


class SweepError(ValueError):
    """A sweep request was refused; `field` names what to change."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def new_sweep_id() -> str:
    return secrets.token_hex(4)


def parse_grid(pairs: list[str]) -> dict[str, list[Any]]:
    """`field=v1,v2,...` strings (the CLI's --grid), values parsed as JSON where they can be."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise SweepError(f"--grid expects field=value1,value2,..., got {pair!r}", "grid")
        grid[key] = [_value(part.strip()) for part in raw.split(",") if part.strip()]
    return grid


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_seeds(text: str) -> list[int]:
    """`0-4` (inclusive), `0,2,5`, or a mix: `0-2,7`."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low or high - low >= MAX_MEMBERS:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            elif part:
                seeds.append(int(part))
        except ValueError:
            raise SweepError(f"seeds: expected e.g. 0-4 or 0,2,5, got {text!r}", "seeds") from None
    if not seeds:
        raise SweepError("seeds: at least one seed", "seeds")
    return list(dict.fromkeys(seeds))


def expand(
    grid: dict[str, list[Any]],
    seeds: list[int],
    *,
    samples: int | None = None,
    sample_seed: int = 0,
) -> list[dict[str, Any]]:
    """The members' config changes: every combination of the grid's values × every seed, or
    `samples` of those combinations drawn at random (random search), each with every seed."""
    for name, values in grid.items():
        if name not in TrainConfig.model_fields or name == "seed":
            known = "a config field other than seed (seeds have their own option)"
            raise SweepError(f"grid: {name!r} is not {known}", f"grid.{name}")
        if not values:
            raise SweepError(f"grid.{name}: no values", f"grid.{name}")
    names = list(grid)
    total = math.prod(len(grid[n]) for n in names)
    if samples is not None and samples < 1:
        raise SweepError("samples: at least 1", "samples")
    # Counted before anything is built: a grid's product grows faster than memory.
    count = (total if samples is None else min(samples, total)) * len(seeds)
    if count > MAX_MEMBERS:
        raise SweepError(f"{count} members, above the {MAX_MEMBERS} one sweep may have", "grid")
    if samples is None:
        combos = [dict(zip(names, values, strict=True))
                  for values in itertools.product(*(grid[n] for n in names))]
    else:
        picked = random.Random(sample_seed).sample(range(total), min(samples, total))
        combos = [_combo(grid, names, index) for index in sorted(picked)]
    return [{**combo, "seed": seed} for combo in combos for seed in seeds]


def _combo(grid: dict[str, list[Any]], names: list[str], index: int) -> dict[str, Any]:
    """The index-th combination in itertools.product order (the last field varies fastest)."""
    combo: dict[str, Any] = {}
    for name in reversed(names):
        index, pick = divmod(index, len(grid[name]))
        combo[name] = grid[name][pick]
    return {name: combo[name] for name in names}


def member_name(sweep_id: str, changes: dict[str, Any]) -> str:
    return f"{NAME_PREFIX}{sweep_id}: " + " ".join(f"{k}={v}" for k, v in changes.items())


def is_member(name: str | None, sweep_id: str) -> bool:
    return bool(name) and str(name).startswith(f"{NAME_PREFIX}{sweep_id}: ")


def config_error_field(err: ConfigError, changes: dict[str, Any]) -> str:
    """Where a member's refused value came from: the grid, the seeds or the overrides."""
    if err.field == "seed":
        return "seeds"
    if err.field in changes:
        return f"grid.{err.field}"
    return f"overrides.{err.field}" if err.field else "overrides"
