"""The GNN operators on hand-written graphs: attention structure of the typed GAT, locality and
edge-type conditioning, the RGCN encoder on empty and non-empty graphs."""

from __future__ import annotations

import torch
from torch_geometric.nn import MessagePassing

from kelm.modeling.gnn import RGCNEncoder, TypedGATConv

# Targets: node 2 <- {0, 1} with types 0 and 1; node 3 <- {2}; node 4 isolated; 0 and 1 receive
# nothing. With self-loops every node also attends to itself.
EDGE_INDEX = torch.tensor([[0, 1, 2], [2, 2, 3]])
EDGE_TYPE = torch.tensor([0, 1, 2])
NODE_TYPE = torch.tensor([0, 1, 2, 2, 2])


def make_gat(**kwargs) -> TypedGATConv:
    torch.manual_seed(0)
    return TypedGATConv(8, 8, num_edge_types=3, num_node_types=4, heads=2, **kwargs).eval()


def test_typed_gat_attention_is_a_distribution_over_each_targets_neighbours() -> None:
    conv = make_gat(node_feature_dim=4)
    assert isinstance(conv, MessagePassing)
    x, feats = torch.randn(5, 8), torch.randn(5, 4)
    out, (edge_index, alpha) = conv(
        x, EDGE_INDEX, EDGE_TYPE, NODE_TYPE, feats, return_attention_weights=True
    )
    assert out.shape == (5, 8)
    assert edge_index.shape == (2, 3 + 5) and alpha.shape == (3 + 5, 2)  # loops appended
    assert torch.equal(edge_index[:, 3:], torch.arange(5).repeat(2, 1))
    per_target = torch.zeros(5, 2).index_add_(0, edge_index[1], alpha)
    torch.testing.assert_close(per_target, torch.ones(5, 2))
    # Nodes without incoming edges attend only to themselves.
    for node in (0, 1, 4):
        torch.testing.assert_close(alpha[3 + node], torch.ones(2))
    # Node 2 spreads its attention over 0, 1 and itself; node 3 over 2 and itself.
    assert (alpha[[0, 1, 3 + 2]] > 0).all() and (alpha[[0, 1, 3 + 2]] < 1).all()


def test_typed_gat_uniform_attention_when_keys_are_constant() -> None:
    conv = make_gat()
    with torch.no_grad():
        conv.lin_key.weight.zero_()
        conv.lin_key.bias.zero_()
        conv.lin_key_edge.weight.zero_()
    _, (edge_index, alpha) = conv(
        torch.randn(5, 8), EDGE_INDEX, EDGE_TYPE, NODE_TYPE, return_attention_weights=True
    )
    in_degree = torch.bincount(edge_index[1], minlength=5).float()  # self-loop included
    torch.testing.assert_close(alpha, (1 / in_degree[edge_index[1]]).unsqueeze(-1).expand(-1, 2))


def test_typed_gat_is_local_and_conditioned_on_edge_and_node_types() -> None:
    conv = make_gat()
    x = torch.randn(5, 8)
    base = conv(x, EDGE_INDEX, EDGE_TYPE, NODE_TYPE)
    # Changing node 4 (connected to nothing) changes only node 4.
    moved = x.clone()
    moved[4] += 1.0
    out = conv(moved, EDGE_INDEX, EDGE_TYPE, NODE_TYPE)
    torch.testing.assert_close(out[:4], base[:4])
    assert not torch.allclose(out[4], base[4])
    # Retyping the edge 0 -> 2 changes node 2 (its target) and nothing else.
    out = conv(x, EDGE_INDEX, torch.tensor([2, 1, 2]), NODE_TYPE)
    changed = ~torch.isclose(out, base).all(dim=1)
    assert changed.tolist() == [False, False, True, False, False]
    # Retyping node 0 (a source) changes its own self-loop message and its target, node 2.
    out = conv(x, EDGE_INDEX, EDGE_TYPE, torch.tensor([3, 1, 2, 2, 2]))
    changed = ~torch.isclose(out, base).all(dim=1)
    assert changed.tolist() == [True, False, True, False, False]


def test_typed_gat_without_edges_and_self_loops() -> None:
    conv = make_gat(add_self_loops=False)
    out = conv(
        torch.randn(3, 8),
        torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(3, dtype=torch.long),
    )
    assert out.shape == (3, 8) and torch.isfinite(out).all()


def test_rgcn_encoder_shapes_gradients_and_empty_graphs() -> None:
    torch.manual_seed(0)
    enc = RGCNEncoder(8, num_relations=3, num_layers=2, num_bases=2)
    assert all(isinstance(conv, MessagePassing) for conv in enc.convs)
    x = torch.randn(5, 8, requires_grad=True)
    out = enc(x, EDGE_INDEX, EDGE_TYPE)
    assert out.shape == (5, 8)
    # The sum of a LayerNorm output over its channels is constant (weight 1, bias 0 at init), so
    # `out[3].sum()` has a true gradient of exactly zero: read node 3 through a fixed random
    # projection instead. Node 3 hears node 2, which hears 0 and 1 (two layers); node 4 is
    # connected to nothing, so its gradient is exactly zero, not merely small.
    projection = torch.randn(8, generator=torch.Generator().manual_seed(1))
    (out[3] @ projection).backward()
    # Real dependencies give gradients of order 0.1-1; float32 rounding noise is ~1e-7.
    assert (x.grad[[0, 1, 2, 3]].abs().sum(dim=1) > 1e-3).all()
    assert x.grad[4].abs().sum() == 0
    no_edges = enc(
        torch.randn(4, 8), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    )
    assert no_edges.shape == (4, 8) and torch.isfinite(no_edges).all()
    assert enc(
        torch.zeros(0, 8), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    ).shape == (0, 8)
