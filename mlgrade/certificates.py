"""``mlgrade certificates FOLDER``: a CA and the certificates of a small grading cluster.

Dask authenticates every connection of a ``tls://`` cluster with certificates signed by the
cluster's own CA (``distributed.security.Security``: both ends present one, both check it;
hostnames are not checked, the CA is the cluster's alone). This writes, with ``cryptography``:

- ``ca.pem``: the CA's certificate, for every host; its private key is never written, so
  nobody can sign another certificate for this cluster (to add a role or rotate: a new set);
- ``scheduler.pem``/``scheduler-key.pem`` and ``worker.pem``/``worker-key.pem``: server and
  client certificates (a scheduler and a worker both listen and connect);
- ``client.pem``/``client-key.pem``: marked for client use only (``mlgrade grade``).

Keys are ECDSA P-256 and written 0600. Dask does not tell roles apart: whoever holds any key
of the set and ``ca.pem`` is trusted by the cluster in any role (a client's key can join as a
worker), so each key goes to the hosts of its role and nowhere else; one per role keeps the
files a host holds to what it needs.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ROLES", "write_certificates"]

# role -> what its certificate may do: a client never listens
ROLES = {
    "scheduler": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "worker": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
}
MSG_EXISTS = "{path} exists: refusing to overwrite a cluster's certificates (remove the folder's files first)"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlgrade grading cluster"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_certificates(folder: Path, days: int = 365, cluster_name: str = "mlgrade") -> dict[str, Path]:
    """Write ``ca.pem`` and a certificate and key per role of :data:`ROLES` into ``folder``
    (created 0700); returns {file stem: path}. FileExistsError if any of them exists."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = {"ca": folder / "ca.pem"}
    for role in ROLES:
        paths[role], paths[f"{role}-key"] = folder / f"{role}.pem", folder / f"{role}-key.pem"
    for path in paths.values():
        if path.exists():
            raise FileExistsError(MSG_EXISTS.format(path=path))
    now = datetime.datetime.now(datetime.timezone.utc)
    # valid from an hour ago: hosts whose clocks differ a little still agree
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{cluster_name} cluster CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    _write(paths["ca"], _pem(ca), 0o644)
    for role, usages in ROLES.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(f"{cluster_name} {role}")).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write(paths[f"{role}-key"], _key_pem(key), 0o600)
        _write(paths[role], _pem(cert), 0o644)
    return paths
