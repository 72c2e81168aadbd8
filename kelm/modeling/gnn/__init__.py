"""GNN operators in ``torch_geometric`` style, one per file.

* :class:`RGCNEncoder` - stacked relational GCN (``RGCNConv``) with residuals and layer norm;
* :class:`TypedGATConv` - QA-GNN's relation- and node-type-aware graph attention.
"""

from __future__ import annotations

from kelm.modeling.gnn.rgcn import RGCNEncoder
from kelm.modeling.gnn.typed_gat import TypedGATConv

__all__ = ["RGCNEncoder", "TypedGATConv"]
