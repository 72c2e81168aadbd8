"""Saving and loading KG embeddings, tied to the graph they were trained on.

Directory layout (format version 1)::

    embeddings.safetensors   ``entity`` [num_nodes, width] and ``relation`` [num_relations, width]
    manifest.json            graph checksum, model, dim, epochs, seed, options, metrics, losses,
                             the tensor layout, the sha256 of the safetensors file, and
                             ``checksum``: the digest of the fields in :data:`IDENTITY`

Row ``i`` of ``entity`` is node id ``i`` of the graph, row ``j`` of ``relation`` its forward
relation ``j``. The tensors are the PyG model's parameters, so :meth:`KGEmbeddings.to_model`
rebuilds a model that scores exactly as the trained one:

* ``transe``, ``distmult``: ``entity`` [N, dim], ``relation`` [R, dim] (TransE L_p-normalises
  entity vectors when scoring; the stored vectors are the raw parameters);
* ``complex``: ``entity`` [N, 2*dim] = real | imaginary part, ``relation`` [R, 2*dim] likewise;
* ``rotate``: ``entity`` [N, 2*dim] = real | imaginary part, ``relation`` [R, dim] = phases.

Embeddings are only meaningful with the graph whose node ids they index: loading them with
another graph (a different checksum) raises a :class:`~kelm.errors.KelmError`, and so does a
manifest that does not describe its tensors (an edited model, width or option: the manifest's
checksum, the safetensors metadata and the tensor shapes are all checked).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch_geometric.nn.kge import KGEModel

import kelm
from kelm._io import (
    check_manifest_checksum,
    fields_checksum,
    publish_dir,
    read_manifest,
    remove_stale_staging,
    sha256_file,
    staging_dir,
    verify_file,
    write_json,
)
from kelm.errors import KelmError
from kelm.kge.models import make_model, model_name

if TYPE_CHECKING:
    from kelm.graph.index import GraphIndex

FORMAT_VERSION = 1
KIND = "kelm-kg-embeddings"
TENSORS = "embeddings.safetensors"
MANIFEST = "manifest.json"
#: The manifest fields the embeddings' meaning depends on; the manifest's ``checksum`` is their
#: digest (:func:`kelm._io.fields_checksum`), so an edited model, width or option is refused.
IDENTITY = ("kind", "format_version", "graph", "model", "dim", "epochs", "seed", "options")
IDENTITY += ("layout", "files")
#: Tensor widths per model, in units of ``dim``: (entity, relation).
WIDTHS = {"transe": (1, 1), "distmult": (1, 1), "complex": (2, 2), "rotate": (2, 1)}
LAYOUT = {
    "transe": {"entity": "[N, dim]", "relation": "[R, dim]"},
    "distmult": {"entity": "[N, dim]", "relation": "[R, dim]"},
    "complex": {"entity": "[N, 2*dim] real|imag", "relation": "[R, 2*dim] real|imag"},
    "rotate": {"entity": "[N, 2*dim] real|imag", "relation": "[R, dim] phase (radians)"},
}


def model_tensors(model: KGEModel) -> dict[str, torch.Tensor]:
    """The ``entity`` and ``relation`` tensors of a trained model (see the module layout)."""
    name = model_name(model)
    ent = model.node_emb.weight.detach()
    rel = model.rel_emb.weight.detach()
    if name in ("complex", "rotate"):
        ent = torch.cat([ent, model.node_emb_im.weight.detach()], dim=1)
    if name == "complex":
        rel = torch.cat([rel, model.rel_emb_im.weight.detach()], dim=1)
    return {
        "entity": ent.float().contiguous().clone(),
        "relation": rel.float().contiguous().clone(),
    }


def save_embeddings(out: str | Path, model: KGEModel, manifest: dict[str, Any]) -> Path:
    """Write ``model``'s embeddings and ``manifest`` into the directory ``out``, atomically.

    ``manifest`` must hold ``graph.checksum``; ``kind``, ``format_version``, ``model``, ``dim``,
    ``layout`` and ``files`` are filled in. The files are written into a staging directory
    beside ``out`` that replaces ``out`` only once complete.
    """
    from safetensors.torch import save_file

    out = Path(out)
    checksum = manifest.get("graph", {}).get("checksum")
    if not checksum:
        raise ValueError("manifest['graph']['checksum'] is required")
    name = model_name(model)
    remove_stale_staging(out)
    staged = staging_dir(out)
    try:
        save_file(
            model_tensors(model),
            str(staged / TENSORS),
            metadata={"kind": KIND, "model": name, "graph_checksum": checksum},
        )
        full = {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "kelm_version": kelm.__version__,
            **manifest,
            "model": name,
            "dim": int(model.hidden_channels),
            "layout": LAYOUT[name],
            "files": {TENSORS: sha256_file(staged / TENSORS)},
        }
        # Round-tripped through JSON first: the checksum is of the manifest as it is read back.
        full = json.loads(json.dumps(full))
        full["checksum"] = fields_checksum(full, IDENTITY)
        write_json(staged / MANIFEST, full)
        publish_dir(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return out


@dataclass
class KGEmbeddings:
    """Embeddings loaded from a directory written by ``kelm embed-kg``."""

    path: Path
    manifest: dict[str, Any]
    entity: torch.Tensor
    relation: torch.Tensor

    @property
    def model_name(self) -> str:
        return self.manifest["model"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def entity_features(self) -> torch.Tensor:
        """Entity vectors for a model to read (an ERNIE entity table, a GNN's node table):
        in the geometry the KGE model scores them, at unit scale.

        TransE compares L_p-normalised entities (``h/|h|_p + r ~ t/|t|_p``): the raw
        parameters have norms of their own that hide the translations, so rows are normalised
        first. Then the table is centred (the mean row subtracted) and divided by one global
        standard deviation: differences between entities (a relation's translation) keep their
        directions and ratios, while a normalised TransE row (components ~1/dim) would leave
        attention scores and fusion inputs near zero.

        Shapes: ``[N, width]`` (as ``entity``), float32.
        """
        entity = self.entity.float()
        if self.model_name == "transe":
            p = float(self.manifest.get("options", {}).get("p_norm") or 1.0)
            entity = torch.nn.functional.normalize(entity, p=p, dim=-1)
        entity = entity - entity.mean(dim=0, keepdim=True)
        return entity / entity.std().clamp_min(1e-12)

    def to_model(self) -> KGEModel:
        """The PyG model with these parameters (scores as the trained model did)."""
        options = self.manifest.get("options", {})
        n, r = self.entity.shape[0], self.relation.shape[0]
        model = make_model(
            self.model_name,
            n,
            r,
            self.dim,
            margin=options.get("margin"),
            p_norm=options.get("p_norm"),
        )
        d = self.dim
        with torch.no_grad():
            model.node_emb.weight.copy_(self.entity[:, :d])
            model.rel_emb.weight.copy_(self.relation[:, :d])
            if self.model_name in ("complex", "rotate"):
                model.node_emb_im.weight.copy_(self.entity[:, d:])
            if self.model_name == "complex":
                model.rel_emb_im.weight.copy_(self.relation[:, d:])
        return model.eval()


def load_embeddings(
    path: str | Path, graph: GraphIndex | str | Path, *, verify: bool = True
) -> KGEmbeddings:
    """Load embeddings for ``graph`` (a loaded index or its directory).

    Raises:
        KelmError: the directory is not a (complete) embeddings directory, the tensors do not
            match their checksum, the manifest does not match its own checksum or the tensors
            (an edited model, width or option), or the embeddings were trained on another
            graph.
    """
    path = Path(path)
    if not isinstance(graph, str | Path):
        checksum, where, index = graph.checksum, graph.path, graph
    else:
        from kelm.graph.index import GraphIndex

        index = GraphIndex.load(graph, verify=False)
        checksum, where = index.checksum, index.path
    manifest = read_manifest(
        path, kind=KIND, version=FORMAT_VERSION, what="KG embeddings", error=KelmError
    )
    file = path / MANIFEST
    for key in ("graph", "files", "options"):
        if not isinstance(manifest.get(key, {}), dict):
            raise KelmError(f"{file}: field {key!r} is not an object (corrupt manifest)")
    # Every manifest this kelm writes records the checksum of its identity fields; one written
    # before it did is still checked against the tensors' own metadata and shapes below.
    if "checksum" in manifest:
        check_manifest_checksum(
            manifest,
            fields_checksum(manifest, IDENTITY),
            file,
            what="KG embeddings",
            error=KelmError,
        )
    trained_on = manifest.get("graph", {}).get("checksum")
    if trained_on != checksum:
        raise KelmError(
            f"{path}: these embeddings were trained on another graph "
            f"({manifest.get('graph', {}).get('path')}, checksum {str(trained_on)[:12]}), "
            f"not on {where} (checksum {checksum[:12]}); retrain them with `kelm embed-kg`"
        )
    tensors_file = path / TENSORS
    if not tensors_file.is_file():
        raise KelmError(f"{path}: {TENSORS} missing")
    if verify:
        verify_file(
            tensors_file,
            manifest.get("files", {}).get(TENSORS),
            what="KG embeddings",
            error=KelmError,
            hint="retrain them with `kelm embed-kg`",
        )
    entity, relation = _read_tensors(tensors_file, manifest)
    _check_layout(file, manifest, entity, relation, index.num_nodes, index.num_relations)
    return KGEmbeddings(path, manifest, entity, relation)


def _read_tensors(file: Path, manifest: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The two tensors, after checking that the file's metadata (covered by its checksum)
    names the manifest's model and graph."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = fh.metadata() or {}
            names = set(fh.keys())
            if names != {"entity", "relation"}:
                raise KelmError(f"{file}: 'entity' and 'relation' tensors expected")
            entity, relation = fh.get_tensor("entity"), fh.get_tensor("relation")
    except (SafetensorError, OSError) as exc:
        raise KelmError(f"{file}: unreadable safetensors file ({exc})") from None
    for key, value in (
        ("model", manifest.get("model")),
        ("graph_checksum", manifest.get("graph", {}).get("checksum")),
    ):
        if key in meta and meta[key] != value:
            raise KelmError(
                f"{file.parent / MANIFEST}: says {key} {value!r} but {file.name} holds "
                f"{meta[key]!r} (edited manifest; retrain with `kelm embed-kg`)"
            )
    return entity, relation


def _check_layout(
    file: Path,
    manifest: dict[str, Any],
    entity: torch.Tensor,
    relation: torch.Tensor,
    num_nodes: int,
    num_relations: int,
) -> None:
    """The tensors have the shapes the manifest's model and width give (see the module
    layout), with a row per node and per forward relation of the graph."""
    name, dim = manifest.get("model"), manifest.get("dim")
    if name not in WIDTHS:
        raise KelmError(f"{file}: unknown model {name!r}; one of {', '.join(WIDTHS)} expected")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise KelmError(f"{file}: 'dim' must be a positive integer, not {dim!r}")
    e, r = WIDTHS[name]
    want = {"entity": (num_nodes, e * dim), "relation": (num_relations, r * dim)}
    for what, tensor in (("entity", entity), ("relation", relation)):
        if tuple(tensor.shape) != want[what] or not tensor.is_floating_point():
            raise KelmError(
                f"{file}: {name} with dim {dim} on this graph needs {what} of shape "
                f"{list(want[what])}, the file holds {list(tensor.shape)} (edited manifest "
                "or damaged embeddings; retrain with `kelm embed-kg`)"
            )
