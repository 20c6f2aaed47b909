"""The one place that decides which console pages are mounted (each part of the console is its own module)."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from central.console import account, sign_in

    return [
        sign_in.router,
        account.router,
    ]
