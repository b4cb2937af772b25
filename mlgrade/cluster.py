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
same code as a pool process (:func:`mlgrade.batch.grade_one`: the runner, the sandbox, a fork
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
import ipaddress
import json
import os
import shutil
import ssl
import stat
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
from mlgrade.batch import MSG_RAISED, MSG_TIMEOUT, Failure, Submission, grade_one, report
from mlgrade.loading import MAX_SOURCE_BYTES

__all__ = ["Cluster", "ClusterError", "client_security", "connect", "dask_setup"]

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler before giving up
WORKER_WAIT = 60.0  # seconds for the first worker to join
ALLOWED_FAILURES = 1  # worker deaths a task survives: regraded once, then reported failed
GRADING_PROCESS_MB = 1024  # what a grading process holds beside its sandbox (measured: ~256 MB)
MAX_BUNDLE_BYTES = 256 << 20
MAX_BUNDLE_ENTRIES = 10_000
MAX_REPLY_BYTES = 16 << 20  # results.json (< 1 MB) and a log cut to 2M characters, as JSON
START_TOPIC = "mlgrade-grading-started"
# what a scheduler for grading should be started with (local_cluster does; README for others):
# a task regraded once after a worker death, and a large class queued on the scheduler rather
# than on busy workers (a worker's death counts against every task assigned to it, begun or not)
SCHEDULER_CONFIG = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                    "distributed.scheduler.worker-saturation": 1.0}
BUNDLE_MANIFEST = "mlgrade-bundle.json"
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
MSG_BAD_FILE = "submission file {name!r} refused: {why}"
MSG_BAD_BUNDLE = "the assignment bundle's entry {name!r} refused: {why}"
MSG_PLAIN_TCP = (
    "refusing the plain {scheme}:// scheduler {address}: it is not on the loopback, and without TLS anyone "
    "who can reach its port can run any code on the workers (as their user, root), receive the hidden graders "
    "and the reference with every submission, and return forged grades. Set up TLS: `mlgrade certificates "
    "DIR`, start the scheduler and workers with --tls-ca-file DIR/ca.pem and their --tls-cert/--tls-key, then "
    "`mlgrade grade ... --scheduler tls://HOST:PORT --tls-ca-file DIR/ca.pem --tls-cert DIR/client.pem "
    "--tls-key DIR/client-key.pem` (README, \"Grading past one machine\"). Only on a private network you trust: "
    "--unsafe-plain-tcp")
MSG_TLS_MISSING = (
    "the tls:// scheduler {address} needs the cluster's CA and this client's certificate and key; missing: "
    "{missing} (give --tls-ca-file, --tls-cert and --tls-key, or set Dask's config: "
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT, "
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY or distributed.comm.tls in ~/.config/dask/*.yaml)")
MSG_TLS_REFUSED = ("the TLS handshake with the scheduler at {address} failed ({error}): the scheduler refused this "
                   "client's certificate or presented one the given CA did not sign; use the ca.pem and client.pem "
                   "made for this cluster by `mlgrade certificates`")
MSG_TLS_UNREADABLE = "the {what} {path} cannot be read ({error})"
MSG_TLS_NOT_TLS = "TLS files were given but the scheduler address {address} is not tls://: use tls://HOST:PORT"
MSG_ONLY_GRADING = ("this mlgrade worker runs only mlgrade's grading tasks: {what} refused (the cluster is "
                    "for grading; see mlgrade.cluster)")


class ClusterError(RuntimeError):
    """The cluster cannot grade at all (no scheduler, no worker, limits that disagree)."""


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


def _on_loopback(address: str) -> bool:
    scheme, location = distributed.comm.parse_address(address)
    if scheme == "inproc":  # this process
        return True
    host = distributed.comm.parse_host_port(location, 0)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: not known to be this machine
        return False


def client_security(address: str, ca_file: str | None = None, cert: str | None = None, key: str | None = None,
                    allow_plain_tcp: bool = False) -> Security | None:
    """How ``mlgrade grade`` may connect to ``address``: a Security for a ``tls://`` scheduler
    (the files given, else Dask's config ``distributed.comm.tls``, all three required; nothing
    in clear text), None for a plain one on the loopback, or with ``allow_plain_tcp``;
    ClusterError otherwise, saying why and how to set up TLS."""
    scheme = distributed.comm.parse_address(address)[0]
    if scheme not in ("tls", "wss"):
        if ca_file or cert or key:
            raise ClusterError(MSG_TLS_NOT_TLS.format(address=address))
        if not allow_plain_tcp and not _on_loopback(address):
            raise ClusterError(MSG_PLAIN_TCP.format(scheme=scheme, address=address))
        return None
    given = {name: value for name, value in (("tls_ca_file", ca_file), ("tls_client_cert", cert),
                                             ("tls_client_key", key)) if value}
    security = Security(require_encryption=True, **given)  # what is not given comes from Dask's config
    files = {"CA certificate": security.tls_ca_file, "client certificate": security.tls_client_cert,
             "client key": security.tls_client_key}
    missing = [what for what, path in files.items() if not path]
    if missing:
        raise ClusterError(MSG_TLS_MISSING.format(address=address, missing=", ".join(missing)))
    for what, path in files.items():
        if "\n" in path:  # Dask's config may hold the PEM text itself
            continue
        try:
            open(path, "rb").close()
        except OSError as exc:
            raise ClusterError(MSG_TLS_UNREADABLE.format(what=what, path=path, error=exc.strerror or exc)) from None
    return security


def folder_security(folder: Path, roles=("scheduler", "worker", "client")) -> Security:
    """A Security holding the certificates ``mlgrade certificates`` wrote into ``folder`` for
    ``roles`` (a local cluster, tests and benchmarks hold all three)."""
    folder = Path(folder)
    files = {}
    for role in roles:
        files[f"tls_{role}_cert"], files[f"tls_{role}_key"] = str(folder / f"{role}.pem"), str(folder / f"{role}-key.pem")
    return Security(require_encryption=True, tls_ca_file=str(folder / "ca.pem"), **files)


def connect(address: str, assignment: Assignment, security: Security | None = None,
            connect_timeout: float = CONNECT_TIMEOUT, worker_wait: float = WORKER_WAIT) -> Cluster:
    """A client of the scheduler at ``address``, ready to grade ``assignment``. ClusterError
    (before anything is graded or written) if no scheduler answers within ``connect_timeout``
    seconds, no worker joins within ``worker_wait``, or a worker's memory limit is too small.
    ``security``: see :func:`client_security` (None: a plain scheduler)."""
    plugin = AssignmentPlugin(make_bundle(assignment), assignment.id)
    try:
        # the Client's own timeout does not bound a peer that accepts and stays silent
        asyncio.run(asyncio.wait_for(_handshake(address, connect_timeout, security), connect_timeout))
        client = Client(address, timeout=connect_timeout, set_as_default=False, security=security)
    except (OSError, TimeoutError, ValueError) as exc:
        error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if security is not None and _tls_refused(exc):
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


def _tls_refused(exc: BaseException) -> bool:
    """Whether connecting failed in the TLS handshake (a certificate refused by either side)."""
    while exc is not None:
        if isinstance(exc, (ssl.SSLError, distributed.comm.core.FatalCommClosedError)) or "SSL" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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


# --- the assignment bundle: a course of one assignment, from the client --------------------------------

def make_bundle(assignment: Assignment) -> bytes:
    """The assignment as a course of one assignment (its graders and reference included), as a zip
    (the same bytes for the same files), with the mlgrade version it was made with."""
    manifest = {"assignment": assignment.id, "mlgrade": importlib.metadata.version("mlgrade")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(BUNDLE_MANIFEST, (1980, 1, 1, 0, 0, 0)), json.dumps(manifest, sort_keys=True))
        for name, path in assignment.shipped_files(hidden=True):
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), path.read_bytes())
    data = buffer.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        raise ClusterError(f"the course files of {assignment.id} exceed {MAX_BUNDLE_BYTES >> 20} MB")
    return data


def _private_dir(path: Path) -> Path:
    """``path`` as a folder of ours alone (made 0700; refused if it is a link or someone else's)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{path} is not a private folder of this user: refused")
    return path


def _extract_bundle(bundle: bytes, target: Path) -> None:
    """Unpack into ``target`` (made here, atomically): regular files only, nothing outside it,
    within the entry and size limits."""
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_BUNDLE_ENTRIES:
                raise RuntimeError(f"the assignment bundle has more than {MAX_BUNDLE_ENTRIES} entries")
            used = 0
            for info in infos:
                parts = Path(info.filename).parts
                if info.filename == BUNDLE_MANIFEST:
                    continue
                if info.filename.startswith("/") or ".." in parts or not parts:
                    raise RuntimeError(MSG_BAD_BUNDLE.format(name=info.filename[:200], why="outside the bundle's folder"))
                if stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG) or info.is_dir():
                    raise RuntimeError(MSG_BAD_BUNDLE.format(name=info.filename[:200], why="not a regular file"))
                data = zf.read(info)
                used += len(data)
                if used > MAX_BUNDLE_BYTES:
                    raise RuntimeError(f"the assignment bundle expands to more than {MAX_BUNDLE_BYTES >> 20} MB")
                dest = scratch.joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        try:
            os.rename(scratch, target)
        except OSError:  # another worker of this host unpacked the same bundle first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
        base = _private_dir(Path(tempfile.gettempdir()) / f"mlgrade-cluster-{os.geteuid()}")
        target = base / digest[:32]
        if not target.is_dir():
            _extract_bundle(bundle, target)
        assignment = open_course(target).get(assignment_id)
        if manifest.get("assignment") != assignment_id:
            raise RuntimeError(f"the bundle is for {manifest.get('assignment')!r}, not {assignment_id!r}")
        if manifest.get("mlgrade") != importlib.metadata.version("mlgrade"):
            raise RuntimeError(MSG_ENGINE_MISMATCH.format(what=f"mlgrade {importlib.metadata.version('mlgrade')}"))
        _ASSIGNMENTS[digest] = assignment
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

    folder = _private_dir(Path(tempfile.gettempdir()) / "mlgrade-dask-slots")
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
    accepted = {name for spec in assignment.files for name in spec.accept}
    for name, data in files.items():
        if not isinstance(name, str) or name not in accepted:
            raise ValueError(MSG_BAD_FILE.format(name=str(name)[:100], why="not a file of the contract"))
        limit = MAX_SOURCE_BYTES.get(Path(name).suffix, MAX_SOURCE_BYTES[".py"])
        if not isinstance(data, bytes) or len(data) > limit:
            raise ValueError(MSG_BAD_FILE.format(name=name, why=f"not bytes of at most {limit >> 20} MB"))
        (folder / name).write_bytes(data)


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
