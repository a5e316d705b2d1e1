"""What every console page shares: the signed-in person (or a redirect to sign-in), CSRF
checks on every form, rendering in the person's language, the security headers (strict
Content-Security-Policy, no inline scripts; `Cache-Control: no-store` on every page, since
pages show patient data), and how the services' refusals are shown."""

from __future__ import annotations

import functools
import logging
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.console import i18n, labels, sessions
from services.console.services import Api, ServiceError
from services.console.sessions import Staff
from shared.auth import ADMIN, AUDIT, CARE, SCHEDULE

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()),
           (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY"),
           (b"cross-origin-opener-policy", b"same-origin"),
           (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]


class SecurityHeaders:
    """ASGI middleware: the security headers on every response; no-store on all but the
    static files (which carry no patient data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"
                           or static]
                headers += HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class SignInRequired(Exception):
    """No signed-in person for a page that needs one."""


class NotAllowed(Exception):
    """The person's role may not do this, or the form's CSRF token is missing or wrong."""


def language_of(request: Request, staff: Staff | None = None) -> str:
    if staff is not None:
        return staff.language
    chosen = request.cookies.get("kcb_lang")
    return (
        chosen if chosen in i18n.LANGUAGES else i18n.choose(request.headers.get("accept-language"))
    )


def t(request: Request, message: str) -> str:
    """`message` in the language of this request."""
    staff = getattr(request.state, "staff", None)
    return i18n.gettext(language_of(request, staff), message)


@functools.cache
def environments() -> dict[str, Environment]:
    """The templates' environment in each language, with the labels they name (`L`)."""
    return {language: i18n.environment(language, L=labels) for language in i18n.PUBLIC_LANGUAGES}


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page or fragment in the person's language."""
    staff: Staff | None = getattr(request.state, "staff", None)
    language = language_of(request, staff)
    env = environments()[language]
    idle_seconds = request.app.state.runtime.settings.idle_minutes * 60
    html = env.get_template(template).render(
        request=request, staff=staff, idle_check_seconds=int(max(2, min(30, idle_seconds / 20))),
        csrf=staff.csrf_token if staff else context.pop("csrf", ""),
        can_schedule=bool(staff and staff.can(*SCHEDULE)),
        can_care=bool(staff and staff.can(*CARE)),
        is_admin=bool(staff and staff.can(*ADMIN)), can_audit=bool(staff and staff.can(*AUDIT)),
        **context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["X-Console-Service-Calls"] = str(getattr(request.state, "service_calls", 0))
    return response


async def _person(request: Request, activity: bool) -> Staff:
    staff = await sessions.current(request, activity=activity)
    if staff is None:
        raise SignInRequired()
    await sessions.keep_token_fresh(request, staff)
    return staff


async def signed_in(request: Request) -> Staff:
    """The signed-in person (their token fresh), else `SignInRequired`."""
    return await _person(request, activity=True)


async def watching(request: Request) -> Staff:
    """The signed-in person of a request the page makes by itself (live updates, the idle
    timer): not counted as their activity."""
    return await _person(request, activity=False)


async def checked_form(request: Request, staff: Staff = Depends(signed_in)) -> Staff:
    """A signed-in person's form post, with this session's CSRF token (else 403)."""
    form = await request.form()
    if not sessions.csrf_ok(request, staff, form.get("csrf")):
        log.warning("form without a valid CSRF token refused (%s)", request.url.path)
        raise NotAllowed()
    return staff


def role(*roles: str) -> Any:  # a `Depends`
    """A dependency: a signed-in person with one of `roles` who posted a valid form."""
    async def dependency(staff: Staff = Depends(checked_form)) -> Staff:
        if not staff.can(*roles):
            raise NotAllowed()
        return staff
    return Depends(dependency)


def viewer(*roles: str) -> Any:  # a `Depends`
    """A dependency: a signed-in person with one of `roles` (a page, not a form post)."""
    async def dependency(staff: Staff = Depends(signed_in)) -> Staff:
        if not staff.can(*roles):
            raise NotAllowed()
        return staff
    return Depends(dependency)


def api(request: Request) -> Api:
    return Api(request, request.state.staff.token)


def redirect(request: Request, url: str) -> Response:
    """A redirect that htmx follows too (HX-Redirect)."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def install(app: FastAPI) -> None:
    """The console's error pages and redirects."""

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        ended = getattr(request.state, "ended", None)
        return redirect(request, "/sign-in" + ("?ended=idle" if ended else ""))

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, _: NotAllowed) -> Response:
        return render(request, "error.html", 403, title=t(request, "Not allowed"),
                      message=t(request, "You may not do this."))

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        staff = getattr(request.state, "staff", None)
        if exc.status == 401 and staff is not None:  # the token was refused: signed out
            await sessions.end(request, staff)
            request.state.staff = None
            return redirect(request, "/sign-in")
        if exc.status == 404:
            return render(request, "error.html", 404, title=t(request, "Not found"),
                          message=t(request, "There is nothing here, or it is not your network's."))
        if exc.status == 403:
            return render(request, "error.html", 403, title=t(request, "Not allowed"),
                          message=t(request, "You may not do this."))
        log.warning("%s refused a console call: %s", exc.service, exc.status)
        return render(request, "error.html", 502 if exc.status >= 500 else exc.status,
                      title=t(request, "Something went wrong"), message=exc.message)
