"""The console's pages, one module per feature. Each module has a list `routes` of
Starlette `Route`s; add a new module to MODULES and its pages are served, behind the
sign-in and CSRF checks (web.security.guard_routes)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from web.routes import (
    audit_viewer,
    auth,
    broadcasts,
    home,
    inbox,
    kpm_upload,
    mentors,
    nlu_review,
    operators,
    registrations,
)
from web.security import guard_routes

MODULES = (auth, home, registrations, inbox, mentors, broadcasts, kpm_upload, audit_viewer,
           operators, nlu_review)


def all_routes() -> list[BaseRoute]:
    """Every module's routes, guarded (the guard holds no state, so several apps, as in
    the tests, can share the route objects)."""
    return guard_routes(route for module in MODULES for route in module.routes)
