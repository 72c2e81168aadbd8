"""One optimizer step: a non-finite loss or gradient norm stops the run or skips the update."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from kelm.engine.optim import make_scheduler, optimizer_step
from kelm.errors import KelmError


def _setup(scale: float = 1.0):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = make_scheduler(optimizer, warmup_steps=0, schedule="linear", total_steps=10)
    loss = model(torch.ones(2, 3)).sum() * scale
    loss.backward()
    accelerator = SimpleNamespace(
        clip_grad_norm_=torch.nn.utils.clip_grad_norm_, scaler=None
    )  # what optimizer_step uses of an accelerate.Accelerator
    return model, optimizer, scheduler, float(loss.detach()), accelerator


def test_a_finite_step_updates() -> None:
    model, optimizer, scheduler, loss, acc = _setup()
    before = model.weight.detach().clone()
    lrs = optimizer_step(acc, model, optimizer, scheduler, 1.0, loss=loss, step=1)
    assert lrs is not None and not torch.equal(before, model.weight)


@pytest.mark.parametrize("loss", [math.nan, math.inf])
def test_a_non_finite_loss_stops_with_the_step(loss: float) -> None:
    model, optimizer, scheduler, _, acc = _setup()
    with pytest.raises(KelmError, match=f"step 7: the loss is {loss}; the run stops"):
        optimizer_step(acc, model, optimizer, scheduler, 1.0, loss=loss, step=7)


def test_an_infinite_gradient_norm_stops_or_is_skipped() -> None:
    model, optimizer, scheduler, loss, acc = _setup(scale=math.inf)  # inf gradients
    with pytest.raises(KelmError, match="step 3: the gradient norm is"):
        optimizer_step(acc, model, optimizer, scheduler, 1.0, loss=1.0, step=3)
    model, optimizer, scheduler, loss, acc = _setup(scale=math.inf)
    before = model.weight.detach().clone()
    lrs = optimizer_step(
        acc, model, optimizer, scheduler, 1.0, loss=1.0, step=3, nonfinite_loss="skip"
    )
    assert lrs is None and torch.equal(before, model.weight)
    assert model.weight.grad is None  # cleared: the next step starts from zero
    assert scheduler.last_epoch == 0  # the batch is dropped: the schedule does not move


def test_skip_leaves_the_weights() -> None:
    model, optimizer, scheduler, _, acc = _setup()
    before = model.weight.detach().clone()
    lrs = optimizer_step(
        acc, model, optimizer, scheduler, None, loss=math.nan, step=1, nonfinite_loss="skip"
    )
    assert lrs is None and torch.equal(before, model.weight)
