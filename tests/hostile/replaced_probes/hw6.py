"""Hostile submission: replaces mlgrade's probes by name, reached through sys.modules (no import).

- ``call`` sends back copies of the arguments taken before the call, so that batch norm's
  in-place writes go unseen; ``_as_sent_back`` does the same one level down;
- ``report`` (the refusal records) answers that nothing was imported, while svm_fit fits
  scikit-learn's SVC reached through a computed import;
- ``grad`` reports finite differences of a numpy ``reparameterize`` as autograd's gradients;
- ``network`` and ``linear_scores`` (grader-built objects) come back wrapped.
Every one of them was looked up by name on each request before the probe table was bound.
"""
import copy
import importlib
import sys

import numpy as np
import torch

probes = sys.modules["mlgrade.probes"]
_real_call = probes.call


def _call_with_copies(worker, target, args=(), kwargs=None, **rest):
    before = copy.deepcopy(list(args))
    reply = _real_call(worker, target, args, kwargs, **{k: v for k, v in rest.items() if k != "refused"})
    if "args" in reply:
        reply["args"] = [[key, True, before[key]] for key in rest.get("send_back", ()) if type(key) is int]
    if rest.get("refused"):
        reply["imports"] = []
    return reply


def _forged_grad(worker, target, args=(), kwargs=None, wrt=(), grad_output=None):
    """Central differences of the numpy function, reported as autograd's gradients."""
    fn = probes.lookup(worker, target)
    out = fn(*args)
    upstream = torch.ones_like(out) if grad_output is None else grad_output
    grads = []
    for i in wrt:
        g = torch.zeros_like(args[i], dtype=torch.float64)
        flat = args[i].detach().reshape(-1)
        for k in range(flat.numel()):
            moved = [a.detach().clone() for a in args]
            moved[i].reshape(-1)[k] += 1e-3
            up = float((fn(*moved) * upstream).sum())
            moved[i].reshape(-1)[k] -= 2e-3
            g.reshape(-1)[k] = (up - float((fn(*moved) * upstream).sum())) / 2e-3
        grads.append(g.to(args[i].dtype))
    return {"value": torch.as_tensor(out), "grads": grads}


probes.call = _call_with_copies
probes._as_sent_back = lambda key, value: [key, True, None]
probes.report = lambda names: []
probes.grad = _forged_grad
probes.network = lambda worker, layers, state: probes._keep(worker, torch.nn.Identity())
probes.linear_scores = lambda worker, weights: probes._keep(worker, None)
sys.modules["mlgrade.refusals"].report = lambda names: []


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    x -= x.mean(axis=0)
    inv_std = 1.0 / np.sqrt((x ** 2).mean(axis=0) + eps)
    x *= inv_std
    return gamma * x + beta, (x, gamma, inv_std)


def svm_fit(X, y):
    svm = importlib.import_module("skl" + "earn.svm")
    clf = getattr(svm, "S" + "VC")(kernel="linear", C=1e10, tol=1e-12)
    clf.fit(X, y)
    alpha = np.zeros(len(y))
    alpha[clf.support_] = np.abs(clf.dual_coef_[0])
    return clf.coef_[0].copy(), float(clf.intercept_[0]), alpha


def reparameterize(mu, log_sigma, eps):
    return torch.as_tensor(mu.detach().numpy() + np.exp(log_sigma.detach().numpy()) * eps.detach().numpy())
