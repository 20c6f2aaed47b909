"""What `meraapent central mqtt-config --out DIR` writes: everything the broker and the installers need.

    DIR/broker/meraapent.conf   mosquitto settings: TLS listener, no anonymous clients, password and ACL files
    DIR/broker/passwd           one PBKDF2 hash per user (central and every site agent)
    DIR/broker/acl              per-site ACLs (central.mqtt_security.acl)
    DIR/broker/ca.pem, server.pem, server.key   copied from <data_dir>/mqtt/ (`mqtt-ca`)
    DIR/agents/<site>.password  the site agent's password, for its site.toml `mqtt.password_file` (0600)
    DIR/agents/ca.pem           the CA agents verify the broker with (`mqtt.tls.ca_file`)

Central's own password stays in central's data directory. A re-run keeps every password: a site's password
file, when still there, is what its installer copied, so it wins over a hash that does not match it; without
the file the hash is kept. `rotate` gives the named sites new passwords. Sites no longer in the database lose
their broker user. Only `broker/` goes to the broker machine; `agents/` goes to the sites, one file each.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from central.config import MQTT_PASSWORD_FILE
from central.mqtt_security import acl, passwords
from central.mqtt_security.ca import CA_CERT, SERVER_CERT, SERVER_KEY, load_ca

CONF_NAME = "meraapent.conf"
CENTRAL_PASSWORD_FILE = MQTT_PASSWORD_FILE  # in central's secrets directory, where its settings look
DEFAULT_PORT = 8883


class BundleError(ValueError):
    """The bundle cannot be written as asked; the message says why."""


@dataclass(frozen=True)
class BundlePaths:
    out: Path

    @property
    def broker(self) -> Path:
        return self.out / "broker"

    @property
    def agents(self) -> Path:
        return self.out / "agents"

    @property
    def conf(self) -> Path:
        return self.broker / CONF_NAME

    @property
    def passwd(self) -> Path:
        return self.broker / "passwd"

    @property
    def acl(self) -> Path:
        return self.broker / "acl"

    def agent_password(self, site: str) -> Path:
        return self.agents / f"{site}.password"


@dataclass(frozen=True)
class BrokerOptions:
    """Where the broker listens and where the files of `broker/` will be on the broker machine."""

    port: int = DEFAULT_PORT
    bind: str = ""  # empty: every interface
    broker_dir: Path | None = None  # None: DIR/broker itself (a broker on this machine)


@dataclass(frozen=True)
class BundleReport:
    paths: BundlePaths
    sites: tuple[str, ...]
    new_passwords: tuple[str, ...]  # users whose password changed in this run
    removed_users: tuple[str, ...]
    central_user: str
    central_password_file: Path

    def summary(self) -> str:
        changed = ", ".join(self.new_passwords) or "none (all kept)"
        lines = [
            f"Broker files in {self.paths.broker}: {CONF_NAME}, passwd, acl, ca.pem, server.pem, server.key",
            f"{len(self.sites)} site(s): broker users site-<slug>, "
            f"passwords in {self.paths.agents}/<slug>.password",
            f"Central's broker user {self.central_user!r}, password in {self.central_password_file}",
            f"New or changed passwords: {changed}",
        ]
        if self.removed_users:
            lines.append(f"Removed (no longer sites): {', '.join(self.removed_users)}")
        lines += [
            f"Broker: install broker/ as {CONF_NAME} says, then `systemctl reload mosquitto`.",
            "Each site: its agents/<slug>.password as site.toml mqtt.password_file (0600), agents/ca.pem as "
            "mqtt.tls.ca_file, mqtt.username = site-<slug>.",
        ]
        return "\n".join(lines)


def write_bundle(
    out: Path,
    sites: Iterable[str],
    *,
    ca_dir: Path,
    central_user: str,
    central_password_file: Path,
    options: BrokerOptions = BrokerOptions(),
    rotate: Collection[str] = (),
    rotate_central: bool = False,
) -> BundleReport:
    """Write (or update) the broker's files and the sites' passwords under `out`."""
    site_list = tuple(sorted(set(sites)))
    users = {acl.agent_username(site): site for site in site_list}  # validates every slug
    acl.check_central_user(central_user)
    unknown = set(rotate) - set(site_list)
    if unknown:
        raise BundleError(f"cannot rotate {', '.join(sorted(unknown))}: not a site in central's database")
    load_ca(ca_dir)  # a clear error before anything is written when `mqtt-ca` has not run
    paths = BundlePaths(out.resolve())
    old = passwords.read_hashes(paths.passwd)
    plain: dict[str, str] = {}  # user -> password to hash in this run
    files: dict[Path, str] = {}  # password files to (re)write
    for user, site in users.items():
        _agent_password(user, paths.agent_password(site), old.get(user), site in rotate, plain, files)
    old_central = old.get(central_user)
    _central_password(central_user, central_password_file, old_central, rotate_central, plain, files)
    hashes = {user: old[user] for user in [*users, central_user] if user in old}
    hashes.update(passwords.hash_passwords(plain))
    for path, password in files.items():  # before the hashes: a crash in between is repaired by a re-run
        passwords.write_private_text(path, password + "\n")
    _write_broker_files(paths, ca_dir, options, hashes, site_list, central_user)
    removed = tuple(sorted(set(old) - set(hashes)))
    return BundleReport(paths, site_list, tuple(sorted(plain)), removed, central_user, central_password_file)


def _agent_password(
    user: str, path: Path, old_hash: str | None, rotate: bool, plain: dict[str, str], files: dict[Path, str]
) -> None:
    current = passwords.read_password(path)
    if rotate or (current is None and old_hash is None):
        plain[user] = files[path] = passwords.new_password()
    elif current is not None and (old_hash is None or not passwords.verify(current, old_hash)):
        plain[user] = current  # the file is what the installer copies: it wins over a stale hash


def _central_password(
    user: str, path: Path, old_hash: str | None, rotate: bool, plain: dict[str, str], files: dict[Path, str]
) -> None:
    current = passwords.read_password(path)
    if rotate or current is None:
        plain[user] = files[path] = passwords.new_password()
    elif old_hash is None or not passwords.verify(current, old_hash):
        plain[user] = current


def _write_broker_files(
    paths: BundlePaths,
    ca_dir: Path,
    options: BrokerOptions,
    hashes: dict[str, str],
    sites: tuple[str, ...],
    central_user: str,
) -> None:
    paths.broker.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.agents.mkdir(mode=0o700, parents=True, exist_ok=True)
    passwords.write_private_text(paths.passwd, passwords.passwd_text(hashes))
    passwords.write_private_text(paths.acl, acl.acl_text(sites, central_user))
    passwords.write_private_text(paths.broker / SERVER_KEY, (ca_dir / SERVER_KEY).read_text())
    for target in (paths.broker / CA_CERT, paths.agents / CA_CERT):
        shutil.copyfile(ca_dir / CA_CERT, target)
    shutil.copyfile(ca_dir / SERVER_CERT, paths.broker / SERVER_CERT)
    broker_dir = options.broker_dir or paths.broker
    paths.conf.write_text(mosquitto_conf(broker_dir, options.port, options.bind))


def mosquitto_conf(broker_dir: Path, port: int = DEFAULT_PORT, bind: str = "") -> str:
    """The mosquitto settings for a production broker; Debian's mosquitto.conf includes it from conf.d/
    (it sets persistence, its location and the log file itself)."""
    where = f"{port} {bind}".strip()
    return f"""\
# Generated by `meraapent central mqtt-config`; re-run it after adding or removing a site, then reload
# mosquitto (systemctl reload mosquitto: password and ACL files, certificate and key are re-read).
# Install as /etc/mosquitto/conf.d/{CONF_NAME}, with the files it names in
#     {broker_dir}
# owned by root:mosquitto, directory 0750, files 0640: mosquitto reads them as user mosquitto.

per_listener_settings false
# Every client names a user from the password file; the ACL confines each site agent to its own topics.
allow_anonymous false
password_file {broker_dir}/passwd
acl_file {broker_dir}/acl

# Without TCP_NODELAY a request/response round trip costs 40-90 ms (Nagle + delayed ACK); with it < 1 ms.
set_tcp_nodelay true
# QoS 1 messages kept for a client while it is away: agents' events wait here for central. Never drop them;
# size the broker's memory for it (about 1 kB per queued event).
max_queued_messages 1000000
max_queued_bytes 0

# TLS only: there is no plain listener. Agents authenticate with their password, not a client certificate.
listener {where}
cafile {broker_dir}/{CA_CERT}
certfile {broker_dir}/{SERVER_CERT}
keyfile {broker_dir}/{SERVER_KEY}
tls_version tlsv1.2
require_certificate false
# A client's session is its user's (one agent per site): another user cannot take it over, nor kick the
# client off, by connecting with the same client id. A listener option: it must follow `listener`.
use_username_as_clientid true
"""
