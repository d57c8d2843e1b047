"""The open watches, and torch's `clip_grad_norm_` observed for them.

A user who clips with `torch.nn.utils.clip_grad_norm_` has the step's pre-clip norm in hand,
and the threshold they chose: a watch takes both from that call rather than measuring again
(causalwatch/torch.py). While a watch that observes clips is open, torch's function is
replaced by one that calls it and hands its result to every such watch; once none is open,
torch's own is put back, so torch is left as the user found it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch import Tensor


class ClipObserver(Protocol):
    """What the registry needs of a watch (causalwatch.torch.Watch)."""

    observe_clip: bool  # whether it takes the norms of the user's own clip calls

    def clipped(self, params: Iterable[Tensor], norm: Tensor, max_norm: float) -> None:
        """`clip_grad_norm_(params, max_norm)` ran and returned the pre-clip `norm`."""


# Every open watch, the newest last; those observing clips keep torch's function patched.
_open: list[ClipObserver] = []
_lock = threading.Lock()
_original: Callable[..., Tensor] | None = None


def _observed_clip_grad_norm_(parameters: Any, max_norm: float, *args: Any, **kwargs: Any
                              ) -> Tensor:
    """torch's clip_grad_norm_, which also hands the pre-clip norm to the open watches."""
    assert _original is not None
    # A generator of parameters can be walked once: make it a list both can read.
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    norm = _original(params, max_norm, *args, **kwargs)
    for watch in list(_open):
        if watch.observe_clip:
            watch.clipped(params, norm, float(max_norm))
    return norm


def register(watch: ClipObserver) -> None:
    """`watch` is open: the newest (`latest`), and observing clips if it asks to."""
    global _original  # noqa: PLW0603 — one patch shared by every open watch
    with _lock:
        _open.append(watch)
        if watch.observe_clip and _original is None:
            _original = torch.nn.utils.clip_grad_norm_
            torch.nn.utils.clip_grad_norm_ = _observed_clip_grad_norm_


def unregister(watch: ClipObserver) -> None:
    """`watch` is closed; torch's own function is back once no open watch observes."""
    global _original  # noqa: PLW0603
    with _lock:
        if watch in _open:
            _open.remove(watch)
        if not any(w.observe_clip for w in _open) and _original is not None:
            torch.nn.utils.clip_grad_norm_ = _original
            _original = None


def latest() -> ClipObserver | None:
    """The most recently opened watch still open, if any."""
    return _open[-1] if _open else None


def torch_clip() -> Callable[..., Tensor]:
    """torch's own clip_grad_norm_, whether or not a watch has it patched right now."""
    return _original or torch.nn.utils.clip_grad_norm_
