"""Examples -> padded batches of model inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from kelm.pipeline.examples import Example

if TYPE_CHECKING:
    from torch_geometric.data import Data


class Collator:
    """Pads a list of :class:`Example` into model inputs.

    Args:
        pad_token_id: the tokenizer's padding id.
        max_hops: KagNet's ``K`` (paths are ``K + 1`` nodes).
        max_paths: paths per statement kept.

    Returns (``__call__``), with ``B`` questions, ``C`` the most choices of one, ``L`` the
    longest statement:

        - ``input_ids``, ``attention_mask``, ``token_type_ids``: ``[B, C, L]``
        - ``choice_mask``: ``[B, C]`` bool (False for padding choices)
        - ``labels``: ``[B]`` (:data:`IGNORE_INDEX` when unknown)
        - ``graphs``: a PyG ``Batch`` of the ``B * C`` statement graphs, question-major
        - ``path_nodes`` ``[B*C, P, K+1]``, ``path_rels`` ``[B*C, P, K]``, ``path_mask``
          ``[B*C, P]`` (KagNet)
        - ``entity_ids``: ``[B, C, L]``, ``-1`` where no entity and in padding (ERNIE)
        - ``frozen``: ``[B, C, H]`` or ``[B, C, L, H]`` (zeros past a statement's own length)
          when every example carries frozen-encoder features
    """

    def __init__(self, pad_token_id: int, max_hops: int = 3, max_paths: int = 32) -> None:
        self.pad_token_id = int(pad_token_id)
        self.max_hops = max_hops
        self.max_paths = max_paths

    def __call__(self, examples: Sequence[Example]) -> dict[str, Any]:
        from torch_geometric.data import Batch

        from kelm.modeling import pad_paths

        b = len(examples)
        c = max(e.num_choices for e in examples)
        length = max(len(ids) for e in examples for ids in e.input_ids)
        input_ids = torch.full((b, c, length), self.pad_token_id, dtype=torch.long)  # [B, C, L]
        attention_mask = torch.zeros(b, c, length, dtype=torch.long)  # [B, C, L]
        with_types = all(e.token_type_ids is not None for e in examples)
        token_type_ids = torch.zeros(b, c, length, dtype=torch.long)  # [B, C, L]
        choice_mask = torch.zeros(b, c, dtype=torch.bool)  # [B, C]
        with_entities = all(e.entity_ids is not None for e in examples)
        entity_ids = torch.full((b, c, length), -1, dtype=torch.long)  # [B, C, L]
        graphs: list[Data] = []
        paths: list[list[tuple[list[int], list[int]]]] = []
        for i, e in enumerate(examples):
            for j in range(c):
                k = j if j < e.num_choices else 0  # padding choices copy the first one
                ids = e.input_ids[k]
                input_ids[i, j, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[i, j, : len(ids)] = 1
                if with_types:
                    types = e.token_type_ids[k]  # type: ignore[index]
                    token_type_ids[i, j, : len(types)] = torch.tensor(types, dtype=torch.long)
                choice_mask[i, j] = j < e.num_choices
                if with_entities:
                    ents = e.entity_ids[k]  # type: ignore[index]
                    entity_ids[i, j, : len(ents)] = torch.tensor(ents, dtype=torch.long)
                if e.graphs is not None:
                    graphs.append(e.graphs[k])
                if e.paths is not None:
                    paths.append(e.paths[k])
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "choice_mask": choice_mask,
            "labels": torch.tensor([e.label for e in examples], dtype=torch.long),  # [B]
        }
        if with_types:
            batch["token_type_ids"] = token_type_ids
        if with_entities:
            batch["entity_ids"] = entity_ids
        if all(e.frozen is not None for e in examples):
            batch["frozen"] = self._frozen(examples, c, length)
        if graphs:
            batch["graphs"] = Batch.from_data_list(graphs)  # B*C graphs
        if examples[0].paths is not None:
            batch.update(pad_paths(paths, max_hops=self.max_hops, max_paths=self.max_paths))
        return batch

    @staticmethod
    def _frozen(examples: Sequence[Example], c: int, length: int) -> torch.Tensor:
        """Frozen-encoder features padded like the tokens: padding choices copy the first one;
        token states are zero past a statement's own length.

        Shapes: per example ``[C_i, H]`` or ``[C_i, L_i, H]`` -> ``[B, C, H]`` or ``[B, C, L, H]``
        """
        first = examples[0].frozen
        assert first is not None
        tail = first.shape[1:] if first.dim() == 2 else (length, *first.shape[2:])
        out = first.new_zeros(len(examples), c, *tail)
        for i, e in enumerate(examples):
            f = e.frozen
            assert f is not None
            for j in range(c):
                k = j if j < e.num_choices else 0
                if f.dim() == 2:
                    out[i, j] = f[k]
                else:
                    out[i, j, : f.shape[1]] = f[k]
        return out


__all__ = ["Collator"]
