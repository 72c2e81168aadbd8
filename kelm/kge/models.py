"""The KGE model registry: the model names kelm knows, their PyG classes and defaults.

Training (:mod:`kelm.kge.train`) builds models from here, and the store
(:mod:`kelm.kge.store`) rebuilds them when loading embeddings, so neither needs the other.
"""

from __future__ import annotations

from torch_geometric.nn.kge import ComplEx, DistMult, KGEModel, RotatE, TransE

from kelm.errors import KelmError

MODELS = ("transe", "distmult", "complex", "rotate")

#: The PyG class of each model name (exact types: a subclass is not a known model).
MODEL_CLASSES: dict[str, type[KGEModel]] = {
    "transe": TransE,
    "distmult": DistMult,
    "complex": ComplEx,
    "rotate": RotatE,
}

#: Per-model defaults for what the user leaves unset (None in ``KGEConfig``).
MODEL_DEFAULTS: dict[str, dict[str, float]] = {
    "transe": {"lr": 0.01, "margin": 1.0, "reg": 0.0},
    "distmult": {"lr": 0.01, "margin": 1.0, "reg": 1e-4},
    "complex": {"lr": 0.01, "margin": 0.0, "reg": 1e-4},
    "rotate": {"lr": 0.01, "margin": 9.0, "reg": 0.0},
}


def make_model(
    name: str,
    num_nodes: int,
    num_relations: int,
    dim: int,
    margin: float | None = None,
    p_norm: float | None = None,
    sparse: bool = False,
) -> KGEModel:
    """A freshly initialised PyG KGE model (initialisation draws from torch's global RNG).

    ``sparse`` makes the embedding gradients sparse (train with ``torch.optim.SparseAdam``).
    """
    if name not in MODELS:
        raise KelmError(f"unknown --model {name!r}; choose one of {', '.join(MODELS)}")
    margin = MODEL_DEFAULTS[name]["margin"] if margin is None else margin
    if name == "transe":
        return TransE(
            num_nodes, num_relations, dim, margin=margin, p_norm=p_norm or 1.0, sparse=sparse
        )
    if name == "distmult":
        return DistMult(num_nodes, num_relations, dim, margin=margin, sparse=sparse)
    if name == "complex":
        return ComplEx(num_nodes, num_relations, dim, sparse=sparse)
    return RotatE(num_nodes, num_relations, dim, margin=margin, sparse=sparse)


def model_name(model: KGEModel) -> str:
    """The registry name of ``model``'s class.

    Raises:
        KelmError: ``model`` is not exactly one of the registered classes.
    """
    for name, cls in MODEL_CLASSES.items():
        if type(model) is cls:
            return name
    raise KelmError(
        f"cannot store a {type(model).__name__}: only TransE, DistMult, ComplEx "
        "and RotatE are supported"
    )
