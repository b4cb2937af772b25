"""Hostile submission: reaches the worker's bound probe table through gc and forges gradients.

The table is a read-only mapping bound before this file loaded, but gc hands out the dict
behind it: ``gradient_graph`` is replaced by a probe that answers without tracing anything,
with a "graph" whose value and gradients are constants: the numpy reparameterize's value and
its central finite differences (what a replaced probe used to report as autograd's gradients).
``call`` is left alone, so the numpy values are graded as they are (the honest part).
"""
import gc

import numpy as np
import torch


def reparameterize(mu, log_sigma, eps):
    return torch.as_tensor(mu.detach().numpy() + np.exp(log_sigma.detach().numpy()) * eps.detach().numpy())


def _finite_differences(fn, args, wrt, upstream):
    grads = []
    for i in wrt:
        g = torch.zeros_like(args[i], dtype=torch.float64)
        for k in range(args[i].numel()):
            moved = [a.detach().clone().double() for a in args]
            moved[i].reshape(-1)[k] += 1e-4
            up = float((fn(*moved) * upstream).sum())
            moved[i].reshape(-1)[k] -= 2e-4
            g.reshape(-1)[k] = (up - float((fn(*moved) * upstream).sum())) / 2e-4
        grads.append(g.float())
    return grads


def _forged_graph(worker, target, args=(), kwargs=None, nets=(), wrt=(), grad_output=None):
    fn = worker.modules[target[0]]
    for attr in target[1:]:
        fn = getattr(fn, attr)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    upstream = torch.ones(()) if grad_output is None else grad_output
    value = fn(*args).float()
    grads = _finite_differences(fn, list(args), list(wrt), upstream)
    k = len(tensors) + (grad_output is not None)
    nodes = [["constant", value]] + [["constant", g] for g in grads]
    return {"graph": {"inputs": k, "nodes": nodes,
                      "output": [{"node": k}, [{"node": k + 1 + j} for j in range(len(grads))]]},
            "returned": "float32 tensor"}


for _obj in gc.get_objects():
    if type(_obj).__name__ == "Worker" and hasattr(_obj, "probes"):
        for _table in gc.get_referents(_obj.probes):
            if isinstance(_table, dict) and "gradient_graph" in _table:
                _table["gradient_graph"] = _forged_graph
