"""Knowledge-graph embeddings: train TransE, DistMult, ComplEx or RotatE (PyG) on a graph
index, evaluate them (filtered link prediction, triple classification) and store them tied to
the graph's checksum.

    from kelm.kge import KGEConfig, embed_kg, load_embeddings
    report = embed_kg("graphs/cn100k", "emb/cn100k-distmult", KGEConfig("distmult", dim=100))
    emb = load_embeddings("emb/cn100k-distmult", GraphIndex.load("graphs/cn100k"))
"""

from kelm.kge.evaluate import (
    KnownTriples,
    Triples,
    best_threshold,
    fit_thresholds,
    link_prediction,
    rank_targets,
    read_triples,
    score_all,
    triple_classification,
)
from kelm.kge.models import MODELS, make_model
from kelm.kge.store import KGEmbeddings, load_embeddings, save_embeddings
from kelm.kge.train import EmbedReport, KGEConfig, embed_kg, train_kge

__all__ = [
    "MODELS",
    "EmbedReport",
    "KGEConfig",
    "KGEmbeddings",
    "KnownTriples",
    "Triples",
    "best_threshold",
    "embed_kg",
    "fit_thresholds",
    "link_prediction",
    "load_embeddings",
    "make_model",
    "rank_targets",
    "read_triples",
    "save_embeddings",
    "score_all",
    "train_kge",
    "triple_classification",
]
