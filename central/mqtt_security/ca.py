"""The project's own certificate authority for the MQTT broker, under <data_dir>/mqtt/ (directory 0700).

Agents verify the broker against this CA (site.toml `mqtt.tls.ca_file`), so the broker needs no public
certificate and no internet. Keys are EC P-256 (ECDSA): every TLS stack the sites may meet accepts it, which
is not yet true of Ed25519 certificates. Private keys are PKCS8 PEM files with mode 0600.

The CA is made once and never replaced by a re-run: every Pi trusts it, so a new CA means visiting every
site. The server certificate is short-lived by comparison and renewed on request (`--renew-server`), with a
new key; mosquitto reloads certificate and key on SIGHUP.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MQTT_DIR = "mqtt"
CA_KEY, CA_CERT = "ca.key", "ca.pem"
SERVER_KEY, SERVER_CERT = "server.key", "server.pem"
CA_VALID = timedelta(days=20 * 365)  # replacing the CA means touching every site
SERVER_VALID = timedelta(days=825)  # renew with --renew-server before it runs out
BACKDATE = timedelta(minutes=5)  # tolerate a client clock a little behind
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


class CertificateError(ValueError):
    """The CA directory cannot be used as asked; the message says what to do."""


@dataclass(frozen=True)
class CaReport:
    """What `make_ca` found or made, for the command's output."""

    directory: Path
    ca_created: bool
    server_issued: bool
    server_names: tuple[str, ...]
    server_expires: datetime

    def summary(self) -> str:
        ca = "made a new CA" if self.ca_created else "the CA exists already and was kept (agents trust it)"
        server = "issued" if self.server_issued else "kept (renew with --renew-server)"
        return "\n".join(
            [
                f"{self.directory / CA_CERT}: {ca}",
                f"{self.directory / SERVER_CERT}: server certificate {server}, for "
                f"{', '.join(self.server_names)}, valid until {self.server_expires:%Y-%m-%d}",
            ]
        )


def mqtt_dir(data_dir: Path) -> Path:
    return Path(data_dir) / MQTT_DIR


def make_ca(
    directory: Path, names: Sequence[str] = (), *, renew_server: bool = False, now: datetime | None = None
) -> CaReport:
    """Make the CA if there is none, and a server certificate if there is none or `renew_server`.

    `names` are the broker's DNS names and IP addresses as agents connect to it; a renewal without names
    keeps those of the certificate it replaces.
    """
    now = now or datetime.now(UTC)
    names = _normalised(names)  # refuses a bad name before anything is written
    server_path = directory / SERVER_CERT
    current = x509.load_pem_x509_certificate(server_path.read_bytes()) if server_path.exists() else None
    if current is not None and not renew_server and names and set(names) != set(certificate_names(current)):
        raise CertificateError(
            f"the server certificate is for {', '.join(certificate_names(current))}; "
            "add --renew-server to issue one for the names given"
        )
    if not names:
        if current is None:
            raise CertificateError("name the broker as agents reach it: --name mqtt.example.org (or an IP)")
        names = certificate_names(current)
    _private_dir(directory)
    ca_created = _ensure_ca(directory, now)
    ca_key, ca_cert = load_ca(directory)
    if current is not None and not renew_server and not ca_created:
        return CaReport(directory, ca_created, False, certificate_names(current), current.not_valid_after_utc)
    cert = _issue_server(directory, ca_key, ca_cert, names, now)
    return CaReport(directory, ca_created, True, certificate_names(cert), cert.not_valid_after_utc)


def load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    if not cert_path.exists():
        raise CertificateError(f"no CA in {directory}: run `meraapent central mqtt-ca --name <broker>` first")
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{key_path} is not an EC private key; restore the CA from backup")
    return key, x509.load_pem_x509_certificate(cert_path.read_bytes())


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and IP addresses a certificate is valid for, as text."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return (*dns, *ips)


# --- making ---------------------------------------------------------------------------------------------


def _ensure_ca(directory: Path, now: datetime) -> bool:
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    if key_path.exists() and cert_path.exists():
        return False
    if key_path.exists() or cert_path.exists():
        raise CertificateError(
            f"{directory} holds only half a CA ({CA_KEY} or {CA_CERT} is missing); restore both from backup"
            " (or remove both to start a new CA, then reinstall its certificate on every site)"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meraapent"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"meraapent MQTT CA {now:%Y-%m-%d}"),
        ]
    )
    cert = (
        _builder(name, name, key.public_key(), now, CA_VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)  # the key first: a cert without its key is the state refused above
    _write_public(cert_path, cert)
    return True


def _issue_server(
    directory: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: Sequence[str],
    now: datetime,
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), now, SERVER_VALID)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(directory / SERVER_KEY, key)
    _write_public(directory / SERVER_CERT, cert)
    return cert


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    valid: timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + valid)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _normalised(names: Sequence[str]) -> tuple[str, ...]:
    """Names as the certificate will show them (lower case, IPs in canonical form), duplicates dropped."""
    result: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        try:
            name = str(ipaddress.ip_address(name))
        except ValueError:
            if not _DNS_NAME.match(name):
                raise CertificateError(f"{raw!r} is neither a DNS name nor an IP address") from None
        if name not in result:
            result.append(name)
    return tuple(result)


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general


# --- files ----------------------------------------------------------------------------------------------


def _private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        directory.chmod(0o700)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    _atomic_write(path, pem, 0o600)


def _write_public(path: Path, cert: x509.Certificate) -> None:
    _atomic_write(path, cert.public_bytes(Encoding.PEM), 0o644)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write beside the target and rename over it, so a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
