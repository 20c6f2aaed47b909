"""The residents' web pages ("Min nøkkel"), served by central under /min-nokkel.

Server-rendered HTML (Jinja2) that works on any phone browser, with small scripts only where the phone must
do something itself (WebCrypto for the bound QR code). Texts come from the one catalogue (protocol/i18n.py);
the session is a signed cookie (Starlette's SessionMiddleware, key in <data>/secrets/web-session.key) holding
the signed-in person's id, the CSRF token and nothing else.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from central.config import Settings
from central.web import pages, routes
from central.web.pages import PREFIX
from central.web.session import SESSION_COOKIE, SESSION_MAX_AGE, session_secret

__all__ = ["PREFIX", "install"]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the resident pages, their static files and their session cookie to `app`."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings).hex(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.public_url.startswith("https://"),
    )
    app.middleware("http")(pages.security_headers)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=pages.STATIC_DIR), name="web-static")
    pages.install_error_pages(app)
    for router in routes.routers():
        app.include_router(router)
