"""Batched log-likelihood of continuations under a causal LM, with shared-prefix caching.

The unit of work is a *request*: one prefix (token ids) and several continuations (token ids),
e.g. a prompt and the answer choices of one question. :func:`score_continuations` returns, for
every continuation, ``sum_t log P(cont_t | prefix, cont_<t)``.

Two methods give the same numbers (up to float rounding):

* ``"cached"`` (default): the prefixes of a batch of requests run once, right-padded, into a
  :class:`~transformers.DynamicCache`; the cache rows are then gathered so that every
  continuation row sees its own request's prefix (``Cache.batch_select_indices`` with repeated
  indices), and all continuations of the batch run in a second, short forward pass. The prefix
  (the prompt with its demonstrations, by far the longest part) is computed once per request
  instead of once per choice.
* ``"naive"``: every prefix + continuation runs as one full sequence (the reference).

Padding and positions: prefixes are right-padded, so in the continuation pass a row's keys are
``[its prefix, padding, its continuation]``; the padding is masked out by the 2D attention mask
and the continuation's ``position_ids`` start at the row's own prefix length, so the model sees
exactly the unpadded sequence (no query row is ever fully masked, hence no NaN from softmax).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

Method = Literal["cached", "naive"]
METHODS: tuple[str, ...] = ("cached", "naive")


def supports_prefix_cache(model: torch.nn.Module) -> bool:
    """Whether the cached method is exact for ``model``: every layer of its dynamic cache is a
    plain full-attention layer (sliding-window or linear-attention layers would drop or fold
    the right-padded prefix differently)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # exotic configs: take the safe path
        return False
    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", []))


@torch.no_grad()
def score_continuations(
    model: torch.nn.Module,
    prefixes: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[Sequence[int]]],
    *,
    batch_size: int = 8,
    method: Method = "cached",
    device: torch.device | str | None = None,
    progress: bool = False,
    desc: str = "scoring",
) -> list[np.ndarray]:
    """Sum of the log-probabilities of each continuation given its prefix.

    Requests are sorted by length and scored ``batch_size`` at a time; the result is in input
    order.

    Args:
        model: a causal LM (``AutoModelForCausalLM``); put in eval mode for the call.
        prefixes: one non-empty list of token ids per request.
        continuations: for each request, its continuations (each a non-empty list of ids).
        batch_size: requests per forward pass (all their continuations go together).
        method: ``"cached"`` (shared-prefix cache) or ``"naive"`` (full sequences).
        device: where the inputs go (default: the model's device).
        progress: a tqdm bar over requests.
        desc: the bar's label.

    Returns:
        One float64 array ``[len(continuations[i])]`` per request.

    Shapes:
        cached, per batch of Q requests with R continuations in all: prefix pass
        ``input_ids [Q, P]``; continuation pass ``input_ids [R, L - 1]`` over a cache of
        ``[R, heads, P, head_dim]`` per layer, where P and L are the longest prefix and
        continuation of the batch.

    Raises:
        ValueError: an empty prefix or continuation, or an unknown method.
    """
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if len(prefixes) != len(continuations):
        raise ValueError("prefixes and continuations must have the same length")
    for i, (p, cs) in enumerate(zip(prefixes, continuations, strict=True)):
        if not p or not cs or any(not c for c in cs):
            raise ValueError(f"request {i}: empty prefix or continuation")
    if method == "cached" and not supports_prefix_cache(model):
        log.info("this model's cache layers are not all full attention: scoring without cache")
        method = "naive"
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Longest first: similar lengths share a batch (less padding), and a memory error shows at once.
    order = sorted(
        range(len(prefixes)),
        key=lambda i: -(len(prefixes[i]) + max(len(c) for c in continuations[i])),
    )
    results: list[np.ndarray | None] = [None] * len(prefixes)
    bar = tqdm(total=len(order), desc=desc, unit="q", disable=not progress)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch_p = [list(prefixes[i]) for i in idx]
            batch_c = [[list(c) for c in continuations[i]] for i in idx]
            if method == "cached":
                sums = _score_cached(model, batch_p, batch_c, device)
            else:
                sums = _score_naive(model, batch_p, batch_c, device)
            for i, s in zip(idx, sums, strict=True):
                results[i] = s
            bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return results  # type: ignore[return-value]


def _forward_kwargs(model: torch.nn.Module) -> tuple[str, bool]:
    """The name of the model's cache argument (``cache`` in transformers v5, ``past_key_values``
    in older or remote code) and whether it takes ``logits_to_keep``."""
    import inspect

    params = inspect.signature(model.forward).parameters
    name = "cache" if "cache" in params or "past_key_values" not in params else "past_key_values"
    return name, "logits_to_keep" in params


def _rows(continuations: list[list[list[int]]]) -> tuple[list[int], list[list[int]]]:
    """Flatten the continuations: (request index of each row, the rows)."""
    owner = [q for q, cs in enumerate(continuations) for _ in cs]
    rows = [c for cs in continuations for c in cs]
    return owner, rows


def _split(values: torch.Tensor, continuations: list[list[list[int]]]) -> list[np.ndarray]:
    flat = values.double().cpu().numpy()
    out, k = [], 0
    for cs in continuations:
        out.append(flat[k : k + len(cs)].copy())
        k += len(cs)
    return out


def _continuation_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Masked sum over positions of ``log_softmax(logits)[target]``.

    Shapes:
        logits ``[R, T, V]``, targets and mask ``[R, T]`` -> ``[R]``.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


def _score_cached(
    model: torch.nn.Module,
    prefixes: list[list[int]],
    continuations: list[list[list[int]]],
    device: torch.device,
) -> list[np.ndarray]:
    from transformers import DynamicCache

    q = len(prefixes)
    plen = torch.tensor([len(p) for p in prefixes], dtype=torch.long)
    p_max = int(plen.max())
    ids = torch.zeros(q, p_max, dtype=torch.long)
    mask = torch.zeros(q, p_max, dtype=torch.long)
    for i, p in enumerate(prefixes):
        ids[i, : len(p)] = torch.tensor(p)
        mask[i, : len(p)] = 1
    positions = torch.arange(p_max).expand(q, p_max)
    last = plen - 1
    # Only the logits at each prefix's last token are needed (they predict the first
    # continuation token): project just those positions onto the vocabulary.
    keep = torch.unique(last)
    cache_arg, slices = _forward_kwargs(model)
    cache = DynamicCache(config=model.config)
    extra = {"logits_to_keep": keep.to(device)} if slices else {}
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        **{cache_arg: cache},
        **extra,
    )
    # without logits_to_keep every position came back: take the same columns
    kept = out.logits if slices else out.logits[:, keep.to(device)]
    column = torch.searchsorted(keep, last).to(device)
    first = torch.log_softmax(kept[torch.arange(q, device=device), column].float(), -1)

    owner, rows = _rows(continuations)
    owner_t = torch.tensor(owner, dtype=torch.long, device=device)
    first_ids = torch.tensor([c[0] for c in rows], dtype=torch.long, device=device)
    sums = first[owner_t, first_ids]  # [R]
    width = max(len(c) for c in rows) - 1
    if width == 0:  # every continuation is one token: the prefix pass said it all
        return _split(sums, continuations)

    r = len(rows)
    inp = torch.zeros(r, width, dtype=torch.long)
    tgt = torch.zeros(r, width, dtype=torch.long)
    cmask = torch.zeros(r, width, dtype=torch.long)
    for j, c in enumerate(rows):
        n = len(c) - 1
        if n:
            inp[j, :n] = torch.tensor(c[:-1])
            tgt[j, :n] = torch.tensor(c[1:])
            cmask[j, :n] = 1
    # One cache row per continuation row (repeated indices copy the request's prefix).
    cache.batch_select_indices(owner_t)
    full_mask = torch.cat([mask[owner], cmask], dim=1)
    cpos = plen[owner].unsqueeze(1) + torch.arange(width).unsqueeze(0)
    out = model(
        input_ids=inp.to(device),
        attention_mask=full_mask.to(device),
        position_ids=cpos.to(device),
        use_cache=True,
        **{cache_arg: cache},
    )
    sums = sums + _continuation_logprobs(out.logits, tgt.to(device), cmask.to(device))
    return _split(sums, continuations)


def _score_naive(
    model: torch.nn.Module,
    prefixes: list[list[int]],
    continuations: list[list[list[int]]],
    device: torch.device,
) -> list[np.ndarray]:
    owner, rows = _rows(continuations)
    seqs = [prefixes[o] + c for o, c in zip(owner, rows, strict=True)]
    r, width = len(seqs), max(len(s) for s in seqs)
    # Logits are needed from the shortest prefix's last token on: positions lo .. width - 2
    # (projecting every position onto the vocabulary would cost more than the layers).
    lo = min(len(prefixes[o]) for o in owner) - 1
    ids = torch.zeros(r, width, dtype=torch.long)
    mask = torch.zeros(r, width, dtype=torch.long)
    tgt = torch.zeros(r, width - 1 - lo, dtype=torch.long)
    tmask = torch.zeros(r, width - 1 - lo, dtype=torch.long)
    for j, (o, s) in enumerate(zip(owner, seqs, strict=True)):
        ids[j, : len(s)] = torch.tensor(s)
        mask[j, : len(s)] = 1
        p = len(prefixes[o])
        # logits at position t predict token t + 1: the continuation occupies p .. len(s) - 1
        tgt[j, p - 1 - lo : len(s) - 1 - lo] = torch.tensor(s[p:])
        tmask[j, p - 1 - lo : len(s) - 1 - lo] = 1
    keep = torch.arange(lo, width - 1)
    _, slices = _forward_kwargs(model)
    extra = {"logits_to_keep": keep.to(device)} if slices else {}
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False, **extra)
    logits = out.logits if slices else out.logits[:, lo : width - 1]
    sums = _continuation_logprobs(logits, tgt.to(device), tmask.to(device))
    return _split(sums, continuations)


__all__ = ["METHODS", "score_continuations", "supports_prefix_cache"]
