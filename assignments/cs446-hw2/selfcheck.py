"""The self-check's figures of cs446-hw2 (`mlgrade check cs446-hw2 --page`), beside the reference's.

The sheet's figure: train and test error per epoch of ResNet(C) for C in {1, 2, 4, 64}, trained by
your fit_and_evaluate on scikit-learn's digits as the training script does (X /= X.max(), the
seeded half split, SGD with lr 0.1 and batches of 128), for fewer epochs than the script's 200
so that the self-check stays within the sandbox's time limits. Not on the sheet, for problem 1:
your em on the binarised digits. Every input is public; your code runs in the sandbox and only
its values come back.
"""
import importlib.util
from pathlib import Path

import numpy as np
import torch

from mlgrade import run_module, student
from mlgrade.compare import Mismatch, float_array, unpack
from mlgrade.figures import figure

hw2 = student("hw2_ResNet")
em = student("hw2_EM")
CHANNELS = (1, 2, 4, 64)  # the sheet's
EPOCHS = 30  # the training script's first 30 of 200 epochs: C = 64 then takes seconds, not a minute
SEED = 0
EM_K, EM_ITERATIONS = 10, 30


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (data, target), read from its own file without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise Mismatch("this figure needs scikit-learn's digits: pip install scikit-learn (requirements.txt)")
    table = np.loadtxt(Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def split():
    """As the training script: X /= X.max(), (n, 1, 8, 8), the first n // 2 of a seeded permutation for training."""
    data, target = digits()
    X = torch.tensor(data, dtype=torch.float32)
    X /= X.max()
    X = X.reshape(-1, 1, 8, 8)
    y = torch.tensor(target, dtype=torch.int64)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(SEED))
    train, test = perm[: len(X) // 2], perm[len(X) // 2:]
    return X[train], y[train], X[test], y[test]


@figure("error_curves", "fit_and_evaluate: train and test error per epoch of ResNet(C), C in {" + ", ".join(map(str, CHANNELS)) + "}",
        size=(16, 3.8),
        caption=f"The sheet's figure, shortened: the training script's setting (digits, X /= X.max(), the seeded "
                f"half split: 898 training and 899 test images; ResNet(C) built after torch.manual_seed({SEED}); "
                f"batch size 128, lr 0.1) for {EPOCHS} epochs instead of 200, so that the self-check stays "
                "within the sandbox's time limits. Your ResNet starts from its own initial weights, so the curves "
                "need not match the reference's exactly: compare their levels and shapes.")
def error_curves(fig):
    X_train, y_train, X_test, y_test = split()
    axes = fig.subplots(1, len(CHANNELS), sharey=True)
    for ax, C in zip(axes, CHANNELS):
        net = run_module(hw2.ResNet, C, seed=SEED, keep=True)
        rates = hw2.fit_and_evaluate.within(120)(net.ref, X_train, y_train, X_test, y_test, EPOCHS,
                                                 batch_size=128, lr=0.1)
        name = f"fit_and_evaluate(ResNet({C}), ...)"
        train, test = (float_array(r, name=f"{part} of {name}", shape=(EPOCHS,))
                       for r, part in zip(unpack(rates, 2, name=name), ("train_errors", "test_errors")))
        epochs = np.arange(1, EPOCHS + 1)
        ax.plot(epochs, train, label="train")
        ax.plot(epochs, test, label="test")
        ax.set_title(f"C = {C} ({net.n_parameters} parameters): test {test[-1]:.3f}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("misclassification rate")
    axes[0].set_ylim(0, 1)


@figure("em_digits", f"em: {EM_K} Bernoulli components on the binarised digits", size=(12, 3.6),
        caption=f"Not a figure of the sheet. The digits binarised (pixel > 8 of 16), em from a seeded random start "
                f"(pi uniform, P uniform in [0.25, 0.75]) for {EM_ITERATIONS} iterations: the log-likelihood after "
                f"each iteration (it never decreases) and the {EM_K} components' pixel probabilities P as 8x8 images.")
def em_digits(fig):
    data, _ = digits()
    X = (data > 8).astype(float)
    rng = np.random.default_rng(SEED)
    pi0, P0 = np.full(EM_K, 1.0 / EM_K), rng.uniform(0.25, 0.75, size=(EM_K, 64))
    pi, P, history = unpack(em.em(X, pi0, P0, EM_ITERATIONS), 3, name="em(X, pi0, P0, n_iter)")
    pi = float_array(pi, name="pi of em(X, pi0, P0, n_iter)", shape=(EM_K,))
    P = float_array(P, name="P of em(X, pi0, P0, n_iter)", shape=(EM_K, 64))
    history = float_array(history, name="history of em(X, pi0, P0, n_iter)", shape=(EM_ITERATIONS,))
    left, right = fig.subfigures(1, 2, width_ratios=[1, 2])
    ax = left.subplots()
    ax.plot(np.arange(1, EM_ITERATIONS + 1), history, marker=".")
    ax.set_xlabel("iteration")
    ax.set_ylabel("log-likelihood")
    ax.grid(alpha=0.3)
    ax.set_title(f"last: {history[-1]:.1f}", fontsize=10)
    for k, ax in enumerate(right.subplots(2, EM_K // 2).flat):
        ax.imshow(P[k].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"pi = {pi[k]:.2f}", fontsize=9)
