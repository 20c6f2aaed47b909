"""`meraapent central ...`: run central's database chores from the shell.

Every command takes its settings from the environment (MERAAPENT_*) with --db / --data-dir overrides via
`_settings`, and turns expected failures into one line on stderr and exit code 1 via `cli_errors`.
New commands (e.g. `serve`) should use both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from central.config import ConfigError, Settings, load_settings
from central.db import DatabaseUrlError, SchemaOutOfDateError, migrate
from central.schedules import ScheduleError
from central.security import CardUidError, PinFormatError
from central.seed import run_seed

app = typer.Typer(no_args_is_help=True, help="Central authorisation service: database and data.")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: MERAAPENT_DB_URL or SQLite in the data dir)."),
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default: MERAAPENT_DATA_DIR or ./var).")
]


def _settings(db: str | None = None, data_dir: Path | None = None) -> Settings:
    """Settings from the environment with the command-line overrides applied."""
    return load_settings(db_url=db, data_dir=data_dir)


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def cli_errors(db_url: str | None = None) -> Iterator[None]:
    """Turn expected failures into one clear line on stderr and exit code 1 (no stack trace)."""
    try:
        yield
    except (
        ConfigError,
        DatabaseUrlError,
        SchemaOutOfDateError,
        ScheduleError,
        PinFormatError,
        CardUidError,
    ) as exc:
        _fail(str(exc))
    except DBAPIError as exc:
        where = f" at {_safe_url(db_url)}" if db_url else ""
        _fail(f"database error{where}: {_first_line(exc)}")
    except SQLAlchemyError as exc:
        _fail(f"database error: {_first_line(exc)}")
    except OSError as exc:
        _fail(f"cannot use {exc.filename or 'file'}: {exc.strerror or exc}")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command("migrate")
def migrate_command(db: DbOption = None) -> None:
    """Create or upgrade the database schema to the newest version (safe to run again)."""
    with cli_errors():
        settings = _settings(db)
    with cli_errors(settings.db_url):
        migrate(settings.db_url)
        typer.echo(f"Database is up to date: {_safe_url(settings.db_url)}")


@app.command("seed")
def seed_command(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Add the Asker demo data (sites, doors, people, demo cards with PIN 1234, bookings). Idempotent."""
    with cli_errors():
        settings = _settings(db, data_dir)
    with cli_errors(settings.db_url):
        report = run_seed(settings)
        typer.echo(report.summary())
        if report.admin_token_path is not None:
            typer.echo(f"Admin API token written to {report.admin_token_path} (readable by you only).")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 8000,
    db: DbOption = None,
    data_dir: DataDirOption = None,
    no_gateway: Annotated[
        bool, typer.Option("--no-gateway", help="Run without the MQTT gateway (commands then answer 503).")
    ] = False,
    feed_poll_seconds: Annotated[
        float,
        typer.Option(min=5, envvar="MERAAPENT_FEED_POLL_SECONDS", help="How often to read booking feeds."),
    ] = 300,
) -> None:
    """Run the REST API (OpenAPI docs at /docs), the MQTT gateway, the booking feed poller, the no-show
    sweep, the hourly retention sweep, the alarm notifier (agent watch, e-mail and webhook to the caretaker
    on call) and (with MERAAPENT_BOOKING_WEBHOOK_URL) the webhook sender until Ctrl-C.

    Run `meraapent central migrate` first: a server never changes the schema behind an operator's back.
    """
    import uvicorn

    from central.api import create_app
    from central.checkin import checkin_rules
    from central.db import ensure_migrated, make_engine
    from central.feeds.poller import start_for_app
    from central.noshow import NoShowSweeper
    from central.notify.job import start_for_settings as start_notifier
    from central.retention_sweeper import RetentionSweeper
    from central.webhooks.sender import start_for_settings

    with cli_errors():
        settings = _settings(db, data_dir)
    with cli_errors(settings.db_url):
        engine = make_engine(settings.db_url)
        poller = sweeper = sender = retention = notifier = None
        try:
            ensure_migrated(engine)
            api = create_app(settings, engine=engine, start_gateway=not no_gateway)
            poller = start_for_app(api, feed_poll_seconds)
            sweeper = NoShowSweeper(api.state.session_factory, rules=checkin_rules(settings)).start()
            sender = start_for_settings(api.state.session_factory, settings)
            retention = RetentionSweeper(api.state.session_factory, settings).start()
            notifier = start_notifier(api.state.session_factory, settings)
            where = _safe_url(settings.db_url)
            typer.echo(f"Central API on http://{host}:{port} (docs at /docs), database {where}")
            uvicorn.run(api, host=host, port=port, log_level="info")
        finally:
            for worker in (poller, sweeper, sender, retention, notifier):
                if worker is not None:
                    worker.stop()
            engine.dispose()


@app.command("webhook-secret")
def webhook_secret_command(data_dir: DataDirOption = None) -> None:
    """Print the secret the booking system verifies webhook signatures with (made on first use).

    The receiver computes HMAC-SHA256 over the request body with this text as the key and compares it with
    the X-Meraapent-Signature header (sha256=<hex>).
    """
    from central.webhooks.sender import webhook_secret

    with cli_errors():
        settings = _settings(data_dir=data_dir)
        typer.echo(webhook_secret(settings))


@app.command("retention")
def retention_command(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Apply retention once now: pseudonymise old access events, delete old alarms and audit entries, clear
    who held long-ended bookings (MERAAPENT_*_RETENTION_DAYS). `central serve` does this every hour.
    """
    from central.db import ensure_migrated, make_engine, session_factory, utcnow
    from central.services.retention import apply_retention

    with cli_errors():
        settings = _settings(db, data_dir)
    with cli_errors(settings.db_url):
        engine = make_engine(settings.db_url)
        try:
            ensure_migrated(engine)
            with session_factory(engine)() as session, session.begin():
                report = apply_retention(session, settings, utcnow())
            typer.echo(report.summary())
        finally:
            engine.dispose()


@app.command("staff-password")
def staff_password_command(
    username: Annotated[str, typer.Argument(help="The API user (admin or caretaker) signing in at /drift.")],
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set the console password of an admin or caretaker (asked twice on a terminal; one line from stdin
    otherwise). Also lifts a lockout after too many wrong tries."""
    import sys

    from central.db import ensure_migrated, make_engine, session_factory
    from central.services.errors import ServiceError
    from central.services.staff_sign_in import set_password

    with cli_errors():
        settings = _settings(db, data_dir)
    if sys.stdin.isatty():
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    with cli_errors(settings.db_url):
        engine = make_engine(settings.db_url)
        try:
            ensure_migrated(engine)
            with session_factory(engine)() as session, session.begin():
                set_password(session, "cli", username, password)
        except ServiceError as exc:
            _fail(str(exc))
        finally:
            engine.dispose()
    typer.echo(f"console password set for {username}")


@app.command("notify-webhook-secret")
def notify_webhook_secret_command(data_dir: DataDirOption = None) -> None:
    """Print the secret the on-call system verifies alarm webhook signatures with (made on first use):
    HMAC-SHA256 over the body with this text as the key, in X-Meraapent-Signature (sha256=<hex>)."""
    from central.notify.senders import notify_webhook_secret

    with cli_errors():
        typer.echo(notify_webhook_secret(_settings(data_dir=data_dir)))


@app.command("mqtt-ca")
def mqtt_ca_command(
    name: Annotated[
        list[str] | None,
        typer.Option("--name", help="A DNS name or IP address agents reach the broker by (repeat for more)."),
    ] = None,
    renew_server: Annotated[
        bool,
        typer.Option("--renew-server", help="Issue a new server certificate and key (same names if none)."),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Make the broker's private CA and its TLS server certificate under <data_dir>/mqtt/ (keys 0600).
    A re-run never replaces the CA: every site trusts it."""
    from central.mqtt_security.ca import CertificateError, make_ca, mqtt_dir

    with cli_errors():
        settings = _settings(data_dir=data_dir)
        try:
            report = make_ca(mqtt_dir(settings.data_dir), name or (), renew_server=renew_server)
        except CertificateError as exc:
            _fail(str(exc))
        typer.echo(report.summary())


@app.command("mqtt-config")
def mqtt_config_command(
    out: Annotated[Path, typer.Option("--out", help="Where to write broker/ (for the broker) and agents/.")],
    rotate: Annotated[
        list[str] | None, typer.Option("--rotate", help="Give this site's agent a new password (repeatable).")
    ] = None,
    rotate_central: Annotated[
        bool, typer.Option("--rotate-central", help="Give central's gateway a new password.")
    ] = False,
    central_user: Annotated[
        str | None,
        typer.Option(help="Central's broker user (default: MERAAPENT_MQTT_USERNAME or 'central')."),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The broker's TLS port.")] = 8883,
    bind: Annotated[str, typer.Option(help="Address the broker listens on (default: all).")] = "",
    broker_dir: Annotated[
        Path | None, typer.Option(help="Where broker/ will be on the broker machine (default: OUT/broker).")
    ] = None,
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write the broker's TLS listener, password file and per-site ACLs from central's sites, and one
    password per site agent (kept on re-runs unless --rotate). Run `mqtt-ca` first."""
    from sqlalchemy import select

    from central.db import ensure_migrated, make_engine, session_factory
    from central.models import Site
    from central.mqtt_security.acl import DEFAULT_CENTRAL_USER, AclError
    from central.mqtt_security.bundle import (
        CENTRAL_PASSWORD_FILE,
        BrokerOptions,
        BundleError,
        write_bundle,
    )
    from central.mqtt_security.ca import CertificateError, mqtt_dir
    from central.mqtt_security.passwords import PasswordError

    with cli_errors():
        settings = _settings(db, data_dir)
    with cli_errors(settings.db_url):
        engine = make_engine(settings.db_url)
        try:
            ensure_migrated(engine)
            with session_factory(engine)() as session:
                sites = list(session.scalars(select(Site.slug)))
        finally:
            engine.dispose()
        try:
            report = write_bundle(
                out,
                sites,
                ca_dir=mqtt_dir(settings.data_dir),
                central_user=central_user or settings.mqtt_username or DEFAULT_CENTRAL_USER,
                central_password_file=settings.secrets_dir / CENTRAL_PASSWORD_FILE,
                options=BrokerOptions(port=port, bind=bind, broker_dir=broker_dir),
                rotate=rotate or (),
                rotate_central=rotate_central,
            )
        except (AclError, BundleError, CertificateError, PasswordError) as exc:
            _fail(str(exc))
        typer.echo(report.summary())
