"""The QA-GNN graph attention layer: relation- and node-type-aware multi-head attention.

Yasunaga et al. (2021), "QA-GNN: Reasoning with Language Models and Knowledge Graphs for
Question Answering", section 3.3 (``GATConvE`` in their code).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from kelm.modeling.gather import gather_rows


class TypedGATConv(MessagePassing):
    r"""Graph attention whose messages are conditioned on the edge type and on the node types
    of both ends, with multi-head attention over each node's neighbours.

    For an edge :math:`j \to i` of type :math:`r` between nodes of types :math:`u_j, u_i`:

    .. math::
        e_{ij} &= \mathrm{MLP}\big(E_r[r] + E_s[u_j] + E_t[u_i]\big) \\
        q_i &= W_q [h_i; f_i], \quad k_{ij} = W_k [h_j; f_j; e_{ij}], \quad
        m_{ij} = W_m [h_j; f_j; e_{ij}] \\
        \alpha_{ij} &= \operatorname{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}
            \big(q_i^\top k_{ij} / \sqrt{d_h}\big) \quad \text{(per head)} \\
        h'_i &= \mathrm{MLP}\big(\textstyle\sum_j \alpha_{ij} m_{ij}\big)

    where :math:`f` are extra node features (QA-GNN: node-type and relevance-score
    embeddings). Self-loops get their own edge type (``num_edge_types``).

    Differences from the QA-GNN code: type embeddings (summed) replace one-hot vectors
    (equivalent up to the first linear map); the query comes from the target node and the
    softmax runs over each target's incoming edges (QA-GNN normalises over the source's
    outgoing edges, then rescales by the out-degree); the output MLP uses LayerNorm instead of
    BatchNorm (independent of the batch composition).

    Cost: the linear maps run once per node and once per distinct (edge type, source type,
    target type) triple (:math:`W [h_j; f_j; e_{ij}]` is split into a node and an edge part);
    per edge there are only gathers, a dot product and a weighted sum.

    Args:
        in_channels: width of the node states :math:`h`.
        out_channels: width of the output states (a multiple of ``heads``).
        num_edge_types: number of edge types (ids ``0 .. num_edge_types - 1``).
        num_node_types: number of node types.
        heads: attention heads.
        node_feature_dim: width of the extra node features :math:`f` (0: none).
        edge_dim: width of the edge-type embedding (default ``in_channels``).
        dropout: dropout on the attention coefficients.
        add_self_loops: let every node attend to itself.

    Shapes:
        - x: ``[n, in_channels]``
        - edge_index: ``[2, e]`` (row 0 source, row 1 target)
        - edge_type: ``[e]``; node_type: ``[n]``
        - node_feature: ``[n, node_feature_dim]``
        - output: ``[n, out_channels]``; with ``return_attention_weights``, also
          ``(edge_index [2, e'], alpha [e', heads])`` where ``e' = e + n`` with self-loops
          (the loops come last)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_edge_types: int,
        num_node_types: int,
        heads: int = 4,
        node_feature_dim: int = 0,
        edge_dim: int | None = None,
        dropout: float = 0.0,
        add_self_loops: bool = True,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        if out_channels % heads:
            raise ValueError(f"out_channels ({out_channels}) must be a multiple of heads ({heads})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_edge_types = num_edge_types
        self.num_node_types = num_node_types
        self.heads = heads
        self.head_dim = out_channels // heads
        self.node_feature_dim = node_feature_dim
        self.edge_dim = edge_dim or in_channels
        self.dropout = dropout
        self.add_self_loops = add_self_loops

        # +1: the self-loop edge type
        self.edge_type_embedding = nn.Embedding(num_edge_types + 1, self.edge_dim)
        self.source_type_embedding = nn.Embedding(num_node_types, self.edge_dim)
        self.target_type_embedding = nn.Embedding(num_node_types, self.edge_dim)
        self.edge_mlp = nn.Sequential(
            nn.Linear(self.edge_dim, self.edge_dim),
            nn.GELU(),
            nn.Linear(self.edge_dim, self.edge_dim),
        )
        node_in = in_channels + node_feature_dim
        # W_k [h_j; f_j; e_ij] = W_k^node [h_j; f_j] + W_k^edge e_ij (same for W_m): the node
        # parts run once per node, the edge parts once per distinct (edge type, source type,
        # target type), so the per-edge work is gathers and adds.
        self.lin_query = nn.Linear(node_in, out_channels)
        self.lin_key = nn.Linear(node_in, out_channels)
        self.lin_key_edge = nn.Linear(self.edge_dim, out_channels, bias=False)
        self.lin_message = nn.Linear(node_in, out_channels)
        self.lin_message_edge = nn.Linear(self.edge_dim, out_channels, bias=False)
        self.out_mlp = nn.Sequential(
            nn.Linear(out_channels, out_channels),
            nn.LayerNorm(out_channels),
            nn.GELU(),
            nn.Linear(out_channels, out_channels),
        )
        self._alpha: Tensor | None = None

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def edge_embeddings(
        self, edge_type: Tensor, source_type: Tensor, target_type: Tensor
    ) -> Tensor:
        """The typed edge vectors :math:`e_{ij}` (self-loops have type ``num_edge_types``).

        Shapes: ``[e]`` each -> ``[e, edge_dim]``
        """
        return self.edge_mlp(
            self.edge_type_embedding(edge_type)
            + self.source_type_embedding(source_type)
            + self.target_type_embedding(target_type)
        )

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_type: Tensor,
        node_type: Tensor,
        node_feature: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the layer (see the class docstring for arguments and shapes)."""
        n = x.size(0)
        if self.add_self_loops:
            loops = torch.arange(n, device=edge_index.device).unsqueeze(0).expand(2, n)
            edge_index = torch.cat([edge_index, loops], dim=1)  # [2, e + n]
            loop_type = edge_type.new_full((n,), self.num_edge_types)
            edge_type = torch.cat([edge_type, loop_type])  # [e']
        src, dst = edge_index[0], edge_index[1]
        s = self.num_node_types
        combo = (edge_type * s + node_type[src]) * s + node_type[dst]  # [e']
        combos, combo_of_edge = torch.unique(combo, return_inverse=True)  # [u], [e']
        table = self.edge_embeddings(
            combos // (s * s), (combos // s) % s, combos % s
        )  # [u, edge_dim]
        h = x if node_feature is None else torch.cat([x, node_feature], dim=-1)  # [n, node_in]
        # Thousands of edges share a few table rows: gather_rows keeps the summed gradients of
        # those rows bitwise reproducible with several CPU threads (plain indexing does not).
        out = self.propagate(
            edge_index,
            query=self.lin_query(h),  # [n, out]
            key=self.lin_key(h),  # [n, out]
            value=self.lin_message(h),  # [n, out]
            key_edge=gather_rows(self.lin_key_edge(table), combo_of_edge),  # [e', out]
            value_edge=gather_rows(self.lin_message_edge(table), combo_of_edge),  # [e', out]
            size=(n, n),
        )  # [n, out]
        out = self.out_mlp(out)  # [n, out]
        alpha, self._alpha = self._alpha, None
        if return_attention_weights:
            assert alpha is not None
            return out, (edge_index, alpha)
        return out

    def message(
        self,
        query_i: Tensor,
        key_j: Tensor,
        value_j: Tensor,
        key_edge: Tensor,
        value_edge: Tensor,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
    ) -> Tensor:
        heads, dh = self.heads, self.head_dim
        query = query_i.view(-1, heads, dh)  # [e', heads, dh]
        key = (key_j + key_edge).view(-1, heads, dh)  # [e', heads, dh]
        msg = (value_j + value_edge).view(-1, heads, dh)  # [e', heads, dh]
        scores = (query * key).sum(dim=-1) / math.sqrt(dh)  # [e', heads]
        alpha = softmax(scores, index, ptr, size_i)  # [e', heads], sums to 1 per target
        self._alpha = alpha
        alpha = nn.functional.dropout(alpha, p=self.dropout, training=self.training)
        return (msg * alpha.unsqueeze(-1)).reshape(-1, self.out_channels)  # [e', out]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
            f"edge_types={self.num_edge_types}, node_types={self.num_node_types}, "
            f"heads={self.heads})"
        )
