"""The ``ernie`` objective's batches: a mention masked for MLM never keeps its entity in the
input (``unlink_masked``), since that entity would hand the model the masked word."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pretrain_fixtures import tiny_config, write_config

from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pretraining import load_pretrain_config
from kelm.pretraining.objectives.base import load_tokenizer_for, open_knowledge
from kelm.pretraining.run_data import prepare_data


def _batch(root: Path, unlink: bool) -> dict:
    cfg_dict = tiny_config(root, "ernie", masking={"probability": 0.5})
    # no dEA noise: every alignment the input lacks was removed by the unlinking alone
    cfg_dict["objective_options"].update(
        dea_replace_prob=0.0, dea_mask_prob=0.0, unlink_masked=unlink
    )
    cfg = load_pretrain_config(write_config(root / f"unlink-{unlink}.yaml", cfg_dict))
    cls, options = cfg.objective_class(), cfg.options()
    tokenizer = load_tokenizer_for(cfg)
    knowledge = open_knowledge(cfg)
    store = prepare_data(cfg, cls, options, tokenizer, knowledge)
    objective = cls(cfg, options, tokenizer, knowledge)
    instances = [store[i] for i in range(len(store))]
    return objective.collate(instances, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("unlink", [True, False])
def test_masked_mentions_lose_their_entity(tmp_path: Path, unlink: bool) -> None:
    batch = _batch(tmp_path, unlink)
    aligned = batch["entity_labels"] >= 0  # every linked mention (the dEA targets)
    masked = batch["labels"] != IGNORE_INDEX
    linked_in_input = batch["entity_ids"] >= 0
    assert (aligned & masked).any() and (aligned & ~masked).any()  # both kinds occur
    # unmasked mentions keep their entity either way
    assert torch.equal(linked_in_input & ~masked, aligned & ~masked)
    if unlink:
        assert not (linked_in_input & masked).any()
    else:
        assert torch.equal(linked_in_input & masked, aligned & masked)
    # the dEA targets stay: the model still predicts the entity of a masked mention
    assert torch.equal(batch["entity_labels"] >= 0, aligned)


def test_knowledge_lr_puts_the_added_parameters_in_groups_of_their_own(tmp_path: Path) -> None:
    cfg_dict = tiny_config(tmp_path, "ernie")
    cfg_dict["objective_options"]["knowledge_lr"] = 5e-3
    cfg = load_pretrain_config(write_config(tmp_path / "klr.yaml", cfg_dict))
    cls, options = cfg.objective_class(), cfg.options()
    objective = cls(cfg, options, load_tokenizer_for(cfg), open_knowledge(cfg))
    model = objective.build_model()
    groups = objective.param_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    by_lr: dict[float | None, set[str]] = {}
    for group in groups:
        by_lr.setdefault(group.get("lr"), set()).update(names[id(p)] for p in group["params"])
    added = by_lr[5e-3]
    assert {n.split(".")[0] for n in added} >= {"knowledge_layers", "dea_transform"}
    assert not any(n.startswith(("text_encoder.", "mlm_head.")) for n in added)
    assert by_lr[None] and all(n.startswith(("text_encoder.", "mlm_head.")) for n in by_lr[None])
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert by_lr[None] | added == trained  # every trained parameter once
    optimizer = torch.optim.AdamW(groups, lr=1e-4)  # as the loop builds it
    assert {g["lr"] for g in optimizer.param_groups} == {1e-4, 5e-3}
