"""HTTP API of the booking service (clinic staff)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request

from services.booking import handlers
from services.booking.commands import AddClinic, AddSite, BookSession, RegisterPatient
from shared.errors import NotFound

router = APIRouter()


def _pool(request: Request):
    return request.app.state.runtime.db


def _booking_view(row) -> dict[str, Any]:
    tz = ZoneInfo(row["site_timezone"])
    local = lambda t: t.astimezone(tz).isoformat()  # noqa: E731
    return {
        "id": row["id"], "clinic_id": row["clinic_id"], "site_id": row["site_id"],
        "patient_id": row["patient_id"], "session_type": row["session_type"],
        "status": row["status"], "version": row["version"],
        "starts_at": row["starts_at"], "ends_at": row["ends_at"],
        "starts_at_local": local(row["starts_at"]), "ends_at_local": local(row["ends_at"]),
        "site_timezone": row["site_timezone"],
    }


@router.post("/clinics", status_code=201, tags=["clinics"])
async def add_clinic(cmd: AddClinic, request: Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn, conn.transaction():
        return dict(await handlers.add_clinic(conn, cmd))


@router.post("/sites", status_code=201, tags=["clinics"])
async def add_site(cmd: AddSite, request: Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn, conn.transaction():
        return dict(await handlers.add_site(conn, cmd))


@router.post("/patients", status_code=201, tags=["patients"])
async def register_patient(cmd: RegisterPatient, request: Request) -> dict[str, Any]:
    regions = tuple(request.app.state.runtime.settings.phone_regions.split(","))
    async with _pool(request).acquire() as conn, conn.transaction():
        return dict(await handlers.register_patient(conn, cmd, regions))


@router.post("/bookings", status_code=201, tags=["bookings"])
async def book_session(cmd: BookSession, request: Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn, conn.transaction():
        booking = await handlers.book_session(conn, cmd)
        row = await conn.fetchrow(handlers.Q.get_booking, booking["id"])
    return _booking_view(row)


@router.get("/bookings/{booking_id}", tags=["bookings"])
async def get_booking(booking_id: UUID, request: Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        row = await conn.fetchrow(handlers.Q.get_booking, booking_id)
    if row is None:
        raise NotFound("unknown booking")
    return _booking_view(row)


@router.get("/clinics", tags=["clinics"])
async def list_clinics(request: Request) -> list[dict[str, Any]]:
    async with _pool(request).acquire() as conn:
        return [dict(r) for r in await conn.fetch(handlers.Q.list_clinics)]


@router.get("/clinics/{clinic_id}/sites", tags=["clinics"])
async def list_sites(clinic_id: UUID, request: Request) -> list[dict[str, Any]]:
    async with _pool(request).acquire() as conn:
        return [dict(r) for r in await conn.fetch(handlers.Q.list_sites, clinic_id)]


@router.get("/clinics/{clinic_id}/patients", tags=["patients"])
async def list_patients(clinic_id: UUID, request: Request) -> list[dict[str, Any]]:
    async with _pool(request).acquire() as conn:
        return [dict(r) for r in await conn.fetch(handlers.Q.list_patients, clinic_id)]
