"""The operators' web console (Starlette + Jinja2 + vendored htmx): `prokus serve`.

Adding a page
-------------
1. A module `web/routes/<feature>.py` with handlers and a list `routes`::

       from starlette.routing import Route
       from web.deps import audit, current_operator, db, flash, form, redirect, render, require_role

       @require_role("coordinator", "supervisor")          # leave out: any signed-in operator
       def mentors_page(request):
           rows = mentoring.list_mentors(db(request))        # db(): this request's session
           return render(request, "mentors.html", {"rows": rows})

       @require_role("coordinator", "supervisor")
       def add_mentor(request):
           data = form(request)                              # the parsed POST form
           session = db(request)
           mentor = mentoring.add_mentor(session, ...)       # the same function as the CLI
           audit(request, session, "mentor_add", "ok", subject=f"mentor:{mentor.id}")
           session.commit()                                  # the action and its audit row
           flash(request, "Pendamping ditambahkan.")         # shown on the next page
           return redirect("/mentors")                       # 303: post/redirect/get

       routes = [Route("/mentors", mentors_page), Route("/mentors", add_mentor, methods=["POST"])]

   Handlers are plain `def` (run in a thread; the SQLAlchemy session is synchronous).
   `current_operator(request)` gives username, role, region (kode wilayah digits or None)
   and `.actor` for anything that writes the audit log itself.
2. Add the module to `MODULES` in web/routes/__init__.py. Every route there is guarded:
   without a session it redirects to /login (`@public` opts out), and every POST must carry
   the CSRF token (`@csrf_exempt` only for machine endpoints with their own secret).
3. A template in web/templates extending "base.html" (`{% block title %}`,
   `{% block content %}`). Every form that POSTs includes `{{ csrf_field }}`; htmx requests
   send the token as the X-CSRF-Token header by themselves (static/app.js). Text for people
   is Bahasa Indonesia; it is autoescaped, never mark user data `|safe`.
4. A menu entry in `NAV` (web/nav.py), with the same roles as the page's `require_role`.

Rules: a 403/404 is `raise HTTPException(404)` (starlette.exceptions; friendly pages);
no inline <script> (the Content-Security-Policy blocks it; put code in static/);
request bodies are limited to 1 MiB (an upload route sets `Route(..., max_body_size=...)`
and needs python-multipart for multipart parsing; its CSRF token goes in the header, so post
it with htmx); time comes from `now(request)` (tests move the clock).
"""
