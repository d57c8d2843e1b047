"""Adam (Kingma & Ba, 2015, Algorithm 1), step for step as `torch.optim.Adam` computes it.

Why not `torch.optim.Adam`: its first call imports torch's compiler (`torch._dynamo`, for
the `_disable_dynamo` wrappers around `zero_grad`, `add_param_group` and `step`), about
1.5 s of CPU in every trainer process. The trainer never compiles, and a probe run (a few
epochs, several per alert) spent a fifth of its CPU on that import.

For a parameter θ with gradient g at step t (each parameter counts its own steps):
    m ← β₁ m + (1 − β₁) g
    v ← β₂ v + (1 − β₂) g²
    θ ← θ − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
with torch's defaults β₁ = 0.9, β₂ = 0.999, ε = 1e-8 and its order of operations, so a run
is the same to the bit (tests/trainer/test_adam.py). No weight decay, AMSGrad or
`maximize`: the trainer uses none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class _Moments:
    step: int
    m: torch.Tensor  # first moment, like the parameter
    v: torch.Tensor  # second (uncentred) moment, like the parameter


class Adam:
    """Parameter groups as torch's: dicts with "params" and "lr" (set before each epoch's
    steps), and whatever other keys the caller keeps there."""

    def __init__(
        self,
        groups: Iterable[dict[str, Any]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param_groups = [{"lr": lr, **group, "params": list(group["params"])}
                             for group in groups]
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.state: dict[torch.Tensor, _Moments] = {}

    def zero_grad(self) -> None:
        """Drop every gradient (torch's `set_to_none=True`): backward then writes, not adds."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (in place)."""
        b1, b2 = self.beta1, self.beta2
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                s = self.state.get(p)
                if s is None:
                    s = self.state[p] = _Moments(0, torch.zeros_like(p), torch.zeros_like(p))
                s.step += 1
                s.m.lerp_(g, 1 - b1)
                s.v.mul_(b2).addcmul_(g, g, value=1 - b2)
                # torch counts steps in a float tensor: the same powers as a float exponent.
                t = float(s.step)
                step_size = group["lr"] / (1 - b1**t)
                denom = (s.v.sqrt() / (1 - b2**t) ** 0.5).add_(self.eps)
                p.addcdiv_(s.m, denom, value=-step_size)
