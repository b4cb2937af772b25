"""Hostile submission: svm_fit hands the QP to scikit-learn's SVC, reached through computed names
(importlib with a built string, getattr), so that no refused name appears in the source."""
import importlib

import numpy as np


def svm_fit(X, y):
    svm = importlib.import_module("skl" + "earn.svm")
    clf = getattr(svm, "S" + "VC")(kernel="linear", C=1e10, tol=1e-12)
    clf.fit(X, y)
    alpha = np.zeros(len(y))
    alpha[clf.support_] = np.abs(clf.dual_coef_[0])
    return clf.coef_[0].copy(), float(clf.intercept_[0]), alpha
