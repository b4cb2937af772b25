"""Who may talk to a grading cluster: `mlgrade certificates`, the address policy of
`mlgrade grade --scheduler`, and, on the loopback, a TLS LocalCluster that refuses a rogue
client and a rogue worker (no certificate, plain TCP, another CA's certificate) and runs
nothing but gradings for a certificate holder (whom the cluster trusts in any role).
The class graded over TLS byte for byte as by the local pool, and the killed-worker and
timeout tests over TLS, are in tests/test_cluster.py (its clusters are TLS ones)."""
from __future__ import annotations

import gc
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import pytest

distributed = pytest.importorskip("distributed")

from cryptography import x509  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: E402
from distributed import Security, WorkerPlugin  # noqa: E402
from distributed.comm.core import CommClosedError, FatalCommClosedError  # noqa: E402

from mlgrade import cluster  # noqa: E402
from mlgrade.batch import grade_class  # noqa: E402
from mlgrade.certificates import write_certificates  # noqa: E402
from mlgrade.cluster import ClusterError, client_security, connect, folder_security, local_cluster  # noqa: E402
from test_batch import A, REF, TEMPLATE_NB, read_scores  # noqa: E402

MLGRADE = [sys.executable, "-m", "mlgrade.cli"]
ROLES = ("scheduler", "worker", "client")
# no TLS settings from the environment of whoever runs the tests
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("DASK_DISTRIBUTED__COMM__")}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """This cluster's certificates, and another cluster's (another CA)."""
    base = tmp_path_factory.mktemp("tls")
    write_certificates(base / "ours", days=1)
    write_certificates(base / "theirs", days=1)
    return base / "ours", base / "theirs"


@pytest.fixture(scope="module")
def tls_cluster(certs):
    ours, _ = certs
    with local_cluster(1, security=folder_security(ours)) as lc:
        yield lc


def _client_files(folder) -> list[str]:
    return ["--tls-ca-file", str(folder / "ca.pem"), "--tls-cert", str(folder / "client.pem"),
            "--tls-key", str(folder / "client-key.pem")]


def _one_student(tmp_path):
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    shutil.copy(TEMPLATE_NB, tmp_path / "subs" / "bob" / "hw6.ipynb")
    return tmp_path / "subs"


# --- mlgrade certificates ---------------------------------------------------------------------------

def test_certificates_makes_a_ca_and_a_certificate_per_role_and_keeps_no_ca_key(tmp_path):
    run = subprocess.run([*MLGRADE, "certificates", str(tmp_path / "tls"), "--days", "30"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    folder = tmp_path / "tls"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["ca.pem", *(f"{r}.pem" for r in ROLES), *(f"{r}-key.pem" for r in ROLES)])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for role in ROLES:
        assert stat.S_IMODE((folder / f"{role}-key.pem").stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for role in ROLES:
        cert = x509.load_pem_x509_certificate((folder / f"{role}.pem").read_bytes())
        cert.verify_directly_issued_by(ca)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
        assert days == 30  # from an hour ago, 30 days on: 30 days and an hour
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert (ExtendedKeyUsageOID.SERVER_AUTH in usages) == (role != "client"), role  # marked for client use only
    assert "the CA's key was not kept" in " ".join(run.stdout.split())


def test_certificates_never_overwrites_a_clusters_files(tmp_path):
    write_certificates(tmp_path / "tls")
    before = (tmp_path / "tls" / "ca.pem").read_bytes()
    run = subprocess.run([*MLGRADE, "certificates", str(tmp_path / "tls")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    said = (f"mlgrade: {tmp_path / 'tls' / 'ca.pem'} exists: refusing to overwrite a cluster's certificates "
            f"(remove the folder's files first)")
    assert "".join(run.stdout.split()) == "".join(said.split())  # the terminal folds a path longer than a line
    assert (tmp_path / "tls" / "ca.pem").read_bytes() == before


# --- the address policy ----------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tcp://localhost:8786", "tcp://[::1]:8786",
                                     "127.0.0.2:8786", "inproc://10.0.0.1/1/1"])
def test_a_plain_scheduler_on_the_loopback_needs_no_tls(address):
    assert client_security(address) is None


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "tcp://scheduler.example.edu:8786", "10.1.2.3:8786",
                                     "ws://192.168.1.10:8786"])
def test_a_plain_scheduler_off_the_loopback_is_refused_unless_the_instructor_says_so(address):
    scheme = "ws" if address.startswith("ws") else "tcp"
    with pytest.raises(ClusterError, match=re.escape(
            f"refusing the plain {scheme}:// scheduler {address}: it is not on the loopback, and without TLS anyone "
            "who can reach its port can run any code on the workers (as their user, root), receive the hidden graders "
            "and the reference with every submission, and return forged grades. Set up TLS: `mlgrade certificates")):
        client_security(address)
    assert client_security(address, allow_plain_tcp=True) is None


def test_a_tls_scheduler_needs_the_ca_the_certificate_and_the_key(certs, monkeypatch):
    ours, _ = certs
    with pytest.raises(ClusterError, match=re.escape(
            "the tls:// scheduler tls://10.0.0.5:8786 needs the cluster's CA and this client's certificate and key; "
            "missing: client certificate, client key (give --tls-ca-file, --tls-cert and --tls-key, or set Dask's "
            "config")):
        client_security("tls://10.0.0.5:8786", ca_file=str(ours / "ca.pem"))
    with pytest.raises(ClusterError, match=re.escape(f"the client key {ours / 'nothing.pem'} cannot be read")):
        client_security("tls://10.0.0.5:8786", str(ours / "ca.pem"), str(ours / "client.pem"), str(ours / "nothing.pem"))
    with pytest.raises(ClusterError, match=re.escape(
            "TLS files were given but the scheduler address tcp://127.0.0.1:8786 is not tls://: use tls://HOST:PORT")):
        client_security("tcp://127.0.0.1:8786", ca_file=str(ours / "ca.pem"))
    security = client_security("tls://10.0.0.5:8786", str(ours / "ca.pem"), str(ours / "client.pem"),
                               str(ours / "client-key.pem"))
    assert (security.require_encryption, security.tls_client_cert) == (True, str(ours / "client.pem"))


def test_a_tls_scheduler_takes_the_files_from_dasks_config_environment(certs):
    ours, _ = certs
    code = ("from mlgrade.cluster import client_security; s = client_security('tls://10.0.0.5:8786'); "
            "print(s.tls_ca_file, s.tls_client_cert, s.tls_client_key, s.require_encryption)")
    env = {**CLEAN_ENV, "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(ours / "ca.pem"),
           "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(ours / "client.pem"),
           "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(ours / "client-key.pem")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert run.stdout.split() == [str(ours / "ca.pem"), str(ours / "client.pem"), str(ours / "client-key.pem"), "True"], \
        run.stderr


def test_the_cli_refuses_plain_tcp_off_the_loopback_before_connecting_or_writing(tmp_path):
    subs = _one_student(tmp_path)
    start = time.monotonic()
    # 192.0.2.1 (TEST-NET-1) is never contacted: the address is refused first
    run = subprocess.run([*MLGRADE, "grade", "ml-hw6", str(subs), "-o", str(tmp_path / "out"),
                          "--scheduler", "tcp://192.0.2.1:8786"], capture_output=True, text=True, timeout=120,
                         env=CLEAN_ENV)
    assert run.returncode == 2, run.stdout + run.stderr
    said = " ".join(run.stdout.split())
    assert said.startswith("mlgrade: refusing the plain tcp:// scheduler tcp://192.0.2.1:8786: it is not on the "
                           "loopback"), said
    assert said.endswith("Only on a private network you trust: --unsafe-plain-tcp"), said
    assert time.monotonic() - start < 30 and not (tmp_path / "out").exists()
    helped = subprocess.run([*MLGRADE, "grade", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--unsafe-plain-tcp" in helped and "forged grades" in " ".join(helped.split())


# --- a rogue client -------------------------------------------------------------------------------

def _dask_refuses(error, match: str, address: str, **kwargs) -> None:
    """Dask's own Client fails to connect with ``error``. The half-made client is collected here:
    left to the garbage collector, its __del__ can run while the next Client starts the shared
    event loop, and closing it there waits on the lock that start holds (a deadlock)."""
    with pytest.raises(error, match=match):
        distributed.Client(address, timeout=5, set_as_default=False, **kwargs)
    gc.collect()


def test_a_client_without_the_clusters_certificate_cannot_connect(tls_cluster, certs, tmp_path):
    address = tls_cluster.scheduler_address
    _, theirs = certs
    subs = _one_student(tmp_path)
    # through mlgrade: no certificate at all, then another CA's
    run = subprocess.run([*MLGRADE, "grade", "ml-hw6", str(subs), "-o", str(tmp_path / "out"), "--scheduler", address],
                         capture_output=True, text=True, timeout=120, env=CLEAN_ENV)
    assert run.returncode == 2
    assert " ".join(run.stdout.split()).startswith(f"mlgrade: the tls:// scheduler {address} needs the cluster's CA "
                                                   "and this client's certificate and key; missing: CA certificate, "
                                                   "client certificate, client key")
    run = subprocess.run([*MLGRADE, "grade", "ml-hw6", str(subs), "-o", str(tmp_path / "out"), "--scheduler", address,
                          *_client_files(theirs)], capture_output=True, text=True, timeout=120, env=CLEAN_ENV)
    assert run.returncode == 2
    assert re.fullmatch(re.escape(f"mlgrade: the TLS handshake with the scheduler at {address} failed (") + r".+" +
                        re.escape("): the scheduler refused this client's certificate or presented one the given CA "
                                  "did not sign; use the ca.pem and client.pem made for this cluster by "
                                  "`mlgrade certificates`"), " ".join(run.stdout.split())), run.stdout
    assert not (tmp_path / "out").exists()
    # through Dask itself: no TLS, plain TCP to the TLS port, another CA's certificate
    _dask_refuses(TypeError, "TLS expects a `ssl_context` argument of type ssl.SSLContext", address)
    _dask_refuses(CommClosedError, "Connection reset by peer", address.replace("tls://", "tcp://"))
    _dask_refuses(FatalCommClosedError, "TLS certificate does not match", address,
                  security=folder_security(theirs, ["client"]))
    # their certificate, our CA (it trusts the scheduler): the scheduler still refuses the certificate
    mixed = Security(require_encryption=True, tls_ca_file=str(certs[0] / "ca.pem"),
                     tls_client_cert=str(theirs / "client.pem"), tls_client_key=str(theirs / "client-key.pem"))
    _dask_refuses(OSError, "TLSV1_ALERT_UNKNOWN_CA|EOF occurred in violation of protocol", address, security=mixed)
    assert not [k for k in tls_cluster.scheduler.tasks if not str(k).startswith("mlgrade-")]  # nothing was submitted


class StrayPlugin(WorkerPlugin):
    def setup(self, worker):
        raise AssertionError("a stray plugin ran on a grading worker")


def test_a_certificate_holder_runs_gradings_only(tls_cluster, certs):
    ours, _ = certs
    refused = "this mlgrade worker runs only mlgrade's grading tasks: {} refused (the cluster is for grading; " \
              "see mlgrade.cluster)"
    with distributed.Client(tls_cluster.scheduler_address, security=folder_security(ours, ["client"]),
                            set_as_default=False, timeout=10) as client:
        with pytest.raises(PermissionError, match=re.escape(refused.format("Client.run"))):
            client.run(os.getpid)
        with pytest.raises(PermissionError, match=re.escape(refused.format("the task 'getpid'"))):
            client.submit(os.getpid, pure=False).result(timeout=60)
        try:
            with pytest.raises(PermissionError, match=re.escape(refused.format("the worker plugin 'StrayPlugin'"))):
                client.register_plugin(StrayPlugin(), name="stray")
        finally:  # the scheduler keeps it for workers to come: gone, so later tests see a clean cluster
            tls_cluster.scheduler.worker_plugins.pop("stray", None)


# --- a rogue worker ---------------------------------------------------------------------------------

def _rogue_worker(address: str, tmp_path, name: str, files: list[str]) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--name", name, "--nthreads", "1",
                             "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "20", *files],
                            stdout=log, stderr=subprocess.STDOUT, env=CLEAN_ENV, cwd=tmp_path)


def test_a_worker_without_the_clusters_certificate_never_joins_or_receives_a_bundle(tls_cluster, certs, tmp_path,
                                                                                   caplog):
    ours, theirs = certs
    address = tls_cluster.scheduler_address
    rogues = {
        "no-tls": _rogue_worker(address, tmp_path, "no-tls", []),
        "plain-tcp": _rogue_worker(address.replace("tls://", "tcp://"), tmp_path, "plain-tcp", []),
        "other-ca": _rogue_worker(address, tmp_path, "other-ca", [
            "--tls-ca-file", str(theirs / "ca.pem"), "--tls-cert", str(theirs / "worker.pem"),
            "--tls-key", str(theirs / "worker-key.pem")]),
    }
    try:
        subs = _one_student(tmp_path)
        time.sleep(5)  # the rogues are trying to join while the assignment is registered and graded
        with connect(address, A, folder_security(ours, ["client"])) as grader:
            summary = grade_class(A, subs, tmp_path / "out", timeout=600, progress=False, run=grader.run)
            workers = {info["name"] for info in grader.client.scheduler_info(n_workers=-1)["workers"].values()}
        assert summary.graded == 1 and read_scores(tmp_path / "out" / "scores.csv")["bob"]["total"] == "0"
        assert not set(rogues) & {str(w) for w in workers}, workers
    finally:
        for proc in rogues.values():
            proc.kill()
            proc.wait()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in rogues}
    for name, log in logs.items():  # never registered, so never sent a plugin (the bundle travels in one)
        assert "Registered to" not in log and "Starting Worker plugin" not in log, (name, log)
    assert "TypeError: TLS expects a `ssl_context` argument of type ssl.SSLContext" in logs["no-tls"], logs["no-tls"]
    # the scheduler refused the other two in the TLS handshake
    refused = [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert any("[SSL: WRONG_VERSION_NUMBER]" in m for m in refused), refused  # plain TCP
    assert any("[SSL: TLSV1_ALERT_UNKNOWN_CA]" in m for m in refused), refused  # another CA's certificate
