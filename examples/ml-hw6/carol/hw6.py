# Carol's submission: a missing colon stops the whole file from loading.
import numpy as np


def viterbi(A, B, pi, O)
    T, N = len(O), A.shape[0]
    delta = np.log(pi) + np.log(B[:, O[0]])
    return np.zeros(T, dtype=int)
