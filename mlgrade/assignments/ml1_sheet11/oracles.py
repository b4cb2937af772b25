"""The sheet's moons network and its error, for checks: y = sum_j v_j max(0, x1 w1j + x2 w2j + b_j),
E = mean_k max(0, -y_k t_k), and central finite differences of E (no backprop in here)."""
import numpy as np


def forward(X1, X2, W, B, V):
    return np.maximum(0, np.outer(X1, W[0]) + np.outer(X2, W[1]) + B) @ V


def error(X1, X2, T, W, B, V) -> float:
    return float(np.maximum(0, -forward(X1, X2, W, B, V) * T).mean())


def finite_differences(X1, X2, T, W, B, V, h=1e-6):
    """(dE/dW, dE/dB, dE/dV) by central differences, entry by entry."""
    params = [np.array(W, dtype=float), np.array(B, dtype=float), np.array(V, dtype=float)]
    grads = []
    for p in params:
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            saved = p[i]
            p[i] = saved + h
            up = error(X1, X2, T, *params)
            p[i] = saved - h
            g[i] = (up - error(X1, X2, T, *params)) / (2 * h)
            p[i] = saved
        grads.append(g)
    return tuple(grads)
