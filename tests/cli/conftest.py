"""The CLI tests' shared inputs: the artifacts of the hostile-input sweep, built once."""

from __future__ import annotations

import pytest
from sweep_fixtures import Inputs, build_inputs


@pytest.fixture(scope="session")
def sweep_inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """One valid artifact of every kind the commands read (:mod:`sweep_fixtures`). The tests
    never change them: a case that damages one damages a copy."""
    return build_inputs(tmp_path_factory.mktemp("sweep"))
