"""Tiny random configs and a toy batch for the model tests (vocab 100, hidden 32, 2 layers).

A plain module (imported by the tests in this folder), not a conftest: ``tests/conftest.py``
already owns that name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.data import Batch, Data
from transformers import BertConfig

import kelm.modeling as km

B, C, L = 2, 3, 8
NUM_NODES, NUM_RELATIONS = 30, 3  # edge types: 0..5 index, 6..9 context
GRAPH_KWARGS: dict[str, Any] = {
    "num_nodes": NUM_NODES,
    "num_relations": NUM_RELATIONS,
    "node_dim": 16,
    "gnn_dim": 16,
    "gnn_layers": 2,
    "gnn_dropout": 0.0,
    "fc_dim": 16,
    "classifier_dropout": 0.0,
    # the papers' scoring: graph gradients flow from step 0 (residual scoring starts the graph
    # contribution at zero; tests/modeling/test_residual_scoring.py covers it)
    "residual": False,
}
FAMILIES = {
    "lm": (km.KelmLMConfig, km.KelmLMForMultipleChoice, {"classifier_dropout": 0.0}),
    "kagnet": (
        km.KagnetConfig,
        km.KagnetForMultipleChoice,
        {**GRAPH_KWARGS, "relation_dim": 8, "path_dim": 16},
    ),
    "qagnn": (km.QAGNNConfig, km.QAGNNForMultipleChoice, {**GRAPH_KWARGS, "gnn_heads": 2}),
}


def tiny_bert() -> BertConfig:
    return BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def make_model(family: str, **overrides: Any) -> Any:
    config_cls, model_cls, kwargs = FAMILIES[family]
    torch.manual_seed(0)
    return model_cls(config_cls(encoder_config=tiny_bert(), **{**kwargs, **overrides}))


def graph(node_ids: list[int], node_type: list[int], edges: list[tuple[int, int, int]]) -> Data:
    """A statement graph from ``(source, target, type)`` edges over local positions."""
    n = len(node_ids)
    edge_index = torch.tensor(
        [[s for s, _, _ in edges], [t for _, t, _ in edges]], dtype=torch.long
    ).reshape(2, -1)
    return Data(
        node_ids=torch.tensor(node_ids, dtype=torch.long),
        node_type=torch.tensor(node_type, dtype=torch.long),
        node_score=torch.linspace(-1, 1, n),
        edge_index=edge_index,
        edge_type=torch.tensor([r for _, _, r in edges], dtype=torch.long),
        num_nodes=n,
    )


def toy_graphs() -> Batch:
    """Six statement graphs (B=2 questions x C=3 choices): ordinary, empty, one with the
    retrieval's context node (id -1, edge types 2R / 2R+1 and inverses), one with only a context
    node, a single answer node, a larger one."""
    return Batch.from_data_list(
        [
            graph(
                [1, 2, 3, 4], [0, 1, 2, 2], [(0, 2, 0), (2, 1, 1), (2, 0, 3), (1, 2, 4), (3, 1, 2)]
            ),
            graph([], [], []),
            graph(
                [-1, 5, 6, 7],
                [3, 0, 1, 2],
                [(0, 1, 6), (0, 2, 7), (1, 0, 8), (2, 0, 9), (1, 3, 0), (3, 2, 5)],
            ),
            graph([-1], [3], []),
            graph([8], [1], []),
            graph(
                [9, 10, 11, 12, 13],
                [0, 0, 1, 2, 2],
                [(0, 3, 0), (3, 2, 1), (1, 4, 2), (4, 2, 3), (2, 4, 5), (3, 0, 3)],
            ),
        ]
    )


def toy_paths() -> dict[str, torch.Tensor]:
    """Paths of the six statements: the 2nd, 4th and 5th have none."""
    return km.pad_paths(
        [
            [([1, 3, 2], [0, 1]), ([1, 2], [4])],
            [],
            [([5, 7, 6], [0, 5]), ([5, 6], [2]), ([5, 20, 21, 6], [1, 2, 3])],
            [],
            [],
            [([9, 12, 11], [0, 1]), ([10, 13, 11], [2, 3]), ([9, 11], [1])],
        ],
        max_hops=3,
    )


def toy_batch() -> dict[str, Any]:
    """Inputs of every model family (the LM model ignores graphs and paths)."""
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 100, (B, C, L), generator=gen)
    attention_mask = torch.ones(B, C, L, dtype=torch.long)
    attention_mask[:, :, -2:] = 0
    token_type_ids = torch.zeros(B, C, L, dtype=torch.long)
    token_type_ids[:, :, L // 2 :] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "graphs": toy_graphs(),
        **toy_paths(),
        "labels": torch.tensor([0, 2]),
    }


def inputs_for(family: str, batch: dict[str, Any]) -> dict[str, Any]:
    keep = {"input_ids", "attention_mask", "token_type_ids", "labels"}
    if family != "lm":
        keep.add("graphs")
    if family == "kagnet":
        keep |= {"path_nodes", "path_rels", "path_mask"}
    return {k: v for k, v in batch.items() if k in keep}
