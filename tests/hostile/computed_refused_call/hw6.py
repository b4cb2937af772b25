"""Hostile submission: subpixel_conv hands the work to torch's transposed convolution, reached
through a name computed at run time (reversed), so that no refused name appears in the source
and nothing is imported: torch is loaded already."""
import numpy as np
import torch


def subpixel_conv(A, K, stride=2):
    routine = getattr(torch.nn.functional, "d2esopsnart_vnoc"[::-1])
    a = torch.as_tensor(np.asarray(A, dtype=np.float64))[None, None]
    k = torch.as_tensor(np.asarray(K, dtype=np.float64)[::-1, ::-1].copy())[None, None]
    return torch.relu(routine(a, k, stride=int(stride)))[0, 0].numpy()
