"""``mlgrade grade --scheduler ADDRESS``: a class graded on a Dask cluster instead of the local pool.

The client (:class:`Cluster`, in ``mlgrade grade``) stages and records exactly as the local pool
does (:func:`mlgrade.batch.grade_class`); only the grading of each submission moves. It sends:

- the assignment bundle once per run (a course of one assignment, graders and reference included, as a zip, in a worker plugin
  that the scheduler gives every worker, present and future): a worker extracts it into a
  private folder named after its hash, never from anything a student sent, and refuses it
  unless its own mlgrade matches the client's;
- each submission as one task: the contract's files as bytes (each within the loader's limit),
  with retries off (a retry re-runs hostile code).

A Dask worker (``dask worker ADDRESS --nthreads 1 --preload mlgrade.cluster``) grades with the
same code as a pool process (:func:`mlgrade.pool.grade_one`: the runner, the sandbox, a fork
server kept for the life of the process) and returns plain JSON, bounded, which the client
decodes with limits before anything is recorded. As root each worker process runs student code
as a user of its own (``mlgrade-d<k>``, k claimed with a lock file), since the sandbox sweeps
every process of its worker user when a submission ends.

A worker that dies mid-task is the scheduler's to detect: with ``allowed-failures`` 1 the task
is regraded once elsewhere, then reported failed (KilledWorker). A grading that outlives
``timeout`` (counted from its start on a worker) is cancelled and its worker restarted.

Who may talk to whom: a cluster off the loopback is a ``tls://`` one, every connection
mutually authenticated by certificates of the cluster's own CA (:mod:`mlgrade.certificates`,
:func:`client_security`); a plain ``tcp://`` scheduler elsewhere is refused unless the
instructor says ``allow_plain_tcp`` (``--unsafe-plain-tcp``). A certificate holder is trusted,
nobody else. Beyond that, a grading worker does only what grading needs (:func:`dask_setup`):
it runs no task but :func:`grade_task`, takes no worker plugin but :class:`AssignmentPlugin`,
and has no ``Client.run`` channel. That keeps a mistake or a stray notebook pointed at the
cluster from running code as the workers' user (root); it is not a boundary against a
certificate holder, whose task or plugin Dask unpickles before any check sees it.
"""
from __future__ import annotations

import asyncio
import fcntl
import hashlib
import importlib.metadata
import io
import json
import os
import tempfile
import threading
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import dask
import distributed
import distributed.comm
from dask._task_spec import Task
from distributed import Client, Security, WorkerPlugin, as_completed, get_worker
from distributed.core import error_message

from mlgrade.course import Assignment, open_course
from mlgrade.cluster_tls import MSG_TLS_REFUSED, ClusterError, client_security, folder_security, tls_refused
from mlgrade.bundle import BUNDLE_MANIFEST, BundleError, extract_bundle, make_bundle, private_dir
from mlgrade.intake import Submission
from mlgrade.pool import MSG_RAISED, MSG_TIMEOUT, Failure, grade_one, report
from mlgrade.staging import stage

__all__ = ["Cluster", "ClusterError", "client_security", "connect", "dask_setup", "folder_security"]

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler before giving up
WORKER_WAIT = 60.0  # seconds for the first worker to join
ALLOWED_FAILURES = 1  # worker deaths a task survives: regraded once, then reported failed
GRADING_PROCESS_MB = 1024  # what a grading process holds beside its sandbox (measured: ~256 MB)
MAX_REPLY_BYTES = 16 << 20  # results.json (< 1 MB) and a log cut to 2M characters, as JSON
START_TOPIC = "mlgrade-grading-started"
# what a scheduler for grading should be started with (local_cluster does; README for others):
# a task regraded once after a worker death, and a large class queued on the scheduler rather
# than on busy workers (a worker's death counts against every task assigned to it, begun or not)
SCHEDULER_CONFIG = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                    "distributed.scheduler.worker-saturation": 1.0}
SLOT_USER = "mlgrade-d{slot}"
MAX_SLOTS = 256

MSG_NO_SCHEDULER = "no Dask scheduler answered at {address} within {seconds:g} s ({error})"
MSG_NO_WORKERS = "the Dask scheduler at {address} has no worker after {seconds:g} s: start some with " \
                 "`dask worker {address} --nthreads 1 --preload mlgrade.cluster`"
MSG_MEMORY_LIMIT = "Dask worker {worker}: memory limit {have} MB is below the {need} MB a grading needs " \
                   "(its sandbox's {sandbox} MB and {process} MB for the grading process): the nanny would " \
                   "kill the worker before the sandbox's own limits hold; start it with --memory-limit {need}MB " \
                   "or more (0: none)"
MSG_ALLOWED_FAILURES = "the scheduler at {address} regrades a task after {n} worker deaths (allowed-failures); " \
                       "start it with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1 to regrade once only"
MSG_WORKER_DIED = "the Dask worker grading this submission died ({attempts} times, on {worker}): not graded"
MSG_CANCELLED = "the cluster lost this grading ({status}): not graded"
MSG_BAD_REPLY = "the Dask worker's reply could not be read ({error}): not graded"
MSG_ENGINE_MISMATCH = "this worker's {what} differs from the client's: install the same mlgrade on every worker"
MSG_PLUGIN_REFUSED = "a Dask worker refused the assignment ({error})"
MSG_NO_PLUGIN = "this worker has no assignment bundle {name} (it was unregistered: the client has gone)"
MSG_ONLY_GRADING = ("this mlgrade worker runs only mlgrade's grading tasks: {what} refused (the cluster is "
                    "for grading; see mlgrade.cluster)")


# --- the client ---------------------------------------------------------------------------------

@dataclass
class Cluster:
    """A connected client; :meth:`run` is the ``run`` of :func:`mlgrade.batch.grade_class`."""

    client: Client
    address: str
    plugin: str  # the name of the registered AssignmentPlugin that gives workers the assignment
    notes: list[str] = field(default_factory=list)  # what the instructor should know (not errors)

    def close(self) -> None:
        try:
            self.client.unregister_worker_plugin(self.plugin)
        except Exception:  # the scheduler already gone: nothing left to unregister
            pass
        self.client.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, assignment: Assignment, todo: list[Submission], timeout: float, on_done) -> list[str]:
        """Grade ``todo`` on the cluster; ``on_done(sub, result, failure)`` once per submission."""
        started: dict[str, tuple[float, str]] = {}  # task key -> (monotonic start, worker address)
        self.client.subscribe_topic(START_TOPIC, lambda event: started.__setitem__(
            event[1]["key"], (time.monotonic(), event[1]["worker"])))
        futures = {}
        run = os.urandom(6).hex()
        for i, sub in enumerate(todo):
            files = {p.name: p.read_bytes() for p in sorted(sub.folder.iterdir()) if p.is_file()}
            # one task group ("mlgrade": the word after it is a number), so that a large class is
            # queued on the scheduler rather than on the workers
            fut = self.client.submit(grade_task, self.plugin, assignment.id, files, retries=0, pure=False,
                                     key=f"mlgrade-{i:06d}-{run}-{sub.student}")
            futures[fut.key] = (fut, sub)
        timed_out: dict[str, float] = {}
        stop = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(futures, started, timed_out, timeout, stop),
                                    daemon=True, name="mlgrade-timeouts")
        watchdog.start()
        errors: list[str] = []
        try:
            # results fetched as each completes: a worker that dies later takes nothing with it
            for fut, reply in as_completed([f for f, _ in futures.values()], loop=self.client.loop,
                                           with_results=True, raise_errors=False):
                sub = futures[fut.key][1]
                report(on_done, sub, *self._outcome(fut, reply, started, timed_out, timeout), errors)
        finally:
            stop.set()
            watchdog.join()
            self.client.unsubscribe_topic(START_TOPIC)
            self.client.cancel([f for f, _ in futures.values()])
        return errors

    def _watch(self, futures: dict, started: dict, timed_out: dict, timeout: float, stop: threading.Event) -> None:
        """Cancel a grading that runs longer than ``timeout`` and restart its worker (a stuck
        thread cannot be stopped otherwise)."""
        while not stop.wait(1.0):
            now = time.monotonic()
            for key, (begun, worker) in list(started.items()):
                fut = futures.get(key, (None,))[0]
                if fut is None or fut.done() or key in timed_out or now - begun <= timeout:
                    continue
                timed_out[key] = now - begun
                fut.cancel()
                try:
                    self.client.restart_workers([worker], raise_for_error=False)
                except Exception:  # no nanny, or the worker already gone: the grading is cancelled anyway
                    pass

    @staticmethod
    def _outcome(fut, reply, started: dict, timed_out: dict, timeout: float) -> tuple[dict | None, Failure | None]:
        seconds = time.monotonic() - started.get(fut.key, (time.monotonic(), ""))[0]
        if fut.status == "finished":
            try:
                return decode_reply(reply), None
            except ValueError as exc:
                return None, Failure(MSG_BAD_REPLY.format(error=str(exc)[:300]), seconds)
        if fut.status == "cancelled":
            if fut.key in timed_out:
                return None, Failure(MSG_TIMEOUT.format(timeout=timeout), timed_out[fut.key])
            return None, Failure(MSG_CANCELLED.format(status=fut.status), seconds)
        exc = fut.exception()
        if isinstance(exc, distributed.KilledWorker):
            worker = getattr(exc.last_worker, "address", "?")
            return None, Failure(MSG_WORKER_DIED.format(attempts=exc.allowed_failures + 1, worker=worker), seconds,
                                 str(exc))
        reason = MSG_RAISED.format(type=type(exc).__name__, message=str(exc)[:300])
        return None, Failure(reason, seconds, "".join(traceback.format_exception(type(exc), exc, fut.traceback())))


def connect(address: str, assignment: Assignment, security: Security | None = None,
            connect_timeout: float = CONNECT_TIMEOUT, worker_wait: float = WORKER_WAIT) -> Cluster:
    """A client of the scheduler at ``address``, ready to grade ``assignment``. ClusterError
    (before anything is graded or written) if no scheduler answers within ``connect_timeout``
    seconds, no worker joins within ``worker_wait``, or a worker's memory limit is too small.
    ``security``: see :func:`client_security` (None: a plain scheduler)."""
    try:
        plugin = AssignmentPlugin(make_bundle(assignment), assignment.id)
    except BundleError as exc:
        raise ClusterError(str(exc)) from None
    try:
        # the Client's own timeout does not bound a peer that accepts and stays silent
        asyncio.run(asyncio.wait_for(_handshake(address, connect_timeout, security), connect_timeout))
        client = Client(address, timeout=connect_timeout, set_as_default=False, security=security)
    except (OSError, TimeoutError, ValueError) as exc:
        error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if security is not None and tls_refused(exc):
            raise ClusterError(MSG_TLS_REFUSED.format(address=address, error=error)) from None
        raise ClusterError(MSG_NO_SCHEDULER.format(address=address, seconds=connect_timeout, error=error)) from None
    try:
        client.wait_for_workers(1, timeout=worker_wait)
    except (OSError, TimeoutError):
        client.close()
        raise ClusterError(MSG_NO_WORKERS.format(address=address, seconds=worker_wait)) from None
    try:
        _check_memory(client, assignment)
        try:
            client.register_plugin(plugin, name=plugin.name)
        except Exception as exc:  # a worker's setup refused it: its mlgrade differs
            raise ClusterError(MSG_PLUGIN_REFUSED.format(error=f"{type(exc).__name__}: {str(exc)[:300]}")) from None
    except ClusterError:
        client.close()
        raise
    cluster = Cluster(client, address, plugin.name)
    allowed = client.run_on_scheduler(_allowed_failures)
    if allowed != ALLOWED_FAILURES:
        cluster.notes.append(MSG_ALLOWED_FAILURES.format(address=address, n=allowed))
    return cluster


def _check_memory(client: Client, assignment: Assignment) -> None:
    """The nanny's memory limit must leave room for the sandbox's: its limits hold first."""
    need = assignment.limits.memory_mb + GRADING_PROCESS_MB
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        have = (info.get("memory_limit") or 0) >> 20
        if have and have < need:
            raise ClusterError(MSG_MEMORY_LIMIT.format(worker=address, have=have, need=need,
                                                       sandbox=assignment.limits.memory_mb,
                                                       process=GRADING_PROCESS_MB))


async def _handshake(address: str, seconds: float, security: Security | None) -> None:
    args = security.get_connection_args("client") if security is not None else {}
    comm = await distributed.comm.connect(address, timeout=seconds, **args)
    await comm.close()


def _allowed_failures(dask_scheduler) -> int:
    return dask_scheduler.allowed_failures


def local_cluster(n_workers: int = 2, security: Security | None = None, **kwargs) -> distributed.LocalCluster:
    """A LocalCluster set up as a real one should be: one thread per worker process, the
    preload, and tasks regraded once after a worker death (tests, benchmarks); over TLS with
    ``security`` (its scheduler and worker certificates)."""
    if security is not None:
        kwargs.update(protocol="tls", security=security)
    with dask.config.set(SCHEDULER_CONFIG):
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                        preload=["mlgrade.cluster"], host="127.0.0.1",
                                        dashboard_address=":0", **kwargs)


class AssignmentPlugin(WorkerPlugin):
    """Gives every worker, present and future, one assignment's course files (graders and reference
    included): unpacked at set-up (a worker whose mlgrade differs refuses it there)."""

    def __init__(self, bundle: bytes, assignment_id: str):
        self.bundle, self.assignment_id = bundle, assignment_id
        self.name = f"mlgrade-{assignment_id}-{hashlib.sha256(bundle).hexdigest()[:16]}"

    def setup(self, worker) -> None:
        _assignment(self.bundle, self.assignment_id)


_ASSIGNMENTS: dict[str, Assignment] = {}  # bundle digest -> the assignment it grades, in this worker


def _assignment(bundle: bytes, assignment_id: str) -> Assignment:
    digest = hashlib.sha256(bundle).hexdigest()
    if digest not in _ASSIGNMENTS:
        with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
            manifest = json.loads(zf.read(BUNDLE_MANIFEST))
        # what the bundle says of itself is checked before anything of it is unpacked or read
        if manifest.get("assignment") != assignment_id:
            raise RuntimeError(f"the bundle is for {manifest.get('assignment')!r}, not {assignment_id!r}")
        if manifest.get("mlgrade") != importlib.metadata.version("mlgrade"):
            raise RuntimeError(MSG_ENGINE_MISMATCH.format(what=f"mlgrade {importlib.metadata.version('mlgrade')}"))
        base = private_dir(Path(tempfile.gettempdir()) / f"mlgrade-cluster-{os.geteuid()}")
        target = base / digest[:32]
        if not target.is_dir():
            extract_bundle(bundle, target)
        _ASSIGNMENTS[digest] = open_course(target).get(assignment_id)
    return _ASSIGNMENTS[digest]


# --- the worker --------------------------------------------------------------------------------------

_GRADING = threading.Lock()  # one grading at a time per process: its worker user and fork server are shared
_SLOT_LOCK = None  # the open lock file of this process's worker-user slot (held until it exits)


def _claim_worker_user() -> None:
    """As root: the first slot k no other process of this host holds (a lock file, released by
    the kernel when the process dies) gives this process its worker user ``mlgrade-d<k>``."""
    global _SLOT_LOCK
    if _SLOT_LOCK is not None or os.geteuid() != 0:
        return
    from mlgrade.provision import ensure_user

    folder = private_dir(Path(tempfile.gettempdir()) / "mlgrade-dask-slots")
    for slot in range(MAX_SLOTS):
        fd = os.open(folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        ensure_user(SLOT_USER.format(slot=slot))
        os.environ["MLGRADE_WORKER_USER"] = SLOT_USER.format(slot=slot)
        _SLOT_LOCK = fd
        return
    raise RuntimeError(f"more than {MAX_SLOTS} grading processes on this host")


def _prepare_process() -> None:
    _claim_worker_user()
    import numpy  # noqa: F401  (once per worker process: every grading after the first is warm)
    import torch  # noqa: F401

    import mlgrade.runner  # noqa: F401


def _refused_task(what: str):
    raise PermissionError(MSG_ONLY_GRADING.format(what=what))


def _grading_only(worker) -> None:
    """Least privilege for a grading worker (see the module's docstring): tasks other than
    grade_task fail, Client.run and run_coroutine are refused, and only AssignmentPlugins join."""
    execute = worker.execute

    async def execute_grading_only(key, *, stimulus_id):
        ts = worker.state.tasks.get(key)
        spec = getattr(ts, "run_spec", None)
        if isinstance(spec, Task) and spec.func is not grade_task:
            what = f"the task {getattr(spec.func, '__qualname__', type(spec.func).__name__)!r}"
            ts.run_spec = Task(key, _refused_task, what)
        return await execute(key, stimulus_id=stimulus_id)

    def no_run(comm=None, function=None, **kwargs):
        return error_message(PermissionError(MSG_ONLY_GRADING.format(what="Client.run")))

    plugin_add = worker.plugin_add

    async def assignment_plugins_only(plugin=None, name=None, catch_errors=True):
        try:
            if isinstance(plugin, bytes):
                plugin = distributed.protocol.pickle.loads(plugin)
        except Exception as exc:  # a plugin this worker cannot even load: refused, the worker still starts
            return error_message(exc)
        if not isinstance(plugin, AssignmentPlugin):
            return error_message(PermissionError(MSG_ONLY_GRADING.format(
                what=f"the worker plugin {type(plugin).__qualname__!r}")))
        return await plugin_add(plugin=plugin, name=name, catch_errors=catch_errors)

    worker.execute, worker.plugin_add = execute_grading_only, assignment_plugins_only  # also at registration
    worker.handlers.update({"run": no_run, "run_coroutine": no_run, "plugin-add": assignment_plugins_only})


def dask_setup(worker) -> None:
    """``dask worker ... --preload mlgrade.cluster``: grading only (:func:`_grading_only`), and
    the worker user, numpy and torch before the first task (the first grading then starts the
    fork server, kept for the process's life)."""
    _grading_only(worker)
    with _GRADING:
        _prepare_process()


def _stage(folder: Path, files: dict, assignment: Assignment) -> None:
    """The files a client sent, staged as every command stages (:func:`mlgrade.staging.stage`); any
    problem refuses the task (the client staged them within the same limits: a peer broke the protocol)."""
    if not isinstance(files, dict):
        raise ValueError("the submission's files are not a mapping of file names to bytes")
    problems = stage(assignment, files, folder)
    if problems:
        raise ValueError("; ".join(problems))


def grade_task(plugin_name: str, assignment_id: str, files: dict) -> str:
    """A Dask task: grade one submission's files; the reply is JSON text (see decode_reply)."""
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if not isinstance(plugin, AssignmentPlugin):
        raise RuntimeError(MSG_NO_PLUGIN.format(name=plugin_name))
    worker.log_event(START_TOPIC, {"key": str(worker.get_current_task()), "worker": worker.address,
                                   "pid": os.getpid()})
    with _GRADING:
        _prepare_process()
        assignment = _assignment(plugin.bundle, assignment_id)
        with tempfile.TemporaryDirectory(prefix="mlgrade-submission-") as folder:
            _stage(Path(folder), files, assignment)
            result = grade_one(assignment, Path(folder), None)
    reply = json.dumps({**result, "worker": worker.address})
    if len(reply) > MAX_REPLY_BYTES:
        raise RuntimeError(f"the grading's reply is {len(reply) >> 20} MB, more than {MAX_REPLY_BYTES >> 20} MB")
    return reply


def decode_reply(reply) -> dict:
    """The result of :func:`grade_task` as batch expects it, or ValueError: JSON text within
    MAX_REPLY_BYTES holding results (a dict) and a log (a string); nothing else is unpacked."""
    if not isinstance(reply, str):
        raise ValueError(f"a {type(reply).__name__}, not JSON text")
    if len(reply) > MAX_REPLY_BYTES:
        raise ValueError(f"{len(reply)} characters, more than {MAX_REPLY_BYTES}")
    try:
        data = json.loads(reply)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not isinstance(data.get("log"), str):
        raise ValueError("no results and log")
    if not isinstance(data["results"].get("tests", []), list):
        raise ValueError("results without a list of tests")
    peak = data.get("peak_rss_mb")
    return {"results": data["results"], "log": data["log"], "written": False,
            "pid": f"{data.get('worker', '?')}/{data.get('pid', '?')}",
            "peak_rss_mb": float(peak) if isinstance(peak, (int, float)) else 0.0}
