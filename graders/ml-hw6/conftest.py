"""Shared inputs of the ml-hw6 graders: random HMMs and the contract's argument names."""
import numpy as np
import pytest


def random_hmm(rng: np.random.Generator, n_states: int, n_symbols: int, T: int):
    """A random HMM with strictly positive rows and an observation sequence drawn from it."""
    A = rng.dirichlet(np.ones(n_states), size=n_states)
    B = rng.dirichlet(np.ones(n_symbols), size=n_states)
    pi = rng.dirichlet(np.ones(n_states))
    O = rng.integers(0, n_symbols, size=T)
    return A, B, pi, O


@pytest.fixture
def hmm_factory(rng):
    return lambda n_states, n_symbols, T: random_hmm(rng, n_states, n_symbols, T)
