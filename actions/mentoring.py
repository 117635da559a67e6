"""The KPM side of mentoring: upcoming sessions (/jadwal) and the mentor's contact."""

from __future__ import annotations

from actions import schedule
from actions.context import Context
from db import mentoring


def _mentor_or_explain(ctx: Context):
    """The user's mentor, or None after saying why there is none yet and what happens next."""
    registration, mentor = mentoring.mentor_of_user(ctx.session, ctx.user.id)
    if registration is None:
        ctx.say("mentoring_not_registered", buttons=(ctx.button("register_prokus"),
                                                     ctx.button("faq/mentoring_what")))
        return None
    if mentor is None:
        ctx.say("mentoring_not_assigned", number=registration.number,
                status=ctx.texts(f"status/{registration.status}"),
                buttons=(ctx.button("registration_status"), ctx.button("faq/mentoring_what")))
        return None
    return mentor


def mentoring_schedule(ctx: Context) -> None:
    """Show the user's upcoming sessions (a mentor sees their own)."""
    own = mentoring.mentor_for_user(ctx.session, ctx.user)
    if own is not None:
        from actions.mentor_tools import my_sessions

        my_sessions(ctx)
        return
    mentor = _mentor_or_explain(ctx)
    if mentor is None:
        return
    sessions = mentoring.upcoming(ctx.session, mentor.id, ctx.now)
    if not sessions:
        ctx.say("mentoring_no_sessions", mentor=mentor.nama,
                buttons=(ctx.button("mentor_contact"),))
        return
    items = "\n\n".join(schedule.session_text(ctx.texts, s, mentor.kode_wilayah)
                        for s in sessions)
    ctx.say("mentoring_sessions", mentor=mentor.nama, items=items,
            buttons=(ctx.button("mentor_contact"),))


def mentor_contact(ctx: Context) -> None:
    """Show the name and phone number of the user's mentor."""
    mentor = _mentor_or_explain(ctx)
    if mentor is not None:
        ctx.say("mentor_contact", name=mentor.nama, phone=mentor.no_hp,
                buttons=(ctx.button("mentoring_schedule"),))


HANDLERS = {"mentoring_schedule": mentoring_schedule, "mentor_contact": mentor_contact}
