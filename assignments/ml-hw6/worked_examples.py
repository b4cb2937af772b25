"""Worked examples of ml-hw6, as plain numpy constants (inputs and expected outputs).

Each constant says where it comes from. Expected outputs hold to ~1e-6
(SVM: interior-point tolerance; HMM: 100 Baum-Welch iterations).
"""

import numpy as np

# --- SVM -------------------------------------------------------------------
# From the sheet (and ASSIGNMENTS.md): x1 = [1, -1] with label +1,
# x2 = [-1, -1] with label -1. The margin is the line x = 0.
SVM_X = np.array([[1.0, -1.0], [-1.0, -1.0]])
SVM_Y = np.array([1.0, -1.0])
SVM_W = np.array([1.0, 0.0])
SVM_B = 0.0
SVM_ALPHA = np.array([0.5, 0.5])
# the sheet asks for the dual QP with cvxopt: a library SVM is refused (a teaching rule, see mlgrade.refuse)
SVM_REFUSED = {"sklearn": "scikit-learn", "SVC": "scikit-learn's SVC", "LinearSVC": "scikit-learn's LinearSVC"}
# the sheet asks for numpy only: a library transposed convolution or pixel shuffle is refused
SUBPIXEL_REFUSED = {
    "conv_transpose2d": "a library transposed convolution", "ConvTranspose2d": "a library transposed convolution",
    "conv_transpose1d": "a library transposed convolution", "pixel_shuffle": "pixel shuffle",
    "PixelShuffle": "pixel shuffle",
}

# --- HMM: three urns -------------------------------------------------------
# From the sheet (and ASSIGNMENTS.md): three urns, symbols red = 0, blue = 1;
# uniform A and pi; O = red, red, blue, red, blue. Expected values are the
# parameters after baum_welch(URN_A, URN_B, URN_PI, URN_O, n_iter=100).
URN_A = np.full((3, 3), 1.0 / 3.0)
URN_B = np.array([[4 / 6, 2 / 6],
                  [2 / 6, 4 / 6],
                  [3 / 6, 3 / 6]])
URN_PI = np.full(3, 1.0 / 3.0)
URN_O = np.array([0, 0, 1, 0, 1])
URN_N_ITER = 100
URN_A_FIT = np.array([[0.0, 0.0, 1.0],
                      [0.0, 0.0, 1.0],
                      [0.0, 1.0, 0.0]])
URN_B_FIT = np.array([[1.0, 0.0],
                      [0.0, 1.0],
                      [1.0, 0.0]])
URN_PI_FIT = np.array([1.0, 0.0, 0.0])

# --- Subpixel convolution --------------------------------------------------
# The sheet's own 5x5 A and 3x3 K are not available; the sheet states only that
# subpixel_conv(A, K, stride=2) is 11x11 with first row
# [18, 0, 0, 0, 0, 0, 8, 0, 3, 0, 0]. This is a RECONSTRUCTION consistent with
# that row: the first output row sees only A's first row and K's last row, and
# A[0] = [9, -5, 2, 3, 0] with K[2] = [1, 0, 2] gives exactly that row (two of
# its zeros are ReLU-clipped -1s). The other entries are our own choice (small
# integers of both signs), so only WORKED_FIRST_ROW is the sheet's.
WORKED_A = np.array([[9.0, -5.0, 2.0, 3.0, 0.0],
                     [1.0, 4.0, -2.0, 0.0, 6.0],
                     [-3.0, 2.0, 7.0, -1.0, 1.0],
                     [0.0, -4.0, 1.0, 5.0, -2.0],
                     [2.0, 1.0, -6.0, 3.0, 4.0]])
WORKED_K = np.array([[1.0, -1.0, 0.0],
                     [2.0, 1.0, -2.0],
                     [1.0, 0.0, 2.0]])
WORKED_STRIDE = 2
WORKED_SHAPE = (11, 11)
WORKED_FIRST_ROW = np.array([18.0, 0.0, 0.0, 0.0, 0.0, 0.0, 8.0, 0.0, 3.0, 0.0, 0.0])
