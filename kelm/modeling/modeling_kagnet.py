"""KagNet-style path reasoning (Lin et al. 2019, "KagNet: Knowledge-Aware Graph Networks for
Commonsense Reasoning"), on a Hugging Face text encoder.

Per statement (question, choice):

1. **Statement vector** ``s``: the encoder's pooled representation of "question [SEP] choice".
2. **Schema-graph GCN** (``schema_gcn``): the concepts of the statement's graph (``graphs``)
   start from the node table (projected to ``gnn_dim``) and are contextualised by a relational
   GCN (:class:`~kelm.modeling.gnn.RGCNEncoder`). Path concepts missing from the graph (or all,
   when no ``graphs`` are given or the GCN is off) use the projected table vector.
3. **Path encoder**: an LSTM over the triples ``[c_t; r_t; c_{t+1}]`` of each path; the path
   vector is the LSTM state after the last hop. With ``statement_paths`` (a kelm addition) the
   LSTM starts from a state computed from ``s`` rather than zeros, so its gates read each hop's
   relation against the question (in the paper ``s`` enters only through the attention
   queries and the final MLP; on the knowledge-necessary task of
   ``scripts/bench_knowledge.py`` a path's relation then had to be matched to the question by
   the final MLP alone, which some seeds never learned in the budget).
4. **Hierarchical attention** with ``s`` as query: over the paths of each concept pair
   ``(q, a)`` (first and last node of the path), giving ``R_qa``; the pair vector is
   ``[R_qa; T_qa]`` with ``T_qa = MLP([c_q; c_a])``; then over the pairs of the statement.
5. **Score**: ``MLP([s; g])`` where ``g`` is the attended pair vector, or a learned "no path"
   vector for a statement without paths; plus (``residual``) the plain LM head ``w^T s``, the
   MLP's last layer starting at zero.

Simplifications against the paper: the GCN is relational (typed edges) rather than a plain GCN
over an unlabeled schema graph, ``T_qa`` leaves out ``s`` (it enters through the attention
queries), and the LSTM is unidirectional.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter, softmax
from transformers import initialization as init
from transformers.modeling_outputs import MultipleChoiceModelOutput
from transformers.utils import can_return_tuple

from kelm.errors import KelmError
from kelm.modeling.backbones import KelmPreTrainedModel, NodeEmbedding, zero_init
from kelm.modeling.configuration_kagnet import KagnetConfig
from kelm.modeling.gnn import RGCNEncoder
from kelm.modeling.outputs import KelmMultipleChoiceOutput


def pad_paths(
    paths: Sequence[Any],
    max_hops: int = 3,
    max_paths: int | None = None,
) -> dict[str, Tensor]:
    """Pad the paths of a batch of statements into the tensors
    :meth:`KagnetForMultipleChoice.forward` takes.

    Args:
        paths: one entry per statement (question-major order): a list of ``(node_ids,
            relation_ids)`` paths, ``len(node_ids) == len(relation_ids) + 1``; a hop's relation
            may be a list of relation ids (the first is used). An object with ``to_list()``
            (``kelm.retrieval.paths.PathSet``) is read through it.
        max_hops: ``K``; longer paths raise ``ValueError``.
        max_paths: keep at most this many paths per statement (the first ones).

    Returns:
        ``{"path_nodes": [N, P, K + 1], "path_rels": [N, P, K], "path_mask": [N, P]}`` with
        ``-1`` padding, ``P`` = the most paths of a statement (at least 1).
    """
    rows: list[list[tuple[list[int], list[int]]]] = []
    for statement in paths:
        items = statement.to_list() if hasattr(statement, "to_list") else statement
        kept = []
        for nodes, rels in items:
            hop_rels = [int(r[0]) if isinstance(r, (list, tuple)) else int(r) for r in rels]
            if len(nodes) != len(hop_rels) + 1:
                raise ValueError(f"a path of {len(nodes)} nodes needs {len(nodes) - 1} relations")
            if len(hop_rels) > max_hops:
                raise ValueError(f"a path of {len(hop_rels)} hops exceeds max_hops={max_hops}")
            if hop_rels:
                kept.append(([int(n) for n in nodes], hop_rels))
        rows.append(kept[:max_paths] if max_paths is not None else kept)
    n, p = len(rows), max([len(r) for r in rows] + [1])
    path_nodes = torch.full((n, p, max_hops + 1), -1, dtype=torch.long)
    path_rels = torch.full((n, p, max_hops), -1, dtype=torch.long)
    path_mask = torch.zeros(n, p, dtype=torch.bool)
    for i, row in enumerate(rows):
        for j, (nodes, rels) in enumerate(row):
            path_nodes[i, j, : len(nodes)] = torch.tensor(nodes)
            path_rels[i, j, : len(rels)] = torch.tensor(rels)
            path_mask[i, j] = True
    return {"path_nodes": path_nodes, "path_rels": path_rels, "path_mask": path_mask}


class KagnetForMultipleChoice(KelmPreTrainedModel):
    """KagNet-style multiple choice: statement vector + attended KG path vectors -> score.

    See the module docstring for the architecture.

    Args:
        config: a :class:`KagnetConfig`.
    """

    config_class = KagnetConfig
    config: KagnetConfig

    def __init__(self, config: KagnetConfig) -> None:
        super().__init__(config)
        self._build_text_encoder()
        h, d, p = self.statement_dim, config.gnn_dim, config.path_dim
        self.node_embedding = NodeEmbedding(config.num_nodes, config.node_dim)
        self.relation_embedding = nn.Embedding(2 * config.num_relations, config.relation_dim)
        self.concept_proj = nn.Linear(config.node_dim, d)
        self.gcn = (
            RGCNEncoder(
                d, config.num_edge_types, config.gnn_layers, config.num_bases, config.gnn_dropout
            )
            if config.schema_gcn
            else None
        )
        self.gnn_dropout = nn.Dropout(config.gnn_dropout)
        self.path_lstm = nn.LSTM(2 * d + config.relation_dim, p, batch_first=True)
        # statement_paths: the LSTM reads every path from a state set by its statement
        self.path_init = nn.Linear(h, 2 * p) if config.statement_paths else None
        self.path_query = nn.Linear(h, p)
        self.path_key = nn.Linear(p, p)
        self.pair_mlp = nn.Sequential(nn.Linear(2 * d, p), nn.GELU(), nn.Linear(p, p))
        self.pair_query = nn.Linear(h, 2 * p)
        self.pair_key = nn.Linear(2 * p, 2 * p)
        self.no_path = nn.Parameter(torch.zeros(2 * p))
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Sequential(
            nn.Linear(h + 2 * p, config.fc_dim),
            nn.GELU(),
            nn.Dropout(config.classifier_dropout),
            nn.Linear(config.fc_dim, 1),
        )
        # residual scoring: the plain LM's head; the graph MLP's last layer starts at zero
        self.text_head = nn.Linear(h, 1) if config.residual else None
        if config.residual:
            zero_init(self.classifier[-1])
        self.post_init()
        self._apply_freeze()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, KagnetForMultipleChoice):
            init.normal_(module.no_path, mean=0.0, std=self.config.initializer_range)

    def _apply_freeze(self) -> None:
        super()._apply_freeze()
        self.relation_embedding.weight.requires_grad_(not self.config.freeze_relation_embeddings)

    def init_relation_embeddings(self, tensor: Tensor | Any, freeze: bool = False) -> None:
        """Initialise the relation table from KG embeddings (``relation`` of a kelm KGE file).

        Args:
            tensor: ``[R, relation_dim]`` (inverse relations get the negated vectors, as in
                TransE) or ``[2R, relation_dim]``.
            freeze: keep the table fixed in training (saved in the config).
        """
        tensor = torch.as_tensor(tensor)
        r, dim = self.config.num_relations, self.config.relation_dim
        if tensor.dim() == 2 and tensor.shape == (r, dim):
            tensor = torch.cat([tensor, -tensor])
        if tuple(tensor.shape) != (2 * r, dim):
            raise KelmError(
                f"relation embeddings of shape {tuple(tensor.shape)} fit neither [{r}, {dim}] nor "
                f"[{2 * r}, {dim}] (num_relations, relation_dim)"
            )
        with torch.no_grad():
            self.relation_embedding.weight.copy_(tensor.to(self.relation_embedding.weight.dtype))
        self.config.freeze_relation_embeddings = bool(freeze)
        self._apply_freeze()

    # ------------------------------------------------------------------ forward
    def _concepts(
        self, stmt: Tensor, node_ids: Tensor, graph_states: Tensor | None, graph_keys: Tensor | None
    ) -> Tensor:
        """Concept vectors of ``(statement, node id)`` pairs: the GCN state of the node in that
        statement's graph when it is there, else the projected node table vector.

        Shapes: stmt, node_ids ``[*]`` -> ``[*, gnn_dim]``
        """
        base = self.gnn_dropout(self.concept_proj(self.node_embedding(node_ids)))  # [*, d]
        if graph_states is None or graph_keys is None or graph_keys.numel() == 0:
            return base
        keys = stmt * (self.config.num_nodes + 1) + node_ids + 1  # [*]
        sorted_keys, order = graph_keys.sort()
        pos = torch.searchsorted(sorted_keys, keys).clamp(max=sorted_keys.numel() - 1)  # [*]
        found = (sorted_keys[pos] == keys) & (node_ids >= 0)  # [*]
        return torch.where(found.unsqueeze(-1), graph_states[order[pos]], base)  # [*, d]

    def _path_vectors(
        self,
        statements: Tensor,
        path_nodes: Tensor,
        path_rels: Tensor,
        path_mask: Tensor | None,
        graph_states: Tensor | None,
        graph_keys: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Hierarchical path attention.

        Shapes:
            - statements ``[N, H]``; path_nodes ``[N, P, K+1]``; path_rels ``[N, P, K]``;
              path_mask ``[N, P]``
            - output: ``(g [N, 2 * path_dim], has_path [N] bool, weight [N, P])``, ``weight``
              each path's attention times its pair's (0 for padding)
        """
        n = statements.size(0)
        p_dim = self.config.path_dim
        shapes_ok = path_nodes.dim() == 3 and path_nodes.size(0) == n
        if not shapes_ok or path_rels.shape[:2] != path_nodes.shape[:2]:
            raise ValueError(
                f"path tensors must be [B*C={n}, P, K+1] and [B*C, P, K], got "
                f"{list(path_nodes.shape)} and {list(path_rels.shape)}"
            )
        hops_all = (path_rels >= 0).sum(-1)  # [N, P]
        valid = (hops_all > 0) & (path_nodes[..., 0] >= 0)  # [N, P]
        if path_mask is not None:
            valid &= path_mask.bool()
        stmt, slot = valid.nonzero(as_tuple=True)  # [M], [M]
        g = statements.new_zeros(n, 2 * p_dim)
        has_path = torch.zeros(n, dtype=torch.bool, device=statements.device)
        weight = statements.new_zeros(valid.shape)  # [N, P]
        if stmt.numel() == 0:
            return g, has_path, weight
        nodes = path_nodes[stmt, slot]  # [M, K+1]
        rels = path_rels[stmt, slot]  # [M, K]
        hops = hops_all[stmt, slot]  # [M]
        self._check_ids(nodes, None)
        num_rel_ids = 2 * self.config.num_relations
        if int(rels.max()) >= num_rel_ids:
            raise KelmError(
                f"path relation id {int(rels.max())} out of range 0..{num_rel_ids - 1} "
                "(2 * num_relations)"
            )
        m = nodes.size(0)
        concepts = self._concepts(
            stmt.unsqueeze(1).expand_as(nodes), nodes, graph_states, graph_keys
        )  # [M, K+1, d]
        relations = self.relation_embedding(rels.clamp(min=0))  # [M, K, rd]
        triples = torch.cat([concepts[:, :-1], relations, concepts[:, 1:]], dim=-1)  # [M, K, 2d+rd]
        if self.path_init is not None:  # the question sets the state the path is read from
            h0, c0 = torch.tanh(self.path_init(statements)[stmt]).chunk(2, dim=-1)  # [M, p] x2
            states, _ = self.path_lstm(
                triples, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous())
            )  # [M, K, p]
        else:
            states, _ = self.path_lstm(triples)  # [M, K, p]
        arange = torch.arange(m, device=nodes.device)
        paths = states[arange, hops - 1]  # [M, p]: state after the last hop

        # Level 1: attention over the paths of each (statement, q, a) pair.
        last = nodes[arange, hops]  # [M]
        key = torch.stack([stmt, nodes[:, 0], last], dim=1)  # [M, 3]
        pairs, pair_of_path = torch.unique(key, dim=0, return_inverse=True)  # [Np, 3], [M]
        num_pairs = pairs.size(0)
        query = self.path_query(statements)[stmt]  # [M, p]
        scores = (query * self.path_key(paths)).sum(-1) / math.sqrt(p_dim)  # [M]
        alpha = softmax(scores, pair_of_path, num_nodes=num_pairs)  # [M]
        r_pair = scatter(alpha.unsqueeze(-1) * paths, pair_of_path, 0, num_pairs, "sum")  # [Np, p]
        c_q = scatter(concepts[:, 0], pair_of_path, 0, num_pairs, "mean")  # [Np, d]
        c_a = scatter(concepts[arange, hops], pair_of_path, 0, num_pairs, "mean")  # [Np, d]
        t_pair = self.pair_mlp(torch.cat([c_q, c_a], dim=-1))  # [Np, p]
        pair_vec = torch.cat([r_pair, t_pair], dim=-1)  # [Np, 2p]

        # Level 2: attention over the pairs of each statement.
        pair_stmt = pairs[:, 0]  # [Np]
        query = self.pair_query(statements)[pair_stmt]  # [Np, 2p]
        scores = (query * self.pair_key(pair_vec)).sum(-1) / math.sqrt(2 * p_dim)  # [Np]
        beta = softmax(scores, pair_stmt, num_nodes=n)  # [Np]
        g = scatter(beta.unsqueeze(-1) * pair_vec, pair_stmt, 0, n, "sum")  # [N, 2p]
        has_path[pair_stmt] = True
        weight[stmt, slot] = (alpha * beta[pair_of_path]).detach()
        return g, has_path, weight

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        graphs: Batch | None = None,
        path_nodes: Tensor | None = None,
        path_rels: Tensor | None = None,
        path_mask: Tensor | None = None,
        statement_vectors: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
    ) -> MultipleChoiceModelOutput:
        """Score every choice.

        Args:
            input_ids, attention_mask, token_type_ids: the tokenised statements.
            graphs: the ``B * C`` statement graphs (question-major), a ``torch_geometric``
                ``Batch`` with ``node_ids``, ``edge_index``, ``edge_type``; ``None`` skips the
                schema-graph GCN (as does ``config.schema_gcn = False``).
            path_nodes, path_rels, path_mask: the padded paths (:func:`pad_paths`); ``None``:
                no paths (every statement uses the "no path" vector).
            statement_vectors: precomputed statement vectors of a frozen encoder (see
                :meth:`~kelm.modeling.backbones.KelmPreTrainedModel.encode_statements`).
            labels: index of the right choice (optional).
            output_attentions: also return the path attention
                (:class:`~kelm.modeling.outputs.KelmMultipleChoiceOutput`'s ``path_attention``).

        Shapes:
            - input_ids, attention_mask, token_type_ids: ``[B, C, L]``
            - path_nodes ``[B*C, P, K+1]``, path_rels ``[B*C, P, K]`` (``-1`` padding),
              path_mask ``[B*C, P]``
            - statement_vectors: ``[B, C, H]``
            - labels: ``[B]``
            - output: ``logits [B, C]``; ``loss`` (cross-entropy over choices) when ``labels``
        """
        statements, num_choices = self.encode_statements(
            input_ids, attention_mask, token_type_ids, statement_vectors
        )  # [N, H]
        n = statements.size(0)

        graph_states = graph_keys = None
        if graphs is not None and self.gcn is not None:
            if graphs.num_graphs != n:
                raise ValueError(f"got {graphs.num_graphs} graphs for {n} statements")
            node_ids = graphs.node_ids  # [n_nodes]
            self._check_ids(node_ids, graphs.edge_type)
            x = self.gnn_dropout(self.concept_proj(self.node_embedding(node_ids)))  # [n_nodes, d]
            graph_states = self.gcn(x, graphs.edge_index, graphs.edge_type)  # [n_nodes, d]
            graph_keys = graphs.batch * (self.config.num_nodes + 1) + node_ids + 1  # [n_nodes]

        if path_nodes is not None and path_rels is not None:
            g, has_path, weight = self._path_vectors(
                statements, path_nodes, path_rels, path_mask, graph_states, graph_keys
            )  # [N, 2p], [N], [N, P]
        else:
            g = statements.new_zeros(n, 2 * self.config.path_dim)
            has_path = torch.zeros(n, dtype=torch.bool, device=statements.device)
            weight = statements.new_zeros(n, 0)
        g = torch.where(has_path.unsqueeze(-1), g, self.no_path.expand(n, -1))  # [N, 2p]

        features = torch.cat([self.dropout(statements), g], dim=-1)  # [N, H + 2p]
        scores = self.classifier(features)  # [N, 1]
        if self.text_head is not None:  # residual: the text baseline plus the graph's part
            scores = scores + self.text_head(self.dropout(statements))  # [N, 1]
        output = self.choice_output(scores, num_choices, labels)  # logits [B, C]
        if not output_attentions:
            return output
        return KelmMultipleChoiceOutput(
            loss=output.loss, logits=output.logits, path_attention=weight
        )


__all__ = ["KagnetForMultipleChoice", "pad_paths"]
