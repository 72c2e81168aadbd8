"""A multi-layer relational GCN encoder (Schlichtkrull et al. 2018) on ``torch_geometric``'s
:class:`~torch_geometric.nn.conv.RGCNConv`, with residual connections and layer norm."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import RGCNConv


class RGCNEncoder(nn.Module):
    r"""A stack of :class:`~torch_geometric.nn.conv.RGCNConv` layers (a ``MessagePassing``
    operator), each wrapped as

    .. math::
        h^{(l+1)} = \mathrm{LayerNorm}\Big(h^{(l)} + \mathrm{Dropout}\big(\mathrm{GELU}(
            W_0 h_i^{(l)} + \textstyle\sum_r \frac{1}{|\mathcal{N}_r(i)|}
            \sum_{j \in \mathcal{N}_r(i)} W_r h_j^{(l)})\big)\Big)

    Args:
        channels: width of the node states (input and output).
        num_relations: number of edge types (ids ``0 .. num_relations - 1``).
        num_layers: number of layers.
        num_bases: basis decomposition of the relation weights (``None``: one full matrix per
            relation).
        dropout: dropout on each layer's update.

    Shapes:
        - x: ``[n, channels]``
        - edge_index: ``[2, e]`` (row 0 source, row 1 target)
        - edge_type: ``[e]``
        - output: ``[n, channels]``
    """

    def __init__(
        self,
        channels: int,
        num_relations: int,
        num_layers: int = 2,
        num_bases: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_relations = num_relations
        self.convs = nn.ModuleList(
            RGCNConv(channels, channels, num_relations, num_bases=num_bases, aggr="mean")
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            conv.reset_parameters()
            norm.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        """Encode node states (see the class docstring for shapes)."""
        h = x  # [n, channels]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            update = conv(h, edge_index, edge_type)  # [n, channels]
            h = norm(h + self.dropout(torch.nn.functional.gelu(update)))  # [n, channels]
        return h

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.channels}, num_relations={self.num_relations}, "
            f"num_layers={len(self.convs)})"
        )
