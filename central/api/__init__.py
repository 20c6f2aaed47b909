"""Central's REST API (FastAPI); `create_app` builds it, OpenAPI is served at /docs and /openapi.json."""

from central.api.app import create_app

__all__ = ["create_app"]
