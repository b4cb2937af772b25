"""Every function of the contract kills its own worker with os._exit."""
import os


def _exit(*args, **kwargs):
    os._exit(0)


batchnorm_forward = batchnorm_backward = reparameterize = kl_loss = svm_fit = _exit
forward = backward = sequence_log_likelihood = viterbi = baum_welch = subpixel_conv = _exit
