"""Per-request plumbing shared by the routers: a database session, the settings, the gateway.

The session commits when the endpoint returns and rolls back when it raises, before the response is sent
(`scope="function"`), so a failing commit turns into an error response instead of a lost write after a 200.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from central.config import Settings

log = logging.getLogger("central.api")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    if request.method not in SAFE_METHODS:
        _poke_gateway(request.app.state.gateway)


def _poke_gateway(gateway: Any) -> None:
    """Ask the gateway to publish what changed now rather than at its next poll (best effort)."""
    poke = getattr(gateway, "poke", None)
    if poke is None:
        return
    try:
        poke()
    except Exception as exc:  # the change is committed; the gateway's poll will publish it anyway
        log.warning("gateway poke failed: %s", type(exc).__name__)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_gateway(request: Request) -> Any:
    """The running MQTT gateway, or None when this server runs without one."""
    return request.app.state.gateway


DbSession = Annotated[Session, Depends(get_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings)]
Gateway = Annotated[Any, Depends(get_gateway)]
