"""CS 446 / ECE 449, Homework 2: a small ResNet (file hw2_ResNet.py, the "hw2code" upload).

Implement the two classes and the function below. Keep every name and signature
exactly as given; you may add helper functions and choose your own attribute names.

Your modules are compared with a reference implementation: the grader copies the
reference's parameters and buffers into your module in the order in which the
layers are created (registered) in ``__init__``, matching shapes. Create the layers
in the order in which they are used in ``forward``.

Only torch is needed:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


# BEGIN HIDDEN
# Reference solution of cs446-hw2, file hw2_ResNet.py (the "hw2code" upload).
#
# A one-block ResNet for small grey-scale images and the training loop that
# produces the per-epoch train/test error curves of the written part.
#
# Contract (see ASSIGNMENTS.md, section cs446-hw2):
#
# * ``Block(num_channels)``: ``forward(x) = relu(x + f(x))`` on (N, C, H, W), with
#   f = Conv2d(C,C,3,1,1,bias=False) -> BatchNorm2d(C) -> ReLU
#       -> Conv2d(C,C,3,1,1,bias=False) -> BatchNorm2d(C).
# * ``ResNet(num_channels, num_classes=10)``: (N, 1, H, W) -> (N, num_classes):
#   Conv2d(1,C,3,stride=2,padding=1,bias=False) -> BatchNorm2d(C) -> ReLU
#   -> MaxPool2d(2) -> Block(C) -> AdaptiveAvgPool2d(1) -> flatten -> Linear(C, K).
#   Parameter count: 9C (stem) + 2C (BN) + 2*9C^2 + 2*2C (block) + C*K + K,
#   i.e. 18C^2 + 25C + 10 for K = 10.
# * ``fit_and_evaluate(net, X_train, y_train, X_test, y_test, n_epochs,
#   batch_size=128, lr=0.1) -> (train_errors, test_errors)``.
#
# Modules are registered in the natural order (stem conv, stem bn, block conv1,
# block bn1, block conv2, block bn2, fc): graders transplant parameters and buffers
# from this reference into a submission by registration order and shape.

def _error_rate(net, X, y):
    """Misclassification rate of net on (X, y): wrong / n as a Python float."""
    pred = net(X).argmax(dim=1)
    return (pred != y).sum().item() / y.shape[0]


# END HIDDEN
class Block(nn.Module):
    """A basic residual block of the ResNet."""

    def __init__(self, num_channels):
        """Create the layers of the block.

        Argument:
            num_channels: C, the number of channels of the block's input; it is also
                the number of input and output channels of both convolutions.

        Layers to create, in this order:
            1. a 2D convolution C -> C channels, kernel size 3, stride 1, padding 1,
               WITHOUT bias (``bias=False``),
            2. a 2D batch normalisation over C channels (``nn.BatchNorm2d``),
            3. a second convolution like the first one (its own weights),
            4. a second, separate ``nn.BatchNorm2d(C)``.
        The block has 18*C*C + 4*C trainable parameters in total.
        """
        # BEGIN SOLUTION
        super().__init__()
        self.conv1 = nn.Conv2d(num_channels, num_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(num_channels)
        # END SOLUTION
        # BEGIN STUB
        # super().__init__()
        # raise NotImplementedError
        # END STUB

    def forward(self, x):
        """Apply the block to x.

        Argument:
            x: a float32 tensor of shape (N, C, H, W).

        Returns:
            a tensor of the same shape (N, C, H, W) equal to relu(x + f(x)), where
            f(x) = BN2(conv2(relu(BN1(conv1(x))))).
            Note the order: the skip connection x is added BEFORE the last ReLU.
        """
        # BEGIN SOLUTION
        out = self.conv1(x)
        out = self.bn1(out)
        out = F.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        return F.relu(x + out)
        # END SOLUTION
        # BEGIN STUB
        # raise NotImplementedError
        # END STUB


class ResNet(nn.Module):
    """A one-block ResNet classifier for single-channel images."""

    def __init__(self, num_channels, num_classes=10):
        """Create the layers of the network.

        Arguments:
            num_channels: C, the number of channels used by the convolutions.
            num_classes: K, the number of output classes.

        Layers, in the order they are applied (create them in this order):
            1. 2D convolution 1 -> C channels, kernel size 3, stride 2, padding 1,
               WITHOUT bias,
            2. ``nn.BatchNorm2d(C)``,
            3. ReLU,
            4. 2D max-pooling with kernel size 2 (``nn.MaxPool2d(2)``),
            5. one ``Block(C)``,
            6. adaptive average pooling to a 1x1 output (``nn.AdaptiveAvgPool2d(1)``),
               so that the network works for any input height and width,
            7. a linear layer C -> K (with bias).
        With K = 10 the network has 18*C*C + 25*C + 10 trainable parameters.
        """
        # BEGIN SOLUTION
        super().__init__()
        self.conv = nn.Conv2d(1, num_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(num_channels)
        self.pool = nn.MaxPool2d(2)
        self.block = Block(num_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_channels, num_classes)
        # END SOLUTION
        # BEGIN STUB
        # super().__init__()
        # raise NotImplementedError
        # END STUB

    def forward(self, x):
        """Compute the class scores of a batch of images.

        Argument:
            x: a float32 tensor of shape (N, 1, H, W), e.g. H = W = 8 for the digits.

        Returns:
            a tensor of shape (N, K) of raw scores (logits): do NOT apply softmax.
            The shape must be (N, K) for every N, including N = 1: when you flatten
            the (N, C, 1, 1) output of the pooling, keep the batch dimension
            (for example ``torch.flatten(x, 1)``; ``squeeze()`` is wrong for N = 1).
        """
        # BEGIN SOLUTION
        x = self.conv(x)
        x = self.bn(x)
        x = F.relu(x)
        x = self.pool(x)
        x = self.block(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)
        # END SOLUTION
        # BEGIN STUB
        # raise NotImplementedError
        # END STUB


def fit_and_evaluate(net, X_train, y_train, X_test, y_test, n_epochs, batch_size=128, lr=0.1):
    """Train net with SGD and report the error rates after every epoch.

    Arguments:
        net: the network to train (e.g. a ResNet); train it in place.
        X_train, X_test: float32 tensors of shape (n, 1, H, W).
        y_train, y_test: int64 tensors of shape (n,) holding class labels.
        n_epochs: the number of passes over the training set.
        batch_size: the minibatch size; the last minibatch may be smaller.
        lr: the learning rate.

    What to do:
        * Use ``torch.optim.SGD(net.parameters(), lr=lr)`` (no momentum, no weight
          decay) and the mean cross-entropy loss (``F.cross_entropy``).
        * In every epoch: put the net in training mode (``net.train()``) and go
          through the training set IN ORDER (do not shuffle) in minibatches
          ``X_train[i:i+batch_size]``, i = 0, batch_size, 2*batch_size, ...; for
          each minibatch zero the gradients, compute the loss, backpropagate and
          take one optimizer step.
        * After the epoch's updates, put the net in evaluation mode (``net.eval()``)
          and, under ``torch.no_grad()``, compute the misclassification rate
          (fraction of wrongly predicted labels, predicted label = argmax of the
          scores) on the whole training set and on the whole test set.
        * Do not modify the input tensors and do not draw random numbers.

    Returns:
        (train_errors, test_errors): two Python lists of n_epochs floats each;
        entry t is the error rate measured after epoch t.
    """
    # BEGIN SOLUTION
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
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB
