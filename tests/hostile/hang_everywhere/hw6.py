"""Every function of the contract spins forever, ignoring every signal it can ignore, or sleeps."""
import signal
import time

for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGXCPU):
    signal.signal(sig, signal.SIG_IGN)


def _spin(*args, **kwargs):
    while True:
        pass


def _sleep(*args, **kwargs):
    time.sleep(10**6)


batchnorm_forward = batchnorm_backward = reparameterize = kl_loss = svm_fit = _spin
forward = backward = sequence_log_likelihood = viterbi = baum_welch = subpixel_conv = _sleep
