"""Linker options are checked when made."""

from __future__ import annotations

import pytest

from kelm.errors import KelmError
from kelm.linking.options import LinkerOptions


@pytest.mark.parametrize(
    "kwargs", [{"mode": "fuzzy"}, {"lemmas": "stem"}, {"max_ngram": 0}, {"priors": "nope.tsv"}]
)
def test_bad_options(kwargs):
    with pytest.raises(KelmError):
        LinkerOptions(**kwargs)
