"""/nlu/review: coordinators and supervisors label the messages the bot did not understand
(db.nlu_review), newest or oldest first, 20 a page. Each shows its (already masked) text and
the model's top intents; the operator picks the right intent or FAQ answer (or
out_of_scope), or discards the message. Every decision is audited; two operators deciding
the same message: the second is told it was already reviewed. `prokus nlu export-reviewed`
turns the labels into training and test data."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import nlu_review
from nlu.reviewed import LabelChoice, label_choices
from web.deps import (
    audit,
    current_operator,
    db,
    flash,
    form,
    now,
    redirect,
    render,
    require_role,
    web_context,
)

PER_PAGE = 20
ORDERS = {"newest": "Terbaru dulu", "oldest": "Terlama dulu"}
REASONS = {"fallback": "Tidak dipahami", "low_confidence": "Keyakinan rendah"}


def _choices(request: Request) -> list[LabelChoice]:
    return label_choices(web_context(request).settings.project_root)


def _order(value: str | None) -> str:
    return value if value in ORDERS else "newest"


def _page(value: str | None) -> int:
    try:
        return max(1, int(value or "1"))
    except ValueError:
        return 1


def _back(order: str, page: int) -> str:
    return "/nlu/review?" + urlencode({"order": order, "page": page})


@require_role("coordinator", "supervisor")
def review_page(request: Request) -> Response:
    """One page of unreviewed messages, each with a label form."""
    order = _order(request.query_params.get("order"))
    session = db(request)
    result = nlu_review.pending(session, _page(request.query_params.get("page")), PER_PAGE,
                                oldest_first=order == "oldest")
    choices = _choices(request)
    titles = {choice.value: choice.title for choice in choices}
    return render(request, "nlu_review.html", {
        "result": result, "order": order, "orders": ORDERS, "reasons": REASONS,
        "counts": nlu_review.counts(session), "retention_days": nlu_review.RETENTION_DAYS,
        "intents": [c for c in choices if c.group == "intent"],
        "faqs": [c for c in choices if c.group == "faq"],
        "titles": titles, "back": _back,
        "page_link": lambda number: _back(order, number),
    })


@require_role("coordinator", "supervisor")
def review_one(request: Request) -> Response:
    """Label or discard one message; back to the same page of the queue."""
    try:
        miss_id = int(request.path_params["miss_id"])
    except ValueError:
        raise HTTPException(404) from None
    data = form(request)
    order, page = _order(data.get("order")), _page(data.get("page"))
    action = data.get("action", "")
    label: str | None = None
    if action == "label":
        label = str(data.get("label", "")).strip()
        if label not in {choice.value for choice in _choices(request)}:
            flash(request, "Pilih intent atau jawaban FAQ dari daftar dulu.", "error")
            return redirect(_back(order, page))
    elif action != "discard":
        raise HTTPException(400, "unknown action")
    session = db(request)
    operator = current_operator(request)
    done = nlu_review.review(session, miss_id, label, operator.actor, now(request))
    subject = f"nlu_miss:{miss_id}"
    verb = "nlu_label" if label else "nlu_discard"
    if done.outcome == "gone":
        session.rollback()
        audit(request, session, verb, "already_reviewed", subject=subject,
              detail={"label": label})
        session.commit()
        flash(request, "Pesan itu sudah ditinjau operator lain (atau sudah dihapus).", "info")
        return redirect(_back(order, page))
    audit(request, session, verb, "ok", subject=subject,
          detail={"label": label, "same_text": done.same_text})
    session.commit()
    also = f" (dan {done.same_text} pesan yang sama persis)" if done.same_text else ""
    if label:
        flash(request, f"Pesan ditandai sebagai {label}{also}.")
    else:
        flash(request, f"Pesan dibuang{also}.")
    return redirect(_back(order, page))


routes = [
    Route("/nlu/review", review_page, methods=["GET"]),
    Route("/nlu/review/{miss_id}", review_one, methods=["POST"]),
]
