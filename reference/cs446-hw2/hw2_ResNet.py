"""Reference solution of cs446-hw2, file hw2_ResNet.py (the "hw2code" upload).

A one-block ResNet for small grey-scale images and the training loop that
produces the per-epoch train/test error curves of the written part.

Contract (see ASSIGNMENTS.md, section cs446-hw2):

* ``Block(num_channels)``: ``forward(x) = relu(x + f(x))`` on (N, C, H, W), with
  f = Conv2d(C,C,3,1,1,bias=False) -> BatchNorm2d(C) -> ReLU
      -> Conv2d(C,C,3,1,1,bias=False) -> BatchNorm2d(C).
* ``ResNet(num_channels, num_classes=10)``: (N, 1, H, W) -> (N, num_classes):
  Conv2d(1,C,3,stride=2,padding=1,bias=False) -> BatchNorm2d(C) -> ReLU
  -> MaxPool2d(2) -> Block(C) -> AdaptiveAvgPool2d(1) -> flatten -> Linear(C, K).
  Parameter count: 9C (stem) + 2C (BN) + 2*9C^2 + 2*2C (block) + C*K + K,
  i.e. 18C^2 + 25C + 10 for K = 10.
* ``fit_and_evaluate(net, X_train, y_train, X_test, y_test, n_epochs,
  batch_size=128, lr=0.1) -> (train_errors, test_errors)``.

Modules are registered in the natural order (stem conv, stem bn, block conv1,
block bn1, block conv2, block bn2, fc): graders transplant parameters and buffers
from this reference into a submission by registration order and shape.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """Residual block: relu(x + bn2(conv2(relu(bn1(conv1(x)))))), shape preserving."""

    def __init__(self, num_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channels, num_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, x):
        out = self.conv1(x)
        out = self.bn1(out)
        out = F.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        return F.relu(x + out)


class ResNet(nn.Module):
    """Stem (strided conv, BN, ReLU, 2x2 max-pool), one Block, global average pool, linear."""

    def __init__(self, num_channels, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, num_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(num_channels)
        self.pool = nn.MaxPool2d(2)
        self.block = Block(num_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_channels, num_classes)

    def forward(self, x):
        x = self.conv(x)
        x = self.bn(x)
        x = F.relu(x)
        x = self.pool(x)
        x = self.block(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def _error_rate(net, X, y):
    """Misclassification rate of net on (X, y): wrong / n as a Python float."""
    pred = net(X).argmax(dim=1)
    return (pred != y).sum().item() / y.shape[0]


def fit_and_evaluate(net, X_train, y_train, X_test, y_test, n_epochs, batch_size=128, lr=0.1):
    """Train ``net`` with plain SGD on cross-entropy and record error rates per epoch.

    Arguments:
        net: the network (e.g. a ``ResNet``), trained in place.
        X_train, X_test: float32 tensors (n, 1, H, W).
        y_train, y_test: int64 tensors (n,) of class labels.
        n_epochs: number of passes over the training set.
        batch_size: minibatch size; the last minibatch of an epoch may be smaller.
        lr: learning rate of ``torch.optim.SGD`` (no momentum, no weight decay).

    Returns:
        (train_errors, test_errors): two Python lists of ``n_epochs`` floats; entry t
        is the misclassification rate (wrong / n) on the FULL training set and the
        full test set, measured after the updates of epoch t, with the net in
        ``eval()`` mode under ``torch.no_grad()``.

    Procedure of one epoch: ``net.train()``; for i = 0, batch_size, 2*batch_size, ...
    take the minibatch ``X_train[i:i+batch_size]`` (data order is never shuffled),
    zero the gradients, compute the mean cross-entropy of ``net(xb)`` against ``yb``,
    backpropagate and take one SGD step; then ``net.eval()`` and evaluate.

    Randomness: none. This function draws no random numbers (no shuffling, no
    dropout), so the result is a deterministic function of the net's state on entry
    and the data; the global torch RNG state is the same after the call as before.
    The net is left in ``eval()`` mode on return. Inputs are not modified.
    """
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    n = X_train.shape[0]
    train_errors, test_errors = [], []
    for _ in range(n_epochs):
        net.train()
        for i in range(0, n, batch_size):
            xb = X_train[i:i + batch_size]
            yb = y_train[i:i + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            train_errors.append(_error_rate(net, X_train, y_train))
            test_errors.append(_error_rate(net, X_test, y_test))
    return train_errors, test_errors
