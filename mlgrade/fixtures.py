"""The fixtures a grader's tests ask for by name: ``rng``, ``seed``, ``credit`` and ``parts``.

Registered as a pytest plugin by the runner (:func:`mlgrade.runner.grade`) beside the results
plugin (:mod:`mlgrade.results`), which reads a test's credit from its stash (:data:`CREDIT`,
:data:`PARTS`) when the test's report comes in.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mlgrade.credit import Credit, Parts

__all__ = ["CREDIT", "PARTS", "credit", "parts", "rng", "seed"]

CREDIT = pytest.StashKey[Credit]()
PARTS = pytest.StashKey[Parts]()


def _seed(nodeid: str) -> int:
    return int.from_bytes(hashlib.sha256(nodeid.encode()).digest()[:8], "little")


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A numpy Generator seeded by the test's id: the same inputs on every run."""
    return np.random.default_rng(_seed(request.node.nodeid))


@pytest.fixture
def seed(request) -> int:
    return _seed(request.node.nodeid) % 2**31


@pytest.fixture
def credit(request) -> Credit:
    return request.node.stash.setdefault(CREDIT, Credit())


@pytest.fixture
def parts(request) -> Parts:
    """``with parts(0.5, "lambda = 1"):``: partial credit by part (:mod:`mlgrade.credit`)."""
    request.node.stash[PARTS] = Parts(request.node.stash.setdefault(CREDIT, Credit()))
    return request.node.stash[PARTS]


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    result = yield
    parts = pyfuncitem.stash.get(PARTS, None)
    if parts is not None:
        parts.finish()  # the failed parts fail the test, in its call phase
    return result
