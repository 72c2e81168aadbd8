"""KG embeddings on tiny hand-written graphs: training, filtered ranking, triple classification,
storage tied to the graph checksum, and the ``embed-kg`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kelm.cli import app
from kelm.errors import KelmError
from kelm.graph import GraphIndex, build_index
from kelm.graph.sources.base import BuildOptions
from kelm.kge import (
    MODELS,
    KGEConfig,
    KnownTriples,
    best_threshold,
    embed_kg,
    fit_thresholds,
    link_prediction,
    load_embeddings,
    make_model,
    rank_targets,
    read_triples,
    score_all,
    train_kge,
)
from kelm.kge.evaluate import metrics_from_ranks

runner = CliRunner()

# 16 people in 8 couples (symmetric "partner" edges) and each person's town (4 towns).
PEOPLE = [f"p{i}" for i in range(16)]


def couples_tsv() -> str:
    lines = []
    for i in range(0, 16, 2):
        a, b = PEOPLE[i], PEOPLE[i + 1]
        lines += [f"{a}\tpartner\t{b}", f"{b}\tpartner\t{a}"]
    for i, p in enumerate(PEOPLE):
        lines.append(f"{p}\tlives_in\ttown{i // 4}")
    return "\n".join(lines) + "\n"


def build(tmp_path: Path, name: str, text: str) -> GraphIndex:
    src = tmp_path / f"{name}.tsv"
    src.write_text(text)
    out = tmp_path / name
    build_index([src], out, BuildOptions(format="tsv"), progress=False)
    return GraphIndex.load(out)


@pytest.fixture()
def couples(tmp_path: Path) -> GraphIndex:
    return build(tmp_path, "couples", couples_tsv())


def fast(model: str = "distmult", **kw) -> KGEConfig:
    base = {"dim": 16, "epochs": 60, "batch_size": 32, "negatives": 4, "lr": 0.05, "seed": 1}
    return KGEConfig(model=model, **{**base, **kw})


def train_on(graph: GraphIndex, config: KGEConfig):
    h, r, t, _ = graph.edges()
    return train_kge(h, r, t, graph.num_nodes, graph.num_relations, config, progress=False)


# ------------------------------------------------------------------------------ training
def test_training_reduces_loss_and_learns_a_trivial_graph(couples: GraphIndex) -> None:
    result = train_on(couples, fast())
    assert len(result.losses) == 60
    assert result.losses[-1] < 0.5 * result.losses[0]
    h, r, t, _ = couples.edges()
    partner = couples.relation_id("partner")
    sel = r == partner
    known = KnownTriples(h, r, t, couples.num_relations)
    from kelm.kge.evaluate import Triples

    held = Triples(h[sel], r[sel], t[sel])
    m = link_prediction(result.model, held, known)
    assert m["mrr"] > 0.9 and m["hits@1"] > 0.85
    assert 0 < m["raw"]["mrr"] <= m["mrr"] <= 1
    assert m["hits@1"] <= m["hits@3"] <= m["hits@10"] <= 1 and m["mean_rank"] >= 1
    assert m["queries"] == 2 * int(sel.sum())


def test_same_seed_same_embeddings(couples: GraphIndex) -> None:
    a = train_on(couples, fast(epochs=5)).model.node_emb.weight
    b = train_on(couples, fast(epochs=5)).model.node_emb.weight
    c = train_on(couples, fast(epochs=5, seed=2)).model.node_emb.weight
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", MODELS)
def test_score_all_matches_forward(name: str) -> None:
    torch.manual_seed(0)
    model = make_model(name, 7, 3, 5)
    anchor, rel = torch.tensor([0, 3, 6]), torch.tensor([2, 0, 1])
    ents = torch.arange(7)
    for side in ("tail", "head"):
        scores = score_all(model, anchor, rel, side)  # [3, 7]
        for b in range(3):
            a, r = anchor[b].expand(7), rel[b].expand(7)
            ref = model(a, r, ents) if side == "tail" else model(ents, r, a)
            torch.testing.assert_close(scores[b], ref, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------ ranking
def test_filtered_vs_raw_rank_by_hand() -> None:
    # Query (h=0, r=0, ?) with target tail 2. Entity 0 scores higher but (0, 0, 0) is a known
    # triple, so it is filtered out; entity 1 is not known and ties with nothing.
    scores = torch.tensor([[0.9, 0.5, 0.7, 0.1]])
    known = KnownTriples(np.array([0, 0, 1]), np.array([0, 0, 0]), np.array([0, 2, 3]), 1)
    rows, cols = known.others(np.array([0]), np.array([0]), "tail")
    assert rows.tolist() == [0, 0] and sorted(cols.tolist()) == [0, 2]
    target = torch.tensor([2])
    assert rank_targets(scores, target).tolist() == [2.0]
    assert rank_targets(scores, target, (rows, cols)).tolist() == [1.0]
    # head side: heads known for (?, 0, 3) are [1]
    rows, cols = known.others(np.array([3]), np.array([0]), "head")
    assert rows.tolist() == [0] and cols.tolist() == [1]
    # realistic ties: two other entities tie with the target -> 1 + 0 + 2/2
    tied = torch.tensor([[0.5, 0.5, 0.5, 0.1]])
    assert rank_targets(tied, torch.tensor([0])).tolist() == [2.0]
    m = metrics_from_ranks(torch.tensor([1.0, 2.0, 4.0, 20.0]))
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0.05) / 4)
    assert (m["hits@1"], m["hits@3"], m["hits@10"]) == (0.25, 0.5, 0.75)


def test_read_triples_skips_and_counts_unknown(couples: GraphIndex, tmp_path: Path) -> None:
    f = tmp_path / "held.txt"
    f.write_text(
        "partner\tp0\tp1\npartner\tp0\tnobody\nunknown_rel\tp0\tp1\nlives_in\tp3\ttown0\t0\n\n"
    )
    t = read_triples(f, couples, "cn100k")
    assert (len(t), t.skipped, t.negatives, t.total) == (1, 2, 1, 4)
    with pytest.raises(KelmError, match=r"held.txt:1: missing label"):
        read_triples(f, couples, "cn100k", labelled=True)
    g = tmp_path / "labelled.tsv"  # tsv: head, relation, tail, label
    g.write_text("p0\tpartner\tp1\t1\np0\tlives_in\tnowhere\t0\np3\tlives_in\ttown0\t0\n")
    labelled = read_triples(g, couples, "tsv", labelled=True)
    assert len(labelled) == 2 and labelled.labels.tolist() == [1, 0] and labelled.skipped == 1
    bad = tmp_path / "bad.txt"
    bad.write_text("partner\tp0\n")
    with pytest.raises(KelmError, match=r"bad.txt:1: expected 3"):
        read_triples(bad, couples, "cn100k")


# ------------------------------------------------------------------------------ classification
def test_best_threshold_by_hand() -> None:
    assert best_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 1, 0, 1])) == (0.375, 1.0)
    # not separable: the best cut keeps everything positive (3 of 4 right); lowest wins ties
    assert best_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 1, 1])) == (0.0, 0.75)
    # a cut between equal scores is impossible
    th, acc = best_threshold(np.array([1.0, 1.0, 2.0]), np.array([0, 1, 1]))
    assert (th, acc) == (0.0, pytest.approx(2 / 3))


def test_fit_thresholds_per_relation_with_global_fallback() -> None:
    # relation 0: 10 triples separable at 5.5; relation 2: 10 separable at 100.5;
    # relation 1: only 2 triples -> it gets the global threshold. Globally, cutting at 5.5 and
    # at 100.5 are equally good (16 of 22 right); the lower one wins.
    s0, s2 = np.arange(1.0, 11.0), np.arange(96.0, 106.0)
    scores = np.concatenate([s0, [0.2, 0.1], s2])
    labels = np.concatenate([(s0 > 5).astype(int), [1, 0], (s2 > 100).astype(int)])
    rels = np.array([0] * 10 + [1, 1] + [2] * 10)
    th = fit_thresholds(scores, labels, rels, "relation")
    assert th.per_relation == {0: 5.5, 2: 100.5} and th.global_threshold == 5.5
    glob = fit_thresholds(scores, labels, rels, "global")
    assert glob.per_relation == {} and glob.global_threshold == 5.5
    probe, probe_rels = np.array([5.0, 6.0, 0.15, 7.0, 99.0]), np.array([0, 0, 1, 1, 2])
    assert th.predict(probe, probe_rels).tolist() == [0, 1, 0, 1, 0]
    assert glob.predict(probe, probe_rels).tolist() == [0, 1, 0, 1, 1]
    with pytest.raises(KelmError, match="threshold mode"):
        fit_thresholds(scores, labels, rels, "per-edge")


# ------------------------------------------------------------------------------ storage
def write_labelled(tmp_path: Path) -> tuple[Path, Path, Path]:
    held = tmp_path / "valid.txt"
    held.write_text("partner\tp2\tp3\npartner\tp9\tp8\nlives_in\tp5\ttown1\nlives_in\tx\ttown1\n")
    dev = tmp_path / "dev.txt"
    dev.write_text(
        "".join(
            f"partner\tp{i}\tp{i + 1}\t1\npartner\tp{i}\tp{(i + 7) % 16}\t0\n"
            for i in range(0, 16, 2)
        )
    )
    return held, dev, dev


def test_embed_kg_save_load_round_trip_and_refusal(couples: GraphIndex, tmp_path: Path) -> None:
    held, dev, test = write_labelled(tmp_path)
    out = tmp_path / "emb"
    report = embed_kg(
        couples,
        out,
        fast(epochs=30),
        valid=held,
        test=held,
        fmt="cn100k",
        classify_dev=dev,
        classify_test=test,
        progress=False,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graph"]["checksum"] == couples.checksum
    assert (manifest["model"], manifest["dim"], manifest["epochs"], manifest["seed"]) == (
        "distmult",
        16,
        30,
        1,
    )
    assert manifest["metrics"]["valid"]["file"]["skipped_not_in_graph"] == 1
    assert manifest["options"]["device"] == "cpu"  # where it trained (not in any cache key)
    cls = report.metrics["classification"]
    assert cls["mode"] == "relation" and 0.5 <= cls["test_accuracy"] <= 1
    assert not list(tmp_path.glob(".emb.*"))  # staging directory published, nothing left over

    emb = load_embeddings(out, couples)
    assert emb.entity.shape == (couples.num_nodes, 16)
    assert emb.relation.shape == (couples.num_relations, 16)
    h, r, t, _ = couples.edges()
    h, r, t = (torch.from_numpy(x) for x in (h, r, t))
    trained = train_on(couples, fast(epochs=30)).model  # same seed: the same model again
    torch.testing.assert_close(emb.to_model()(h, r, t), trained(h, r, t))

    other = build(tmp_path, "other", couples_tsv() + "p0\tlikes\tp5\n")
    with pytest.raises(KelmError, match="trained on another graph") as info:
        load_embeddings(out, other)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["complex", "rotate", "transe"])
def test_round_trip_other_models(name: str, couples: GraphIndex, tmp_path: Path) -> None:
    out = tmp_path / name
    embed_kg(couples, out, fast(name, epochs=2), progress=False)
    emb = load_embeddings(out, couples.path)
    width = 32 if name in ("complex", "rotate") else 16
    assert emb.entity.shape[1] == width
    h, r, t, _ = couples.edges()
    h, r, t = (torch.from_numpy(x) for x in (h, r, t))
    trained = train_on(couples, fast(name, epochs=2)).model
    torch.testing.assert_close(emb.to_model()(h, r, t), trained(h, r, t))


def edit_manifest(directory: Path, **changes) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "rotate"}, "recorded checksum is not the one"),
        ({"model": "distmult"}, "recorded checksum is not the one"),
        ({"options": {"p_norm": 2.0}}, "recorded checksum is not the one"),
        ({"dim": 8}, "recorded checksum is not the one"),
        # a manifest written before the checksum was recorded: the tensors' metadata and shapes
        ({"checksum": None, "model": "rotate"}, "says model 'rotate' but"),
        ({"checksum": None, "model": "distmult"}, "says model 'distmult' but"),
        ({"checksum": None, "dim": 8}, "needs entity of shape"),
    ],
)
def test_edited_manifest_is_refused(
    couples: GraphIndex, tmp_path: Path, changes: dict, message: str
) -> None:
    """An edited manifest (transe -> rotate) used to be loaded with the tensors misread."""
    out = tmp_path / "emb"
    embed_kg(couples, out, fast("transe", epochs=1), progress=False)
    edit_manifest(out, **changes)
    with pytest.raises(KelmError, match=message) as info:
        load_embeddings(out, couples)
    assert "\n" not in str(info.value)


def test_manifest_without_checksum_still_loads(couples: GraphIndex, tmp_path: Path) -> None:
    """Written by a kelm before the manifest recorded its checksum: checked, and used."""
    out = tmp_path / "emb"
    embed_kg(couples, out, fast("transe", epochs=1), progress=False)
    edit_manifest(out, checksum=None)
    assert load_embeddings(out, couples).model_name == "transe"


# ------------------------------------------------------------------------------ CLI
def test_cli_embed_kg(couples: GraphIndex, tmp_path: Path) -> None:
    held, dev, test = write_labelled(tmp_path)
    out = tmp_path / "cli-emb"
    args = [
        "embed-kg",
        "--graph",
        couples.path,
        "--model",
        "distmult",
        "--dim",
        "8",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--out",
        out,
        "--valid",
        held,
        "--classify-dev",
        dev,
        "--classify-test",
        test,
        "--no-progress",
    ]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "filtered MRR" in result.output and "triple classification" in result.output
    assert (out / "embeddings.safetensors").is_file()

    result = runner.invoke(
        app, [str(a) for a in args[:3]] + ["--model", "transr", "--out", str(tmp_path / "bad")]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unknown --model 'transr'; choose one of transe, distmult, complex, rotate"
    ]
    assert not (tmp_path / "bad").exists()

    result = runner.invoke(
        app,
        [
            "embed-kg",
            "--graph",
            str(couples.path),
            "--out",
            str(tmp_path / "x"),
            "--classify-dev",
            str(dev),
        ],
    )
    assert result.exit_code == 2 and "go together" in result.output


def test_entity_features_keep_transe_geometry_at_unit_scale(couples: GraphIndex, tmp_path: Path):
    out = tmp_path / "transe"
    embed_kg(couples, out, fast("transe", epochs=3), progress=False)
    emb = load_embeddings(out, couples)
    features = emb.entity_features()
    assert features.shape == emb.entity.shape and features.dtype == torch.float32
    assert features.mean(dim=0).abs().max() < 1e-5 and abs(float(features.std()) - 1.0) < 1e-4
    # TransE scores L1-normalised rows: the features are those rows up to one shift and scale,
    # so a row's own norm (which the model ignores) does not reach them ...
    rescaled = emb.entity * torch.linspace(0.5, 3.0, emb.entity.shape[0])[:, None]
    emb_rescaled = type(emb)(emb.path, emb.manifest, rescaled, emb.relation)
    torch.testing.assert_close(emb_rescaled.entity_features(), features)
    # ... and differences between entities (a relation's translation) keep their ratios.
    unit = torch.nn.functional.normalize(emb.entity, p=1.0, dim=-1)
    scale = float((features[1] - features[0]).norm() / (unit[1] - unit[0]).norm())
    torch.testing.assert_close(features[3] - features[2], scale * (unit[3] - unit[2]))


def test_entity_features_of_other_models_are_the_standardised_parameters(
    couples: GraphIndex, tmp_path: Path
) -> None:
    out = tmp_path / "distmult"
    embed_kg(couples, out, fast("distmult", epochs=2), progress=False)
    emb = load_embeddings(out, couples)
    raw = emb.entity - emb.entity.mean(dim=0)
    torch.testing.assert_close(emb.entity_features(), raw / raw.std())
