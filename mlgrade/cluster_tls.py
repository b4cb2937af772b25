"""How ``mlgrade grade --scheduler`` may connect: mutual TLS, or plain TCP on the loopback only.

The client side of the cluster's security (Dask's ``distributed.Security``): the files given or
Dask's config for a ``tls://`` scheduler, a refusal saying why and how for a plain one that is
not on this machine, and how to recognise a refused handshake.
"""
from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import distributed
import distributed.comm
from distributed import Security

__all__ = ["ClusterError", "client_security", "folder_security", "on_loopback", "tls_refused", "MSG_TLS_REFUSED"]


class ClusterError(RuntimeError):
    """The cluster cannot grade at all (no scheduler, no worker, limits that disagree)."""


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


def on_loopback(address: str) -> bool:
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
        if not allow_plain_tcp and not on_loopback(address):
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


def tls_refused(exc: BaseException) -> bool:
    """Whether connecting failed in the TLS handshake (a certificate refused by either side)."""
    while exc is not None:
        if isinstance(exc, (ssl.SSLError, distributed.comm.core.FatalCommClosedError)) or "SSL" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
