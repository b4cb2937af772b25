"""Hostile code for ml2-sheet10's err cell (tests/test_hostile_verdicts.py puts it under an err
without the gradient flip, which calls ``_forge()`` where the flip was): it reaches the worker's bound probe table through gc and replaces
``gradient_graph`` by a probe that traces nothing. It answers with a "graph" of constants: the
loss and the gradients the sheet asks for (gnet's flipped), computed right here by autograd on
the networks and inputs the probe was sent, exactly what the old worker-side probe reported.
"""
import gc as _gc


def _forged_gradient_graph(worker, target, args=(), kwargs=None, nets=(), wrt=(), grad_output=None):
    built = {}
    params = []
    for position, layers, state in nets:
        net = torch.nn.Sequential(*(getattr(torch.nn, name)(*rest) for name, *rest in layers))
        with torch.no_grad():
            for p, s in zip(net.parameters(), state):
                p.copy_(s)
        built[position] = net
        params += list(net.parameters())
    x, m, z = args[0], args[1], args[2]
    gnet, enet = built[3], built[4]
    g = gnet(z)
    r = z * (1 - m) + m * (2 * g.detach() - g)
    loss = F.softplus(enet(x) - enet(r)).mean()
    grads = torch.autograd.grad(loss, params)
    k = 3 + len(params)
    nodes = [["constant", loss.detach()]] + [["constant", grad.detach()] for grad in grads]
    return {"graph": {"inputs": k, "nodes": nodes,
                      "output": [{"node": k}, [{"node": k + 1 + j} for j in range(len(grads))]]},
            "returned": "float32 tensor ()"}


def _forge():
    """Called by err (a notebook's top-level statements are not run: only its definitions)."""
    for obj in _gc.get_objects():
        if type(obj).__name__ == "Worker" and hasattr(obj, "probes"):
            for table in _gc.get_referents(obj.probes):
                if isinstance(table, dict) and "gradient_graph" in table:
                    table["gradient_graph"] = _forged_gradient_graph
