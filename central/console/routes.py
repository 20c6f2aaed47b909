"""The one place that decides which console pages are mounted (each part of the console is its own module)."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from central.console import account, overview, sign_in
    from central.console import alarms as alarm_pages
    from central.console import commands as command_pages
    from central.console import events as event_pages
    from central.console import statistics as statistics_pages
    from central.console.admin_index import admin_routers

    return [
        sign_in.router,
        account.router,
        alarm_pages.router,
        event_pages.router,
        overview.router,
        command_pages.router,
        statistics_pages.router,
        *admin_routers(),
    ]
