"""The caretakers' console, served by central under /drift: every site, door and alarm live, remote actions,
the event log, administration and statistics, for caretakers and the torg manager.

Server-rendered HTML (Jinja2) on the same services the API uses, so a page and an API call do exactly the
same thing and write the same audit entry. Staff sign in with the username of their API user and a password
(central.services.staff_sign_in); the signed cookie shared with the resident pages holds their id and a CSRF
token. Texts come from the one catalogue (console-<area>.po beside meraapent.po), bokmål and English.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from central.console import pages, routes
from central.console.pages import PREFIX

__all__ = ["PREFIX", "install"]


def install(app: FastAPI) -> None:
    """Add the console pages and their static files to `app` (after central.web, whose session it uses)."""
    app.middleware("http")(pages.security_headers)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=pages.STATIC_DIR), name="console-static")
    pages.install_error_pages(app)
    for router in routes.routers():
        app.include_router(router)
