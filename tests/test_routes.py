"""How a service's app holds its routes: one flat list (FastAPI 0.137+ would otherwise walk
every included router on every request), the service's own routes first, and no path that
two routers both answer, so that their order changes no answer."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from services.booking.bootstrap import bootstrap as booking
from services.console.bootstrap import bootstrap as console
from services.notifier.bootstrap import bootstrap as notifier
from services.plans.bootstrap import bootstrap as plans

APPS = {"booking": booking, "plans": plans, "notifier": notifier, "console": console}


def _sample(path: str) -> str:
    """A concrete path a route template stands for (each parameter as `x1`)."""
    return re.sub(r"{[^}]+}", "x1", path)


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_route_of_a_service_is_in_the_apps_one_flat_list(service):
    app = APPS[service]()
    kinds = {type(route).__name__ for route in app.routes}
    assert kinds <= {"APIRoute", "Route", "Mount"}, kinds


def test_the_booking_routes_come_before_health_ops_and_audit():
    paths = [getattr(route, "path", None) for route in booking().routes]
    assert paths.index("/bookings") < paths.index("/health")
    assert paths.index("/bookings") < paths.index("/ops/status")
    assert paths.index("/bookings") < paths.index("/audit")


@pytest.mark.parametrize("service", sorted(APPS))
def test_no_path_is_answered_by_routes_of_two_routers(service):
    """Two routes that could answer the same method and path are allowed only within one
    router (where the order is the module's)."""
    routes = [r for r in APPS[service]().routes if isinstance(r, APIRoute)]
    clashes = []
    for i, first in enumerate(routes):
        for later in routes[i + 1:]:
            if first.endpoint.__module__ == later.endpoint.__module__:
                continue
            if not first.methods & later.methods:
                continue
            if first.path_regex.match(_sample(later.path)) or \
                    later.path_regex.match(_sample(first.path)):
                clashes.append((first.path, later.path))
    assert clashes == []
