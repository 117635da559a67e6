"""Messages the bot did not understand, kept for operators to label (issue 14 item 4).

The dialogue calls `record_miss` for a turn that ended in the fallback or was answered with
a confidence under `LOW_CONFIDENCE`; the text is masked (domain.redact.redact_message: NIKs,
phone numbers and any other long number) before it is written. Operators label each message
in the console (/nlu/review) with an intent, a faq/* key or out_of_scope, or discard it;
`prokus nlu export-reviewed` turns the labelled ones into training and test data
(nlu/reviewed.py). Unreviewed messages are deleted after `RETENTION_DAYS` (`purge`, a daily
background job).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from db.models import NluMiss
from domain.redact import redact_message

if TYPE_CHECKING:
    from nlu.client import Parse

LOW_CONFIDENCE = 0.6          # answered, but below this: worth a look
REASONS = ("fallback", "low_confidence")
RETENTION_DAYS = 90
RANKING_KEPT = 5              # the top of the model's ranking shown to the operator
MAX_TEXT = 4096
FALLBACK = "nlu_fallback"
DISCARD = "discard"           # what the review form sends instead of a label


def _ranking(parse: Parse) -> list[list[Any]]:
    """The model's top intents as [name, confidence], best first: `faq` named by the FAQ
    answer the response selector chose, the fallback pseudo-intent left out."""
    faq_key = parse.faq_key
    ranked = parse.ranking or ((parse.intent, parse.confidence),)
    out: list[list[Any]] = []
    for name, confidence in ranked:
        if name == FALLBACK or not name:
            continue
        if name == "faq" and faq_key:
            name = faq_key
        out.append([name[:64], round(float(confidence), 4)])
        if len(out) == RANKING_KEPT:
            break
    return out


def record_miss(session: Session, text: str, parse: Parse | None, reason: str,
                now: datetime) -> None:
    """Keep a not-understood message (masked) with the top of the model's ranking, in the
    caller's transaction. `parse` None (the NLU server was down) stores nothing: the model
    never saw the message, so it is no lesson about the model, and an outage would flood
    the review queue. Empty texts are not kept either."""
    if parse is None:
        return
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {REASONS}, got {reason!r}")
    # Only text a database can hold: no NUL, no lone surrogates (bad input from a client).
    text = text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")
    masked = redact_message(" ".join(text.split()))[:MAX_TEXT]
    if not masked:
        return
    ranking = _ranking(parse)
    intent, confidence = (ranking[0] if ranking else (None, None))
    session.add(NluMiss(text=masked, intent=intent, confidence=confidence, ranking=ranking,
                        reason=reason, status="new", created_at=now.astimezone(UTC)))


# ---------------------------------------------------------------------- review queue
@dataclass(frozen=True)
class MissPage:
    rows: list[NluMiss]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def pending(session: Session, page: int = 1, per_page: int = 25,
            oldest_first: bool = False) -> MissPage:
    """One page of the messages nobody has reviewed yet, newest (or oldest) first."""
    total = session.scalar(select(func.count()).select_from(NluMiss)
                           .where(NluMiss.status == "new")) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    order = (NluMiss.created_at.asc(), NluMiss.id.asc()) if oldest_first else (
        NluMiss.created_at.desc(), NluMiss.id.desc())
    rows = list(session.scalars(select(NluMiss).where(NluMiss.status == "new")
                                .order_by(*order).offset((page - 1) * per_page)
                                .limit(per_page)))
    return MissPage(rows, total, page, per_page)


def counts(session: Session) -> dict[str, int]:
    """How many messages are new, labelled and discarded."""
    found = dict(session.execute(select(NluMiss.status, func.count())
                                 .group_by(NluMiss.status)).tuples().all())
    return {status: int(found.get(status, 0)) for status in ("new", "labelled", "discarded")}


@dataclass(frozen=True)
class Reviewed:
    """What `review` did: `outcome` "labelled" / "discarded", or "gone" when the message was
    reviewed by someone else meanwhile (or deleted); `same_text` other new messages with the
    very same text that got the same decision."""

    outcome: str
    miss_id: int
    label: str | None = None
    same_text: int = 0


def review(session: Session, miss_id: int, label: str | None, by: str,
           now: datetime) -> Reviewed:
    """Label a new message (`label`: an intent, faq/* key or out_of_scope) or discard it
    (`label` None), compare-and-set on status "new" so two operators cannot both decide it.
    Other new messages with exactly the same (masked) text get the same decision. The
    caller checks the label against `nlu.reviewed.label_choices` and commits."""
    status = "discarded" if label is None else "labelled"
    values = {"status": status, "label": label, "reviewed_by": by[:64],
              "reviewed_at": now.astimezone(UTC)}
    changed = session.execute(update(NluMiss).where(NluMiss.id == miss_id,
                                                    NluMiss.status == "new").values(**values))
    if changed.rowcount != 1:
        return Reviewed("gone", miss_id)
    text = session.scalar(select(NluMiss.text).where(NluMiss.id == miss_id))
    same = session.execute(update(NluMiss).where(NluMiss.text == text, NluMiss.status == "new",
                                                 NluMiss.id != miss_id).values(**values))
    return Reviewed(status, miss_id, label, same.rowcount or 0)


def labelled_examples(session: Session) -> list[tuple[str, str]]:
    """(text, label) of every labelled message, in the order they were reviewed (a later
    review of the same words comes later)."""
    rows = session.execute(select(NluMiss.text, NluMiss.label)
                           .where(NluMiss.status == "labelled", NluMiss.label.is_not(None))
                           .order_by(NluMiss.reviewed_at, NluMiss.id)).tuples()
    return [(text, str(label)) for text, label in rows]


def purge(session: Session, now: datetime, days: int = RETENTION_DAYS) -> int:
    """Delete messages nobody reviewed within `days` of arriving, and discarded ones `days`
    after they were discarded (labelled ones are training data and stay). Returns how many
    were deleted; the caller commits."""
    cutoff = now.astimezone(UTC) - timedelta(days=days)
    result = session.execute(delete(NluMiss).where(or_(
        (NluMiss.status == "new") & (NluMiss.created_at < cutoff),
        (NluMiss.status == "discarded") & (NluMiss.reviewed_at < cutoff),
    )))
    return result.rowcount or 0
