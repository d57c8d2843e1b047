"""cw.torch.watch on a tiny real model: each health field as the trainer defines it."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from utils.backend_server import BackendServer

import causalwatch as cw
from causalwatch.local import read_messages
from causalwatch.torch import Watch, loss_terms, reference_matrix
from trainer import graph_metrics, health
from trainer.model import CausalStructureModel

D = 4
VARIABLES = ["a", "b", "c", "d"]


class TinySEM(nn.Module):
    """x̂ = tanh(x W₁) W₂ gated by P = sigmoid(A): not our trainer's model, just logits."""

    def __init__(self, d: int = D, hidden: int = 8) -> None:
        super().__init__()
        self.adj_logits = nn.Parameter(0.5 * torch.randn(d, d))
        self.enc = nn.Linear(d, hidden)
        self.dec = nn.Linear(hidden, d)

    def probs(self) -> Tensor:
        return torch.sigmoid(self.adj_logits) * (1 - torch.eye(self.adj_logits.shape[0]))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = torch.tanh(self.enc(x @ self.probs()))
        return self.dec(z), z


def terms_of(model: TinySEM, x: Tensor, lambda_sparse: float = 1e-2) -> dict[str, Tensor]:
    x_hat, z = model(x)
    p = model.probs()
    return {
        "recon": 10.0 * ((x - x_hat) ** 2).mean(),
        "sparse": lambda_sparse * p.sum(),
        "acyclic": 1e-3 * (torch.trace(torch.matrix_exp(p * p)) - p.shape[0]),
        "disen": 1e-2 * (z.T @ z / len(z)).pow(2).mean(),
    }


def step(watch: Watch, opt: torch.optim.Optimizer, terms: dict[str, Tensor],
         clip_at: float | None = None) -> None:
    """One optimizer step as a user's loop takes it: the terms to the watch, backward, the
    watch's clip when asked, the update."""
    watch.loss_terms(terms)
    opt.zero_grad()
    sum(terms.values()).backward()
    if clip_at is not None:
        watch.clip_grad_norm_(clip_at)
    opt.step()


def fit(
    model: TinySEM, opt: torch.optim.Optimizer, watch: Watch, steps: int, *,
    clip: str | float | None = None, lambda_sparse: float = 1e-2, seed: int = 0,
) -> list[float]:
    """`steps` optimizer steps on random data; the pre-clip norms of any clip calls."""
    gen = torch.Generator().manual_seed(seed)
    norms: list[float] = []
    for _ in range(steps):
        x = torch.randn(32, D, generator=gen)
        terms = terms_of(model, x, lambda_sparse)
        watch.loss_terms(terms)
        opt.zero_grad()
        sum(terms.values()).backward()
        if clip == "watch":
            norms.append(float(watch.clip_grad_norm_()))
        elif clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
        opt.step()
    return norms


@pytest.fixture
def model() -> TinySEM:
    torch.manual_seed(0)
    return TinySEM()


def test_clip_pct_is_100_when_every_step_is_clipped(model: TinySEM) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Watch(model, opt, adjacency=model.adj_logits, clip=1e-6) as watch:
        norms = fit(model, opt, watch, 6, clip="watch")
        row = watch(1)
    assert row["clip_pct"] == 100.0
    assert row["grad_norm_mean"] == pytest.approx(np.mean(norms), rel=1e-6)
    assert row["grad_norm_max"] == pytest.approx(max(norms), rel=1e-6)
    assert row["grad_norm_p90"] == pytest.approx(np.percentile(norms, 90), rel=1e-6)


def test_clip_pct_is_0_when_no_step_is_clipped_by_the_users_own_call(model: TinySEM) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Watch(model, opt, adjacency=model.adj_logits) as watch:
        # torch's own clip_grad_norm_, spelled as users do: observed, its max_norm used.
        norms = fit(model, opt, watch, 5, clip=1e6)
        row = watch(1)
    assert row["clip_pct"] == 0.0
    assert row["grad_norm_mean"] == pytest.approx(np.mean(norms), rel=1e-6)


def test_without_a_clip_the_norm_is_measured_and_judged_against_clip(model: TinySEM) -> None:
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Watch(model, opt, adjacency=model.adj_logits) as probe:
        # What the optimizer saw, step by step: the pre-clip norm of an unclipped step.
        seen: list[float] = []
        opt.register_step_pre_hook(lambda o, a, k: seen.append(float(
            torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))))
        fit(model, opt, probe, 4)
        first = probe(1)
    assert "clip_pct" not in first  # no clip call and no `clip`: nothing to judge
    assert first["grad_norm_mean"] == pytest.approx(np.mean(seen), rel=1e-6)
    # The same steps again on a twin, judged against a threshold between the 2nd and 3rd
    # largest norms: half the steps exceed it.
    middle = float(np.mean(sorted(seen)[1:3]))
    twin_opt = torch.optim.SGD(twin.parameters(), lr=1e-2)
    with Watch(twin, twin_opt, adjacency=twin.adj_logits, clip=middle) as watch:
        fit(twin, twin_opt, watch, 4)
        row = watch(1)
    assert row["clip_pct"] == 50.0


def test_watch_restores_torchs_clip_grad_norm_when_closed(model: TinySEM) -> None:
    original = torch.nn.utils.clip_grad_norm_
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    first = Watch(model, opt, adjacency=model.adj_logits)
    second = Watch(model, opt, adjacency=model.adj_logits)
    assert torch.nn.utils.clip_grad_norm_ is not original
    first.close()
    assert torch.nn.utils.clip_grad_norm_ is not original  # the second still observes
    second.close()
    assert torch.nn.utils.clip_grad_norm_ is original


def test_a_clip_of_another_models_parameters_is_not_this_models_step(model: TinySEM) -> None:
    other = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Watch(model, opt, adjacency=model.adj_logits, clip=1e6) as watch:
        x = torch.randn(8, D)
        sum(terms_of(model, x).values()).backward()
        other(torch.randn(2, 3)).sum().backward()
        torch.nn.utils.clip_grad_norm_(other.parameters(), 1e-9)  # clips the other model
        own = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
        opt.step()
        row = watch(1)
    assert row["clip_pct"] == 0.0
    assert row["grad_norm_mean"] == pytest.approx(own, rel=1e-6)


def test_per_term_gradient_norms_match_a_direct_autograd_computation(model: TinySEM) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    params = list(model.parameters())
    expected: dict[str, list[float]] = {}
    gen = torch.Generator().manual_seed(1)
    with Watch(model, opt, adjacency=model.adj_logits, term_norm_every=2) as watch:
        for index in range(6):
            terms = terms_of(model, torch.randn(16, D, generator=gen))
            if index % 2 == 0:  # the watch samples every 2nd step, its first included
                for name, term in terms.items():
                    grads = torch.autograd.grad(term, params, retain_graph=True,
                                                allow_unused=True)
                    norm = math.sqrt(sum(float((g**2).sum()) for g in grads if g is not None))
                    expected.setdefault(name, []).append(norm)
            step(watch, opt, terms)
        row = watch(1)
    for name, norms in expected.items():
        assert len(norms) == 3
        assert row[f"grad_norm_{name}"] == pytest.approx(np.mean(norms), rel=1e-5), name
    assert row["grad_norm_recon"] > row["grad_norm_sparse"] > 0


def test_loss_values_and_shares_and_a_term_at_zero_share(model: TinySEM) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    values: dict[str, list[float]] = {}
    gen = torch.Generator().manual_seed(2)
    with Watch(model, opt, adjacency=model.adj_logits, term_norm_every=1) as watch:
        for _ in range(3):
            terms = terms_of(model, torch.randn(16, D, generator=gen), lambda_sparse=0.0)
            for name, term in terms.items():
                values.setdefault(name, []).append(float(term.detach()))
            step(watch, opt, terms)
        row = watch(1)
    means = {name: float(np.mean(v)) for name, v in values.items()}
    shares = health.loss_shares(means)
    for name, mean in means.items():
        assert row[f"loss_{name}"] == pytest.approx(mean, rel=1e-6)
        assert row[f"share_{name}"] == pytest.approx(shares[name], rel=1e-6)
    assert row["loss_total"] == pytest.approx(sum(means.values()), rel=1e-6)
    assert row["loss_sparse"] == 0.0
    assert row["share_sparse"] == 0.0
    assert row["grad_norm_sparse"] == 0.0
    assert sum(row[f"share_{n}"] for n in means) == pytest.approx(100.0)


def test_logit_and_edge_fields_match_the_trainers_model() -> None:
    torch.manual_seed(3)
    model = CausalStructureModel(5, 4, 8, "sigmoid", None)
    with torch.no_grad():
        model.adj_logits.copy_(2.0 * torch.randn(5, 5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with Watch(model, opt, adjacency=model.adj_logits) as watch:
        row = watch(1)
    # As trainer/loop.py measures them, on the trainer's own model.
    with torch.no_grad():
        probs = model.edge_probabilities().numpy().astype(np.float64)
        mean, std = health.logit_stats(model.off_diagonal_logits().numpy())
    threshold = graph_metrics.tuned_threshold(probs)
    assert row["logit_mean"] == pytest.approx(mean, rel=1e-6)
    assert row["logit_std"] == pytest.approx(std, rel=1e-6)
    assert row["edges_at_05"] == health.count_edges_above(probs, 0.5)
    assert row["threshold_tuned"] == pytest.approx(threshold, rel=1e-6)
    assert row["edges_tuned"] == int(graph_metrics.threshold_graph(probs, threshold).sum())
    assert row["edges_topk"] == 5  # no reference: k = d
    assert row["lr"] == 1e-3
    assert "shd" not in row  # no run, no reference


def test_probabilities_from_a_callable_give_the_same_fields(model: TinySEM) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Watch(model, opt, adjacency=model.adj_logits) as from_logits:
        by_logits = from_logits(1)
    with Watch(model, opt, adjacency=model.probs) as from_probs:
        by_probs = from_probs(1)
    for name in ("edges_at_05", "edges_tuned", "edges_topk"):
        assert by_probs[name] == by_logits[name]
    for name in ("logit_mean", "logit_std", "threshold_tuned"):
        assert by_probs[name] == pytest.approx(by_logits[name], rel=1e-5)


def test_shd_and_f1_on_a_known_graph_match_graph_metrics(sdk_env: Path) -> None:
    model = TinySEM()
    # Learned: a→b, c→b, d→c; reference: a→b, b→c, c→d. One right, one reversed (b,c),
    # one reversed (c,d): SHD 2; precision = recall = 1/3; every skeleton edge right.
    learned = [("a", "b"), ("c", "b"), ("d", "c")]
    reference = [("a", "b"), ("b", "c"), ("c", "d")]
    with torch.no_grad():
        model.adj_logits.fill_(-6.0)
        for cause, effect in learned:
            model.adj_logits[VARIABLES.index(cause), VARIABLES.index(effect)] = 6.0
    # A real run, offline: what it would send is in its journal.
    run = cw.init(name="known graph", mode="offline", reference=reference,
                  variables=VARIABLES)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with run, Watch(model, opt, adjacency=model.adj_logits, run=run, eval_every=2):
        run.log({"my_metric": 1.0}, step=1)
        run.log({"my_metric": 2.0}, step=2)
    messages = read_messages(run.folder)
    odd, even = (m["record"] for m in messages if m["type"] == "epoch")
    assert "shd" not in odd and even["epoch"] == 2
    scores = graph_metrics.score_graph(
        reference_matrix(learned, VARIABLES), reference_matrix(reference, VARIABLES)
    )
    assert (even["shd"], even["f1"], even["f1_skeleton"]) == (2, pytest.approx(1 / 3), 1.0)
    assert even["shd"] == scores.shd and even["precision"] == scores.precision
    assert even["recall"] == scores.recall and even["f1"] == scores.f1
    assert even["edges_tuned"] == 3 and even["edges_topk"] == 3  # k = reference edges
    (graph,) = (m for m in messages if m["type"] == "graph")
    assert graph["epoch"] == 2  # with its row, only on the evaluation epoch
    assert graph["probabilities"][0][1] == pytest.approx(1 / (1 + math.exp(-6)), abs=1e-4)
    assert graph["probabilities"][0][0] == 0.0


def test_update_ratio_and_lr_over_the_rows_span(model: TinySEM) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    with Watch(model, opt, adjacency=model.adj_logits) as watch:
        fit(model, opt, watch, 2)
        watch(1)
        before = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
        fit(model, opt, watch, 3, seed=1)
        after = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
        opt.param_groups[0]["lr"] = 1e-3
        row = watch(2)
    assert row["update_ratio"] == pytest.approx(
        float((after - before).norm() / before.norm()), rel=1e-6
    )
    assert row["lr"] == 1e-3


def test_a_row_with_no_steps_carries_only_the_graph(model: TinySEM) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Watch(model, opt, adjacency=model.adj_logits, clip=1.0) as watch:
        fit(model, opt, watch, 2)
        watch(1)
        row = watch(2)
    assert "clip_pct" not in row and "grad_norm_mean" not in row and "loss_recon" not in row
    assert row["update_ratio"] == 0.0 and "logit_std" in row


def test_module_level_loss_terms_reach_the_newest_watch(model: TinySEM) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Watch(model, opt, adjacency=model.adj_logits) as watch:
        loss_terms({"loss_recon": torch.tensor(2.0), "sparse": 0.5})
        row = watch(1)
    assert (row["loss_recon"], row["share_recon"]) == (2.0, 80.0)
    # The contract terms not given weigh 0 (no gradient norm: nothing was measured).
    assert (row["loss_disen"], row["share_disen"]) == (0.0, 0.0)
    assert "grad_norm_disen" not in row
    loss_terms({"recon": torch.tensor(1.0)})  # no open watch: nothing, and no error


def test_terms_given_after_backward_keep_their_values(model: TinySEM) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Watch(model, opt, adjacency=model.adj_logits) as watch:
        terms = terms_of(model, torch.randn(8, D))
        sum(terms.values()).backward()
        watch.loss_terms(terms)  # the graph is gone: norms cannot be measured
        opt.step()
        row = watch(1)
    assert row["loss_recon"] == pytest.approx(float(terms["recon"].detach()))
    assert "grad_norm_recon" not in row


def test_bad_arguments_name_the_field(model: TinySEM) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="clip"):
        Watch(model, opt, adjacency=model.adj_logits, clip=0)
    with pytest.raises(TypeError, match="adjacency"):
        Watch(model, opt, adjacency="adj_logits")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one of the run's variables"):
        reference_matrix([("a", "z")], VARIABLES)


# --- against a real backend ----------------------------------------------------------------


def test_a_loop_with_watch_streams_its_health_and_a_red_flag_fires(
    sdk_backend: BackendServer,
) -> None:
    """A hand-written loop whose regularizers are switched off (λ = 0): 0% of the loss."""
    torch.manual_seed(4)
    model = TinySEM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    reference = [("a", "b"), ("b", "c"), ("c", "d")]
    epochs = 6
    run = cw.init(name="watch e2e", config={"lr": 1e-2}, server=sdk_backend.url,
                  reference=reference, variables=VARIABLES, epochs=epochs, mode="online")
    watch = cw.torch.watch(model, opt, adjacency=model.adj_logits, eval_every=2)
    gen = torch.Generator().manual_seed(5)
    with run, watch:
        for epoch in range(epochs):
            for _ in range(5):
                x = torch.randn(32, D, generator=gen)
                x_hat, _z = model(x)
                p = model.probs()
                terms = {"recon": 10.0 * ((x - x_hat) ** 2).mean(), "sparse": 0.0 * p.sum(),
                         "acyclic": 0.0 * p.sum(), "disen": 0.0 * p.sum()}
                # Every step of an even epoch clipped, none of an odd one: each row's clip%
                # shows whether its span is exactly its epoch's steps.
                step(watch, opt, terms, clip_at=1e-9 if epoch % 2 == 0 else 1e9)
            run.log({"my_metric": float(epoch)}, step=epoch)
    records = sdk_backend.metrics(run.id)
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    for r in records:
        for name in ("clip_pct", "grad_norm_mean", "grad_norm_p90", "share_recon", "lr",
                     "logit_std", "edges_at_05", "edges_tuned", "edges_topk", "update_ratio",
                     "grad_norm_recon", "grad_norm_sparse"):
            assert r[name] is not None, (name, r)
        assert r["share_recon"] == 100.0 and r["share_sparse"] == 0.0
        assert r["clip_pct"] == (100.0 if r["epoch"] % 2 == 1 else 0.0), r
        assert (r["shd"] is not None) == (r["epoch"] % 2 == 0)
    assert records[-1]["custom"] == {"my_metric": 5.0}
    alerts = sdk_backend.client.get(f"/api/runs/{run.id}/alerts").json()
    assert "regularizers_silent" in {a["rule"] for a in alerts}, alerts


def test_rows_logged_per_batch_keep_each_epochs_own_steps(sdk_env: Path) -> None:
    """Logging into an epoch's row after every batch (step=epoch): the row is sent when the
    next epoch's first log comes, and still covers only its own epoch's steps."""
    torch.manual_seed(6)
    model = TinySEM()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    run = cw.init(name="per batch", mode="offline")
    gen = torch.Generator().manual_seed(7)
    with run, Watch(model, opt, adjacency=model.adj_logits, run=run) as watch:
        for epoch in range(4):
            for batch in range(3 + epoch):  # epochs of 3, 4, 5, 6 steps
                terms = terms_of(model, torch.randn(16, D, generator=gen))
                # Every step of an even epoch clipped, none of an odd one.
                step(watch, opt, terms, clip_at=1e-9 if epoch % 2 == 0 else 1e9)
                run.log({"batch": float(batch)}, step=epoch)
    records = [m["record"] for m in read_messages(run.folder) if m["type"] == "epoch"]
    assert [r["clip_pct"] for r in records] == [100.0, 0.0, 100.0, 0.0]
    assert [r["custom"]["batch"] for r in records] == [2.0, 3.0, 4.0, 5.0]
