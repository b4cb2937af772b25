"""Training script of cs446-hw2, parts (c)/(d): train/test error curves of ResNet(C).

Data: scikit-learn's ``load_digits`` (1797 images 8x8, values 0..16), scaled with
``X /= X.max()``, reshaped to (n, 1, 8, 8), split in half with
``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``: the first
``n // 2`` permuted indices are the training set, the rest the test set.

For every C in ``--channels`` (default 1,2,4,64) the script calls
``torch.manual_seed(seed)``, builds ``ResNet(C)`` and runs
``fit_and_evaluate(net, ..., n_epochs, batch_size=128, lr=0.1)`` (plain SGD).
The per-epoch error rates are plotted (one panel per C, train and test) into
``--out`` (PNG, default hw2_errors.png) and written as JSON to ``--json``
(default: the PNG path with suffix .json).

Usage:
    python train.py                     # 200 epochs for C in 1,2,4,64
    python train.py --epochs 3          # smoke test, a few seconds
    python train.py --channels 1,2,4 --epochs 4000 --out long.png

Speed (one CPU thread, the default): about 0.03 s per epoch for C <= 4 and 0.18 s
per epoch for C = 64, so the default 200 epochs take about a minute in all.
"""

import argparse
import json
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hw2_ResNet import Block, ResNet, fit_and_evaluate  # noqa: E402,F401

try:
    from rich.progress import Progress
except ImportError:  # plain prints instead
    Progress = None

BATCH_SIZE = 128
LR = 0.1


def load_data(seed):
    digits = load_digits()
    X = torch.tensor(digits.data, dtype=torch.float32)
    X /= X.max()
    X = X.reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.int64)
    n = X.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[: n // 2], perm[n // 2:]
    return X[tr], y[tr], X[te], y[te]


def train_one(C, data, epochs, seed, chunk):
    """Train ResNet(C) for ``epochs`` epochs in chunks of ``chunk`` epochs (for progress)."""
    X_train, y_train, X_test, y_test = data
    torch.manual_seed(seed)
    net = ResNet(C)
    train_err, test_err = [], []
    done = 0
    while done < epochs:
        k = min(chunk, epochs - done)
        # fit_and_evaluate creates a fresh SGD optimizer per call; plain SGD has no
        # state, so chunked calls are identical to a single call with all epochs.
        tr, te = fit_and_evaluate(net, X_train, y_train, X_test, y_test, k, batch_size=BATCH_SIZE, lr=LR)
        train_err += tr
        test_err += te
        done += k
        yield done, net, train_err, test_err


def plot(results, epochs, path):
    Cs = list(results)
    fig, axes = plt.subplots(1, len(Cs), figsize=(4.2 * len(Cs), 3.6), sharey=True, squeeze=False)
    ep = list(range(1, epochs + 1))
    for ax, C in zip(axes[0], Cs):
        r = results[C]
        ax.plot(ep, r["train_errors"], label="train")
        ax.plot(ep, r["test_errors"], label="test")
        ax.set_title(f"C = {C} ({r['n_params']} parameters)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("misclassification rate")
    axes[0][0].set_ylim(0, 1)
    fig.suptitle(f"ResNet on sklearn digits, SGD lr={LR}, batch {BATCH_SIZE}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=200, help="epochs per network (default 200)")
    ap.add_argument("--channels", default="1,2,4,64", help="comma-separated C values (default 1,2,4,64)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data split and of each net's init")
    ap.add_argument("--out", default="hw2_errors.png", help="PNG of the error curves")
    ap.add_argument("--json", default=None, help="JSON of the same numbers (default: --out with .json)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: these nets are tiny, and several threads "
                         "become ~10x slower when the cores are shared with other jobs; 0 = torch's default)")
    args = ap.parse_args(argv)
    Cs = [int(c) for c in args.channels.split(",") if c.strip()]
    json_path = args.json or os.path.splitext(args.out)[0] + ".json"
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_data(args.seed)
    print(f"digits: {data[0].shape[0]} train / {data[2].shape[0]} test, "
          f"{args.epochs} epochs, C in {Cs}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    t_start = time.perf_counter()
    results = {}
    chunk = max(1, min(10, args.epochs // 20 or 1))

    def run(C, report):
        t0 = time.perf_counter()
        for done, net, tr, te in train_one(C, data, args.epochs, args.seed, chunk):
            report(done, tr[-1], te[-1])
        results[C] = {
            "n_params": sum(p.numel() for p in net.parameters()),
            "train_errors": tr,
            "test_errors": te,
            "seconds": time.perf_counter() - t0,
        }

    if Progress is not None:
        with Progress() as progress:
            for C in Cs:
                task = progress.add_task(f"C={C:<3d}", total=args.epochs)

                def report(done, tr, te, task=task, C=C):
                    progress.update(task, completed=done,
                                    description=f"C={C:<3d} train {tr:.3f} test {te:.3f}")
                run(C, report)
    else:
        for C in Cs:
            step = max(1, args.epochs // 10)

            def report(done, tr, te, C=C, step=step):
                if done % step < chunk or done == args.epochs:
                    print(f"C={C:<3d} epoch {done:5d}/{args.epochs}: train {tr:.3f} test {te:.3f}", flush=True)
            run(C, report)
    wall = time.perf_counter() - t_start

    plot(results, args.epochs, args.out)
    with open(json_path, "w") as f:
        json.dump({
            "dataset": "sklearn load_digits, X /= X.max(), (n,1,8,8), randperm half split",
            "seed": args.seed, "epochs": args.epochs, "batch_size": BATCH_SIZE, "lr": LR,
            "n_train": data[0].shape[0], "n_test": data[2].shape[0],
            "results": {str(C): r for C, r in results.items()},
            "wall_seconds": wall,
        }, f, indent=1)

    print()
    print(f"{'C':>4} {'params':>7} {'final train err':>16} {'final test err':>15} "
          f"{'best test err':>14} {'seconds':>8}")
    for C, r in results.items():
        print(f"{C:>4} {r['n_params']:>7} {r['train_errors'][-1]:>16.4f} {r['test_errors'][-1]:>15.4f} "
              f"{min(r['test_errors']):>14.4f} {r['seconds']:>8.1f}")
    print(f"wall time {wall:.1f} s; plot -> {args.out}; numbers -> {json_path}")


if __name__ == "__main__":
    main()
