"""What the services' FHIR R4 endpoints share."""

from __future__ import annotations

from fastapi.responses import JSONResponse


class FhirJSONResponse(JSONResponse):
    """A FHIR resource, as `application/fhir+json` (so the OpenAPI documents say so too)."""

    media_type = "application/fhir+json"
