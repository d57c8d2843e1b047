"""`causalwatch train` / `python -m trainer`: config → data → training, with a progress bar."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from trainer.config import PATCHES, PRESETS, ConfigError, TrainConfig, build_config, parse_overrides
from trainer.protocol import (
    NEAR_DETERMINISTIC_R2,
    RUN_ID_PATTERN,
    RUN_ID_RULE,
    VARIANCE_RATIO_MAX,
    Outcome,
    new_run_id,
)
from trainer.result import RunResult, Train

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser(prog: str = "causalwatch train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train the causal-structure model and report its health every epoch.",
    )
    p.add_argument("--preset", default="uci", choices=sorted(PRESETS), help="named config")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument(
        "--data",
        help="the data file: UCI Air Quality CSV (else $CAUSALWATCH_DATA, else ucimlrepo), or "
        "your own numeric CSV with --set dataset=csv",
    )
    p.add_argument(
        "--reference",
        help='dataset csv: reference graph JSON, {"edges": [{"from": .., "to": ..}, ..]}; '
        "without it SHD and F1 are not computed",
    )
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config field (repeatable)",
    )
    p.add_argument(
        "--patch", dest="patches", action="append", default=[], choices=sorted(PATCHES),
        help="apply a named emergency adjustment (repeatable)",
    )
    p.add_argument("--config", help="JSON file of config fields, applied before --set")
    p.add_argument("--backend", help="stream records to this backend (http://host:port)")
    p.add_argument("--token", default=os.environ.get("CAUSALWATCH_INGEST_TOKEN"),
                   help="ingest token for --backend (default $CAUSALWATCH_INGEST_TOKEN)")
    p.add_argument("--run-id", help="run folder name (default: time-preset-random)")
    p.add_argument("--runs-dir", default="runs", help="parent folder of run folders")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# (argparse dest, option, what it must name); `runs_dir` is created when missing.
_PATH_OPTIONS = (
    ("data", "--data", "file"),
    ("reference", "--reference", "file"),
    ("config", "--config", "file"),
    ("runs_dir", "--runs-dir", "folder"),
)


def resolve_path_options(args: argparse.Namespace) -> str | None:
    """Pin each path option to the directory the command started in, and check it.

    Returns the first problem as a message naming the option, or None. Absolute paths go on
    into the run's files and messages, which stay true whatever directory reads them later.
    """
    for dest, option, kind in _PATH_OPTIONS:
        given = getattr(args, dest, None)
        if given is None or not str(given).strip():
            continue
        resolved = Path(given).expanduser().resolve()
        where = "" if str(given) == str(resolved) else f" (resolved to {resolved})"
        if kind == "file" and not resolved.is_file():
            problem = "not a file" if resolved.exists() else "file not found"
            return f"{option} {given}: {problem}{where}"
        if kind == "folder":
            if resolved.exists() and not resolved.is_dir():
                return f"{option} {given}: not a folder{where}"
            existing = next(p for p in (resolved, *resolved.parents) if p.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                return f"{option} {given}: cannot be created{where}: {existing} is not a " \
                    "writable folder"
        setattr(args, dest, str(resolved))
    return None


def _resolve_config(args: argparse.Namespace) -> TrainConfig:
    overrides: dict[str, Any] = {}
    if args.config:
        try:
            loaded = json.loads(Path(args.config).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(
                f"--config {args.config}: cannot read JSON ({err})", "config"
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config {args.config}: expected a JSON object", "config")
        overrides.update(loaded)
    overrides.update(parse_overrides(args.overrides))
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    return build_config(args.preset, overrides, args.patches)


def _data_warnings(stats: dict[str, Any], standardized: bool) -> list[str]:
    """The start-of-run data checks a user must see before trusting the curves."""
    warnings = []
    ratio = stats.get("variance_ratio")
    if not standardized and ratio is not None and ratio > VARIANCE_RATIO_MAX:
        warnings.append(
            f"raw column variances differ by {ratio:.3g}x and standardize is off: "
            "gradients will be dominated by the largest columns (try --set standardize=true)"
        )
    for item in stats.get("near_deterministic", []):
        warnings.append(
            f"{item['column']} is near-deterministic from the other columns "
            f"(R^2 = {item['r2']:.5f} >= {NEAR_DETERMINISTIC_R2}): consider dropping or "
            "merging it"
        )
    return warnings


class _StopFlag:
    """Set by SIGTERM/SIGINT: the loop finishes the current epoch, then stops cleanly."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, _frame: object) -> None:
        self.requested = True
        # A second Ctrl-C means now.
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run(args: argparse.Namespace, train: Train | None = None) -> int:
    """The command, on parsed arguments; `train` replaces the torch loop (default
    `trainer.loop.train`), everything around it (data, files, stream, stop) staying."""
    problem = resolve_path_options(args)
    if problem is not None:
        print(f"causalwatch: {problem}", file=sys.stderr)
        return EXIT_USAGE
    # Imports that pull in torch stay here so `--help` and config errors are instant.
    from trainer.data import DataError, load_dataset

    try:
        cfg = _resolve_config(args)
    except ConfigError as err:
        print(f"causalwatch: invalid config: {err}", file=sys.stderr)
        return EXIT_USAGE
    run_id = args.run_id or new_run_id(args.preset)
    if not re.fullmatch(RUN_ID_PATTERN, run_id):
        print(f"causalwatch: invalid --run-id {run_id!r}: use {RUN_ID_RULE}", file=sys.stderr)
        return EXIT_USAGE
    if args.backend:
        from trainer.emitter import ingest_url

        try:
            ingest_url(args.backend, run_id)
        except ValueError as err:
            print(f"causalwatch: invalid --backend: {err}", file=sys.stderr)
            return EXIT_USAGE
    if cfg.dataset == "csv" and not args.data:
        hint = f" (data_file {cfg.data_file!r} is a name only the backend resolves)" \
            if cfg.data_file else ""
        print(f"causalwatch: dataset csv needs --data PATH, a numeric CSV with a header row{hint}",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        data = load_dataset(cfg, data_path=args.data, reference_path=args.reference)
    except DataError as err:
        print(f"causalwatch: data error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return _train_run(args, cfg, data, run_id, train)


def _train_run(
    args: argparse.Namespace, cfg: TrainConfig, data: Any, run_id: str, train: Train | None
) -> int:
    from tqdm import tqdm

    from trainer.emitter import Emitter
    from trainer.runlog import RunFiles

    device = "none (no torch loop)"
    if train is None:
        import torch

        from trainer.loop import resolve_device
        from trainer.loop import train as torch_train

        try:
            device = str(resolve_device(cfg.device))
        except ValueError as err:
            print(f"causalwatch: invalid config: {err}", file=sys.stderr)
            return EXIT_USAGE
        # These matrices are tiny: extra intra-op threads cost more in sync than they save.
        torch.set_num_threads(1)
        train = torch_train
    run_dir = Path(args.runs_dir) / run_id
    files = RunFiles(run_dir, cfg.epochs_to_run)
    config_dump = cfg.model_dump()
    files.write_config({"run_id": run_id, "preset": args.preset, **config_dump})
    warnings = _data_warnings(data.stats, data.standardized)
    files.log(f"run {run_id} preset {args.preset} dataset {data.name} ({data.reference_kind})")
    files.log("config " + json.dumps(config_dump, sort_keys=True))
    files.log(
        f"data train {data.train.shape[0]} rows, val {data.val.shape[0]} rows, "
        f"{len(data.variables)} variables, standardized={data.standardized}"
    )
    files.log(f"device {device} (config device {cfg.device})")
    for w in warnings:
        files.log("WARNING " + w)
        print(f"warning: {w}", file=sys.stderr)

    emitter = None
    if args.backend:
        emitter = Emitter(args.backend, run_id, token=args.token)
        emitter.start()
        emitter.send(
            "started",
            config=config_dump,
            data={
                "name": data.name,
                "variables": list(data.variables),
                "reference_kind": data.reference_kind,
                # None, not []: "no reference" differs from "a reference with no edges".
                "reference_edges": None if data.reference is None else [
                    [data.variables[i], data.variables[j]]
                    for i, j in zip(*data.reference.nonzero(), strict=True)
                ],
                "standardized": data.standardized,
                "stats": data.stats,
            },
        )

    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bar = tqdm(total=cfg.epochs_to_run, unit="epoch", disable=args.quiet, file=sys.stderr,
               dynamic_ncols=True, desc=run_id[:24])
    last_f1: list[float | None] = [None]

    def on_record(record: dict[str, Any]) -> None:
        files.record(record)
        if emitter is not None:
            emitter.send("epoch", record=record)
        if record.get("f1") is not None:
            last_f1[0] = record["f1"]
        bar.set_postfix(
            loss=f"{record['loss_total']:.3g}",
            clip=f"{record['clip_pct']:.0f}%",
            std=f"{record['logit_std']:.3f}",
            F1="-" if last_f1[0] is None else f"{last_f1[0]:.3f}",
            refresh=False,
        )
        bar.update(1)

    def on_graph(epoch: int, probabilities: list[list[float]]) -> None:
        if emitter is not None:
            emitter.send("graph", epoch=epoch, probabilities=probabilities)

    try:
        result = train(
            cfg, data, run_id,
            on_record=on_record,
            on_graph=on_graph,
            checkpoint_path=files.checkpoint_path,
            should_stop=lambda: stop.requested,
        )
    finally:
        bar.close()
    summary = result.summary()
    files.log(f"{result.status.upper()}: {result.reason}")
    files.log("summary " + json.dumps(summary))
    files.write_outcome(Outcome(status=result.status, reason=result.reason))
    files.close()
    if emitter is not None:
        if result.status == "failed":
            emitter.send("failed", reason=result.reason, summary=summary)
        else:
            emitter.send("finished", summary=summary)
        # A stop request means someone waits on us (the backend's stop timeout): flush briefly.
        stats = emitter.close(timeout=2.0 if stop.requested else 10.0)
        if stats["unacked"]:
            print(
                f"warning: {stats['unacked']} messages not acknowledged by {args.backend}; "
                f"all records are in {files.metrics_path}",
                file=sys.stderr,
            )

    _print_summary(result, run_dir, data.reference_kind)
    return EXIT_FAILED if result.status == "failed" else EXIT_OK


def _print_summary(result: RunResult, run_dir: Path, reference_kind: str) -> None:
    s = result.summary()
    print(f"{result.status}: {result.reason} ({s['epochs_run']} epochs, {s['seconds']:.1f} s)")
    if s["best_epoch"] is not None:
        scored = (
            "no reference graph: SHD and F1 not computed" if s.get("f1_at_best") is None
            else f"F1 {s['f1_at_best']:.3f}, SHD {s['shd_at_best']} against the "
            f"{reference_kind} (max F1 seen in any epoch {s['max_f1_seen']:.3f})"
        )
        print(f"best checkpoint: epoch {s['best_epoch']} (lowest val_recon "
              f"{s['best_val_recon']:.4g}, chosen without the reference): {scored}")
    print(f"run folder: {run_dir}")


# The model's matrices are tiny: a BLAS or OpenMP thread pool per trainer only spins, and
# trainers sharing a machine starve each other with it (ten concurrent synthetic runs on two
# cores: 33 s with the pools, 19 s without). Read when numpy and torch load; a user's own
# setting wins.
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_math_thread() -> None:
    """SINGLE_THREAD_ENV to 1 where unset: call before numpy or torch is imported."""
    for name in SINGLE_THREAD_ENV:
        os.environ.setdefault(name, "1")


def main(argv: list[str] | None = None, train: Train | None = None) -> int:
    one_math_thread()
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if argv and argv[0] == "train":
        argv = argv[1:]
    elif argv and not argv[0].startswith("-"):
        print(f"causalwatch: unknown command {argv[0]!r}; available: train", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    return run(args, train)


if __name__ == "__main__":
    sys.exit(main())
