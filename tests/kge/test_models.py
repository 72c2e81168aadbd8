"""The KGE model registry: names to PyG models and back."""

from __future__ import annotations

import pytest
from torch_geometric.nn.kge import TransE

from kelm.errors import KelmError
from kelm.kge.models import MODEL_DEFAULTS, MODELS, make_model, model_name


@pytest.mark.parametrize("name", MODELS)
def test_make_model_and_model_name_round_trip(name: str) -> None:
    assert model_name(make_model(name, 4, 2, 3)) == name


def test_unset_margin_takes_the_model_default() -> None:
    assert make_model("rotate", 4, 2, 3).margin == MODEL_DEFAULTS["rotate"]["margin"]


def test_unknown_names_and_classes_are_refused() -> None:
    with pytest.raises(KelmError, match="unknown --model"):
        make_model("holE", 4, 2, 3)

    class Shifted(TransE):
        pass

    with pytest.raises(KelmError, match="cannot store a Shifted"):
        model_name(Shifted(4, 2, 3))
