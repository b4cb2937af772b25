"""Every function of the contract allocates (and touches) memory until something stops it."""


def _exhaust(*args, **kwargs):
    hoard = []
    while True:
        hoard.append(bytearray(64 << 20))


batchnorm_forward = batchnorm_backward = reparameterize = kl_loss = svm_fit = _exhaust
forward = backward = sequence_log_likelihood = viterbi = baum_welch = subpixel_conv = _exhaust
