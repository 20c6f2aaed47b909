"""Domain errors raised by the services; the API turns each kind into one HTTP problem.

Services never know about HTTP, yet the caller needs to tell "does not exist" from "clashes with what is
there" from "makes no sense", so each kind is its own class. Messages are plain and specific because they
reach integrators unchanged: "door 'bakdor' does not exist at site 'holmen'".
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every expected failure in a service; `str(exc)` is the message for the caller."""


class NotFoundError(ServiceError):
    """The thing the caller named (in the path) does not exist."""


class ConflictError(ServiceError):
    """The change clashes with data that is there (duplicate slug, card already registered, in use...)."""


class InvalidError(ServiceError):
    """A value makes no sense in context (e.g. a zone slug in the body that does not exist).

    `field` names the input field so the caller can point at it.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnavailableError(ServiceError):
    """A part central depends on (the MQTT gateway, the signing keys) is not available right now."""
