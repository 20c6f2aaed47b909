"""/privacy: the data inventory for the municipality's DPIA (what is stored, why, how long, where)."""

from __future__ import annotations

from fastapi import APIRouter

from central.api.auth import Staff
from central.api.deps import AppSettings
from central.api.routers.common import Output
from central.services.privacy import data_inventory

router = APIRouter(prefix="/privacy", tags=["privacy"])


class DataKindOut(Output):
    kind: str
    stored_in: str
    what: str
    why: str
    kept: str
    where: str


@router.get("/inventory", summary="What central stores about people, why, for how long and where")
def inventory(settings: AppSettings, _: Staff) -> list[DataKindOut]:
    """Generated from the retention settings (MERAAPENT_*_RETENTION_DAYS), so it never goes stale."""
    return [DataKindOut.model_validate(kind) for kind in data_inventory(settings)]
