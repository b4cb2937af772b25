"""The self-check's figures of ml-hw6 (`mlgrade check ml-hw6 --page`), beside the reference's.

The sheet's own pictures are the playground's: the subpixel convolution of the worked example as
an image, and the tiny VAE's loss per epoch. The batch-norm histograms are not on the sheet: they
show what batchnorm_forward does to features of very different scales. Every input is public
(seeded here); your functions run in the sandbox and only their values come back.
"""
import numpy as np
import torch

from mlgrade import student
from mlgrade.compare import Mismatch, float_array, unpack
from mlgrade.figures import figure
from ml_hw6.worked_examples import WORKED_A, WORKED_K, WORKED_SHAPE

hw6 = student("hw6")
VAE_EPOCHS = 200  # as in the playground cell


@figure("batchnorm", "batchnorm_forward: three features of different scales, before and after", size=(10, 5.5),
        caption="Not a figure of the sheet. 50 points with features of mean 5, -3, 0 and standard deviation 4, "
                "0.5, 1, normalised with gamma = (1, 2, 0.5) and beta = (0, 1, -1): after batch norm each "
                "feature has mean beta and standard deviation gamma (measured in the titles). With the biased "
                "batch variance, as torch's BatchNorm1d in training mode; the unbiased one would give sqrt(49/50), "
                "about 0.99, times gamma.")
def batchnorm(fig):
    rng = np.random.default_rng(0)
    x = rng.normal([5.0, -3.0, 0.0], [4.0, 0.5, 1.0], size=(50, 3))
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0])
    result = unpack(hw6.batchnorm_forward(x, gamma, beta), 2, name="batchnorm_forward(x, gamma, beta)")
    out = float_array(result[0], name="out of batchnorm_forward(x, gamma, beta)", shape=x.shape)
    axes = fig.subplots(2, 3)
    for j in range(3):
        axes[0, j].hist(x[:, j], bins=12, color="#888")
        axes[0, j].set_title(f"x[:, {j}]: mean {x[:, j].mean():.2f}, std {x[:, j].std():.3f}", fontsize=10)
        axes[1, j].hist(out[:, j], bins=12, color="#3465a4")
        axes[1, j].set_title(f"out[:, {j}]: mean {out[:, j].mean():.2f}, std {out[:, j].std():.3f}", fontsize=10)
    axes[0, 0].set_ylabel("before")
    axes[1, 0].set_ylabel("after batchnorm_forward")


def _tensor(value, name: str, shape) -> torch.Tensor:
    return torch.as_tensor(float_array(value, name=name, shape=shape), dtype=torch.float32)


def _grads(grads, names) -> list[torch.Tensor]:
    for g, name in zip(grads, names):
        if g is None:
            raise Mismatch(f"no gradient reached {name}: the result must be computed from it with torch operations")
    return [torch.as_tensor(float_array(g, name=f"the gradient of {name}"), dtype=torch.float32) for g in grads]


@figure("vae_loss", "reparameterize and kl_loss: the playground's tiny VAE, loss per epoch", size=(7, 4),
        caption=f"The sheet's playground cell: a linear encoder and decoder trained with Adam (lr 0.01) for "
                f"{VAE_EPOCHS} epochs on 512 random 8-dimensional points, the loss being the squared "
                "reconstruction error plus kl_loss. Your reparameterize and kl_loss (values and gradients, "
                "through autograd in the sandbox) drive the training; the encoder and decoder are the sheet's.")
def vae_loss(fig):
    torch.manual_seed(0)
    data = torch.randn(512, 8)
    enc, dec = torch.nn.Linear(8, 2 * 2), torch.nn.Linear(2, 8)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-2)
    noise = torch.Generator().manual_seed(1)
    losses, kls = [], []
    for _ in range(VAE_EPOCHS):
        mu, log_sigma = enc(data).chunk(2, dim=1)
        m, s = mu.detach().contiguous(), log_sigma.detach().contiguous()
        eps = torch.randn(m.shape, generator=noise)
        z = _tensor(hw6.reparameterize(m, s, eps), "reparameterize(mu, log_sigma, eps)", m.shape).requires_grad_()
        recon = ((dec(z) - data) ** 2).sum()
        recon.backward()
        _, grads = hw6.reparameterize.grad(m, s, eps, wrt=(0, 1), grad_output=z.grad)
        d_mu, d_s = _grads(grads, ("mu (through reparameterize)", "log_sigma (through reparameterize)"))
        kl, grads = hw6.kl_loss.grad(m, s, wrt=(0, 1))
        k_mu, k_s = _grads(grads, ("mu (through kl_loss)", "log_sigma (through kl_loss)"))
        torch.autograd.backward([mu, log_sigma], [d_mu + k_mu, d_s + k_s])
        opt.step()
        opt.zero_grad()
        kl = float(float_array(kl, name="kl_loss(mu, log_sigma)", shape=()))
        losses.append(float(recon.detach()) + kl)
        kls.append(kl)
    ax = fig.subplots()
    ax.plot(losses, label="loss (reconstruction + KL)")
    ax.plot(kls, label="kl_loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"last epoch: loss {losses[-1]:.1f}, KL {kls[-1]:.2f}", fontsize=10)


@figure("subpixel", "subpixel_conv: the sheet's worked example as an image", size=(5.5, 4.5),
        caption="The playground's picture: subpixel_conv(A, K, stride=2) of the sheet's 5x5 A and 3x3 K, an 11x11 "
                "matrix shown in grey levels, with its first row printed above it.")
def subpixel(fig):
    out = float_array(hw6.subpixel_conv(WORKED_A, WORKED_K, stride=2), name="subpixel_conv(A, K, stride=2)",
                      shape=WORKED_SHAPE)
    ax = fig.subplots()
    fig.colorbar(ax.imshow(out, cmap="gray"), ax=ax)
    ax.set_title("first row: " + " ".join(f"{v:g}" for v in out[0]), fontsize=9)
