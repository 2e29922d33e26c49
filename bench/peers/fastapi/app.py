"""The FastAPI peer of agenda-bench: the two read routes of scenarios (a) and (b).

FastAPI + async SQLAlchemy 2 (ORM, asyncpg driver), served by uvicorn with one
worker. It answers like Agenda: the same URLs, query parameters, JSON shape,
401/403/404 and error body, against the same database, as the same
least-privilege role, so row-level security applies as it does to Agenda.

Every request is one transaction (``async with session.begin()``):

1. ``BEGIN``
2. ``SELECT set_config('app.tenant', coalesce(agenda_session_tenant(digest)::text, ''), true)``
   -- the SECURITY DEFINER function of migration 11 finds the token's organization;
   without a tenant, row-level security hides every session row.
3. the session joined to its (active) user and organization, by token digest;
4. the appointment (a) or the page of appointments (b), in that tenant;
5. ``COMMIT`` (``ROLLBACK`` when the request fails).

Configuration: ``DATABASE_URL`` (postgresql://...), ``DB_POOL_SIZE`` (default 8).
"""

from __future__ import annotations

import hashlib
import os
import string
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, Text, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _async_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


engine = create_async_engine(
    _async_url(os.environ["DATABASE_URL"]),
    pool_size=int(os.environ.get("DB_POOL_SIZE", "8")),
    max_overflow=0,
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    # Every instant in the schema is a timestamptz.
    type_annotation_map = {datetime: DateTime(timezone=True)}


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    slug: Mapped[str]
    name: Mapped[str]
    time_zone: Mapped[str]
    currency: Mapped[str]
    locale: Mapped[str]
    status: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organization_id: Mapped[uuid.UUID]
    email: Mapped[str]
    full_name: Mapped[str]
    role: Mapped[str]
    is_active: Mapped[bool]
    is_verified: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class UserSession(Base):
    __tablename__ = "user_sessions"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organization_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID]
    token_hash: Mapped[str]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Appointment(Base):
    __tablename__ = "appointments"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organization_id: Mapped[uuid.UUID]
    client_id: Mapped[uuid.UUID]
    provider_id: Mapped[uuid.UUID]
    service_id: Mapped[uuid.UUID | None]
    provider_service_id: Mapped[uuid.UUID | None]
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    occupied_until: Mapped[datetime]
    status: Mapped[str]
    price_cents: Mapped[int]
    discount_cents: Mapped[int]
    promotion_id: Mapped[uuid.UUID | None]
    currency: Mapped[str]
    payment_method: Mapped[str | None]
    payment_status: Mapped[str]
    notes: Mapped[str | None]
    cancellation_reason: Mapped[str | None]
    canceled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AppointmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    client_id: uuid.UUID
    provider_id: uuid.UUID
    service_id: uuid.UUID | None
    provider_service_id: uuid.UUID | None
    start_at: datetime
    end_at: datetime
    occupied_until: datetime
    status: str
    price_cents: int
    discount_cents: int
    promotion_id: uuid.UUID | None
    currency: str
    payment_method: str | None
    payment_status: str
    notes: str | None
    cancellation_reason: str | None
    canceled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AppointmentPage(BaseModel):
    items: list[AppointmentOut]
    next: str | None


class ApiError(Exception):
    """An error answered with Agenda's body: {"error": {code, message, fields}}."""

    def __init__(self, status: int, code: str, message: str, fields: list | None = None):
        self.status, self.code, self.message, self.fields = status, code, message, fields


app = FastAPI(title="agenda-bench FastAPI peer", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(ApiError)
async def api_error(_: Request, e: ApiError) -> JSONResponse:
    body = {"error": {"code": e.code, "message": e.message, "fields": e.fields}}
    return JSONResponse(body, status_code=e.status)


@app.exception_handler(RequestValidationError)
async def validation_error(_: Request, e: RequestValidationError) -> JSONResponse:
    fields = [
        {"field": str(err["loc"][-1]), "message": err["msg"]} for err in e.errors()
    ]
    body = {"error": {"code": "validation_failed", "message": "invalid request", "fields": fields}}
    return JSONResponse(body, status_code=422)


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "sign in first: send Authorization: Bearer <token>")


async def transaction() -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns, rolled back
    when it raises."""
    async with SessionLocal() as session, session.begin():
        yield session


DbSession = Annotated[AsyncSession, Depends(transaction)]


def _is_token(text: str) -> bool:
    return len(text) == 64 and all(c in string.hexdigits for c in text)


async def current_user(
    session: DbSession, authorization: Annotated[str | None, Header()] = None
) -> User:
    """The bearer token's active session and user; enters its organization."""
    if authorization is None or not authorization.startswith("Bearer "):
        raise unauthorized()
    token = authorization[len("Bearer ") :].strip()
    if not _is_token(token):
        raise unauthorized()
    digest = hashlib.sha256(token.encode()).hexdigest()
    tenant = func.coalesce(cast(func.agenda_session_tenant(digest), Text), "")
    await session.execute(select(func.set_config("app.tenant", tenant, True)))
    found = (
        await session.execute(
            select(UserSession, User, Organization)
            .join(
                User,
                and_(
                    User.id == UserSession.user_id,
                    User.organization_id == UserSession.organization_id,
                ),
            )
            .join(Organization, Organization.id == UserSession.organization_id)
            .where(
                UserSession.token_hash == digest,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > func.now(),
                User.is_active.is_(True),
            )
        )
    ).first()
    if found is None:
        raise unauthorized()
    _, user, organization = found
    if organization.status == "suspended":
        raise ApiError(
            403,
            "organization_suspended",
            "this organization is suspended; contact the platform's operator",
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]
Status = Literal["pending", "confirmed", "in_progress", "completed", "canceled", "no_show"]


def _is_staff(user: User) -> bool:
    return user.role in ("admin", "support")


def _bad_cursor() -> ApiError:
    return ApiError(
        422,
        "validation_failed",
        "after: is not a cursor this list returned",
        [{"field": "after", "message": "is not a cursor this list returned"}],
    )


def _parse_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    at, sep, id_ = cursor.rpartition("/")
    if not sep:
        raise _bad_cursor()
    try:
        return datetime.fromisoformat(at), uuid.UUID(id_)
    except ValueError:
        raise _bad_cursor() from None


@app.get("/health/ready")
async def ready() -> dict:
    return {"status": "ok"}


@app.get("/api/v1/appointments/{appointment_id}", response_model=AppointmentOut)
async def get_appointment(
    appointment_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> Appointment:
    appointment = await session.scalar(
        select(Appointment).where(
            Appointment.id == appointment_id,
            Appointment.organization_id == user.organization_id,
        )
    )
    if appointment is None or not (
        user.id in (appointment.client_id, appointment.provider_id) or _is_staff(user)
    ):
        raise ApiError(404, "not_found", "appointment not found")
    return appointment


@app.get("/api/v1/appointments", response_model=AppointmentPage)
async def list_appointments(
    user: CurrentUser,
    session: DbSession,
    provider_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    status: Status | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> dict:
    if user.role == "client":
        client_id = user.id
    elif user.role == "provider":
        provider_id = user.id
    query = select(Appointment).where(Appointment.organization_id == user.organization_id)
    if provider_id is not None:
        query = query.where(Appointment.provider_id == provider_id)
    if client_id is not None:
        query = query.where(Appointment.client_id == client_id)
    if status is not None:
        query = query.where(Appointment.status == status)
    if from_ is not None:
        query = query.where(Appointment.start_at >= from_)
    if to is not None:
        query = query.where(Appointment.start_at < to)
    if after is not None:
        start, id_ = _parse_cursor(after)
        query = query.where(
            or_(
                Appointment.start_at > start,
                and_(Appointment.start_at == start, Appointment.id > id_),
            )
        )
    query = query.order_by(Appointment.start_at, Appointment.id).limit(limit + 1)
    items = list((await session.scalars(query)).all())
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = f"{last.start_at.isoformat()}/{last.id}"
    return {"items": items, "next": next_cursor}
