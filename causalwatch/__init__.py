"""causalwatch's SDK: monitor your own training loop (``cw.init / log / finish``).

    import causalwatch as cw
    run = cw.init(name="my model", config={"lr": 1e-3}, reference=[("A", "B")])
    for epoch in range(30):
        ...
        run.log({"loss_recon": recon, "loss_sparse": sparse, "my_metric": m}, step=epoch)
    run.finish()

Importing this package loads nothing heavy: pydantic, httpx and websockets are imported
when a run starts, torch only by ``causalwatch.torch``. docs/sdk.md walks through it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

if TYPE_CHECKING:
    from causalwatch.run import Run

__all__ = [
    "InitOptions", "Run", "current_run", "finish", "init", "lightning", "log", "log_graph",
    "torch",
]

# Submodules loaded on first use: `cw.torch.watch(...)` must not cost torch at `import`.
_LAZY_MODULES = ("torch", "lightning")


Mode = Literal["auto", "online", "offline"]
Outcome = Literal["completed", "failed"]  # how a training script may end its run


class InitOptions(TypedDict, total=False):
    """`init`'s options after the name and config, each optional (defaults: `init`'s doc).

    One definition for every entry point that starts a run (`init`, the Lightning logger).
    """

    server: str | None
    reference: str | os.PathLike[str] | Iterable[Sequence[Any]] | None
    variables: Sequence[str] | None
    epochs: int | None
    dir: str | os.PathLike[str] | None
    mode: Mode
    token: str | None


def check_options(options: Mapping[str, Any], caller: str) -> InitOptions:
    """`options` as `InitOptions`; TypeError naming a key it does not have, as Python's own
    for an unexpected keyword argument (an `**options` signature would take any)."""
    unknown = sorted(set(options) - set(InitOptions.__annotations__))
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    return InitOptions(**options)  # type: ignore[typeddict-item]


def init(
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    **options: Unpack[InitOptions],
) -> Run:
    """Start a run: created on the server (`server`, else $CAUSALWATCH_SERVER, else
    http://127.0.0.1:8000; admin `token`, else $CAUSALWATCH_TOKEN) or, when none answers
    (`mode="auto"`, the default) or with `mode="offline"`, kept in `dir`/<run id>/ for
    `causalwatch sync`; with `mode="online"` an unreachable server raises ConnectionError.

    `reference`: the reference graph's (cause, effect) edges, or a CSV/JSON file of them;
    `variables`: the names of the graph's nodes, in the order of `log_graph`'s matrix;
    `epochs`: the rows you plan to log (gives `eta_seconds`). Each defaults to None.
    Bad arguments: ValueError; an unknown option: TypeError.
    """
    from causalwatch.run import start_run

    return start_run(name, config, check_options(options, "causalwatch.init"))


def current_run() -> Run | None:
    """The run `init` started last and that is not finished, if any."""
    # No run started yet: nothing to import (and nothing heavy loaded) to say so.
    module = sys.modules.get("causalwatch.process")
    return None if module is None else module.process.current


def _require_run(what: str) -> Run:
    run = current_run()
    if run is None:
        raise RuntimeError(f"causalwatch.{what}(): no run is open; call causalwatch.init() first")
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """`current_run().log(...)`."""
    _require_run("log").log(data, step=step, commit=commit)


def log_graph(probabilities: Any, step: int | None = None) -> None:
    """`current_run().log_graph(...)`."""
    _require_run("log_graph").log_graph(probabilities, step=step)


def finish(status: Outcome = "completed", reason: str | None = None) -> None:
    """`current_run().finish(...)`; nothing to do without an open run."""
    run = current_run()
    if run is not None:
        run.finish(status, reason)


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"causalwatch.{name}")
    if name == "Run":
        from causalwatch.run import Run

        return Run
    raise AttributeError(f"module 'causalwatch' has no attribute {name!r}")
