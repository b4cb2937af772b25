"""Hostile submission: calls raise an exception whose class name and message are 1 MB each."""
Huge = type("E" * (1 << 20), (Exception,), {})


def kl_loss(mu, log_sigma):
    raise Huge("M" * (1 << 20))


def viterbi(A, B, pi, O):
    raise Huge("M" * (1 << 20))
