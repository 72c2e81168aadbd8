"""Statement subgraphs as one flat batch with exactly one context node per statement: the input
of the graph families that reason around a context node (QA-GNN, GSC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from kelm.retrieval.subgraph import ANSWER, CONTEXT, QUESTION

if TYPE_CHECKING:
    from torch_geometric.data import Batch


@dataclass
class ContextGraphs:
    """The flat batch (``n'`` nodes, ``e'`` edges, context nodes and edges included).

    Attributes:
        node_ids: ``[n']`` graph node ids, ``-1`` for context nodes.
        node_type: ``[n']`` question / answer / intermediate / context.
        node_score: ``[n']`` float relevance scores (0 for added context nodes).
        batch: ``[n']`` the statement of each node.
        edge_index: ``[2, e']``; edge_type: ``[e']``.
        context_of_graph: ``[N]`` the position of each statement's context node.
    """

    node_ids: Tensor
    node_type: Tensor
    node_score: Tensor
    batch: Tensor
    edge_index: Tensor
    edge_type: Tensor
    context_of_graph: Tensor


def with_context_nodes(
    graphs: Batch | None, n: int, num_relations: int, device: torch.device
) -> ContextGraphs:
    """Flatten ``graphs`` (``n`` statement graphs, question-major) and give every graph exactly
    one context node: a graph retrieved with ``context=True`` has one already; the others get
    one, with edges context->question (type ``2R``), context->answer (``2R+1``) and their
    reverses (``2R+2``, ``2R+3``). ``graphs=None`` is ``n`` empty graphs.

    Raises:
        ValueError: ``graphs`` holds another number of graphs than ``n``.
    """
    r2 = 2 * num_relations
    if graphs is None:
        node_ids = torch.zeros(0, dtype=torch.long, device=device)
        node_type, batch = node_ids.clone(), node_ids.clone()
        node_score = torch.zeros(0, device=device)
        edge_index = torch.zeros(2, 0, dtype=torch.long, device=device)
        edge_type = node_ids.clone()
    else:
        if graphs.num_graphs != n:
            raise ValueError(f"got {graphs.num_graphs} graphs for {n} statements")
        node_ids, node_type = graphs.node_ids, graphs.node_type.long()
        node_score = getattr(graphs, "node_score", None)
        if node_score is None:
            node_score = torch.zeros(node_ids.size(0), device=device)
        batch, edge_index, edge_type = graphs.batch, graphs.edge_index, graphs.edge_type

    num_nodes = node_ids.size(0)
    is_ctx = node_type == CONTEXT  # [n]
    has_ctx = torch.zeros(n, dtype=torch.bool, device=device)
    has_ctx[batch[is_ctx]] = True
    missing = (~has_ctx).nonzero(as_tuple=True)[0]  # [m] graphs without a context node
    context_of_graph = torch.empty(n, dtype=torch.long, device=device)
    ctx_pos = is_ctx.nonzero(as_tuple=True)[0]
    context_of_graph[batch[ctx_pos]] = ctx_pos
    context_of_graph[missing] = num_nodes + torch.arange(missing.numel(), device=device)
    if missing.numel():
        qa = (~has_ctx[batch]) & ((node_type == QUESTION) | (node_type == ANSWER))  # [n]
        qa_pos = qa.nonzero(as_tuple=True)[0]  # [q]
        ctx = context_of_graph[batch[qa_pos]]  # [q]
        forward_type = r2 + (node_type[qa_pos] == ANSWER).long()  # [q]
        edge_index = torch.cat(
            [edge_index, torch.stack([ctx, qa_pos]), torch.stack([qa_pos, ctx])], dim=1
        )  # [2, e + 2q]
        edge_type = torch.cat([edge_type, forward_type, forward_type + 2])  # [e + 2q]
        node_ids = torch.cat([node_ids, node_ids.new_full((missing.numel(),), -1)])
        node_type = torch.cat([node_type, node_type.new_full((missing.numel(),), CONTEXT)])
        node_score = torch.cat([node_score, node_score.new_zeros(missing.numel())])
        batch = torch.cat([batch, missing])
    return ContextGraphs(
        node_ids, node_type, node_score.float(), batch, edge_index, edge_type, context_of_graph
    )


__all__ = ["ContextGraphs", "with_context_nodes"]
