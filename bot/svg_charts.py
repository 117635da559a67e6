"""Server-side SVG charts for the operators' console, with the standard library only.

Every chart is one `<svg>` string: responsive (a viewBox and `width="100%"`, so it shrinks
with its container), accessible (`role="img"`, an `aria-label`, a `<title>` and a `<desc>`
summing it up), and safe to put into a page as it is: every text from the caller (titles,
units, category names) is XML-escaped, and characters XML cannot hold are dropped. Each bar
or point carries a `<title>`, which browsers show on hover (and screen readers read).

The words are the caller's (Indonesian titles, units, series names); dates and numbers are
written the Indonesian way ("5 Mei 2026", "1.234", "1,2 jt"). No data, or only zeros, draws
a friendly "Belum ada data" instead of an empty frame; one huge value among small ones keeps
the small ones visible as a thin bar (and their exact values in the hover text).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date
from xml.sax.saxutils import escape

EMPTY_TEXT = "Belum ada data"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")
COLOR = "#2563eb"
PALETTE = ("#16a34a", "#2563eb", "#dc2626", "#d97706", "#64748b", "#7c3aed", "#0891b2")
TEXT_COLOR = "#334155"
GRID_COLOR = "#e2e8f0"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
FONT_SIZE = 12
CHAR_WIDTH = 6.8  # average width of one character at FONT_SIZE, for layout estimates
MIN_BAR = 1.5  # a non-zero value is never drawn thinner than this

# Characters XML 1.0 cannot contain at all (control characters, lone surrogates, FFFE/FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTR_ENTITIES = {'"': "&quot;", "'": "&#39;"}


# ---------------------------------------------------------------------- formatting
def esc(text: object) -> str:
    """`text` safe inside an element or a quoted attribute."""
    return escape(_NOT_XML.sub("", str(text)), _ATTR_ENTITIES)


def format_number(value: float) -> str:
    """1234 -> "1.234", 2.5 -> "2,5" (Indonesian separators)."""
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", ".")
    text = f"{value:,.1f}"
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def format_compact(value: float) -> str:
    """An axis label: 950, "1,2 rb", "3 jt", "1,5 M" (miliar), "2 T" (triliun)."""
    for size, suffix in ((1e12, "T"), (1e9, "M"), (1e6, "jt"), (1e3, "rb")):
        if abs(value) >= size:
            scaled = value / size
            if scaled >= 1000:  # beyond a thousand triliun: scientific, still short
                return f"{value:.1e}".replace(".", ",")
            return f"{format_number(round(scaled, 1))} {suffix}"
    return format_number(round(value, 1))


def format_day(day: date, year: bool = False) -> str:
    """5 Mei, or 5 Mei 2026."""
    text = f"{day.day} {MONTHS[day.month - 1]}"
    return f"{text} {day.year}" if year else text


def _value(raw: object) -> float:
    """A count to draw: non-numbers, NaN, infinities and negatives draw as 0."""
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def _with_unit(value: float, unit: str) -> str:
    return f"{format_number(value)} {unit}".strip()


def _nice_scale(top: float, ticks: int = 4) -> tuple[float, float]:
    """(axis maximum, tick step): a round step (1, 2, 2.5 or 5 x 10^k, at least 1) so that
    about `ticks` steps cover `top`."""
    raw = max(top / ticks, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(top / step), step


def _f(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------- frame
def _svg(width: float, height: float, title: str, desc: str, body: list[str],
         kind: str) -> str:
    label = esc(title)
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" style="max-width:100%;height:auto" '
        f'role="img" aria-label="{label}" font-family="{esc(FONT)}" '
        f'font-size="{FONT_SIZE}" fill="{TEXT_COLOR}">',
        f"<title>{label}</title>",
        f"<desc>{esc(desc)}</desc>",
        *body,
        "</svg>",
    ])


def empty_chart(title: str, empty_text: str = EMPTY_TEXT, width: float = 640,
                height: float = 120) -> str:
    """A frame with the friendly "no data yet" text in the middle."""
    body = [f'<rect x="0.5" y="0.5" width="{_f(width - 1)}" height="{_f(height - 1)}" '
            f'rx="6" fill="none" stroke="{GRID_COLOR}"/>',
            f'<text x="{_f(width / 2)}" y="{_f(height / 2)}" text-anchor="middle" '
            f'dominant-baseline="middle" font-size="{FONT_SIZE + 2}">{esc(empty_text)}</text>']
    return _svg(width, height, f"{title}: {empty_text}", empty_text, body, "empty")


def _grid(left: float, right: float, top: float, bottom: float, axis_max: float,
          step: float) -> list[str]:
    """Horizontal grid lines with compact labels on the left."""
    out = []
    steps = round(axis_max / step)
    for i in range(steps + 1):
        value = step * i
        y = bottom - (bottom - top) * (value / axis_max)
        out.append(f'<line x1="{_f(left)}" x2="{_f(right)}" y1="{_f(y)}" y2="{_f(y)}" '
                   f'stroke="{GRID_COLOR}" stroke-width="1"/>')
        out.append(f'<text x="{_f(left - 6)}" y="{_f(y)}" text-anchor="end" '
                   f'dominant-baseline="middle">{esc(format_compact(value))}</text>')
    return out


def _axis_width(axis_max: float, step: float) -> float:
    """Room on the left for the widest grid label."""
    widest = max(len(format_compact(step * i)) for i in range(round(axis_max / step) + 1))
    return 12 + CHAR_WIDTH * max(widest, 3)


def _day_labels(days: Sequence[date], x_of, bottom: float, left: float, right: float,
                max_labels: int) -> list[str]:
    """Sparse date labels under the axis; the last day is always labelled."""
    n = len(days)
    step = max(1, math.ceil(n / max(1, max_labels)))
    out = []
    for i in range(n - 1, -1, -step):
        x = min(max(x_of(i), left + 18), right - 18)
        out.append(f'<text x="{_f(x)}" y="{_f(bottom + 16)}" text-anchor="middle">'
                   f"{esc(format_day(days[i]))}</text>")
    return out


def _summary(days: Sequence[date], values: Sequence[float], unit: str) -> str:
    total = sum(values)
    peak = max(range(len(values)), key=lambda i: values[i])
    return (f"{format_day(days[0], True)} sampai {format_day(days[-1], True)}: jumlah "
            f"{_with_unit(total, unit)}; tertinggi {_with_unit(values[peak], unit)} "
            f"pada {format_day(days[peak], True)}.")


# ---------------------------------------------------------------------- charts
def bar_chart_days(points: Sequence[tuple[date, float]], *, title: str, unit: str = "",
                   color: str = COLOR, empty_text: str = EMPTY_TEXT,
                   description: str | None = None, width: float = 640,
                   height: float = 220, max_labels: int = 7) -> str:
    """Vertical bars, one per day, oldest on the left: `points` are (day, value) pairs
    (zero-filled by the caller). The hover text of a bar reads "5 Mei 2026: 12 <unit>"."""
    days = [d for d, _ in points]
    values = [_value(v) for _, v in points]
    if not values or max(values) == 0:
        return empty_chart(title, empty_text, width)
    return stacked_bar_chart_days(days, [("", values, color)], title=title, unit=unit,
                                  empty_text=empty_text, description=description,
                                  width=width, height=height, max_labels=max_labels,
                                  _kind="bar")


def stacked_bar_chart_days(days: Sequence[date],
                           series: Sequence[tuple[str, Sequence[float], str]], *,
                           title: str, unit: str = "", empty_text: str = EMPTY_TEXT,
                           description: str | None = None, width: float = 640,
                           height: float = 240, max_labels: int = 7,
                           _kind: str = "stacked") -> str:
    """Stacked vertical bars per day: `series` are (name, one value per day, color), the
    first at the bottom; a legend names them (one unnamed series: no legend). The hover text
    lists each series' value that day."""
    named = [s for s in series if s[0]]
    clean = [(name, [_value(v) for v in values][: len(days)] + [0.0] * (len(days) - len(values)),
              color) for name, values, color in series]
    totals = [sum(s[1][i] for s in clean) for i in range(len(days))]
    if not days or not clean or max(totals) == 0:
        return empty_chart(title, empty_text, width)
    legend_h = 22 if named else 0
    axis_max, step = _nice_scale(max(totals))
    left = _axis_width(axis_max, step)
    right, top, bottom = width - 10, 10 + legend_h, height - 26
    slot = (right - left) / len(days)
    bar_w = max(slot * 0.78, 0.6)
    scale = (bottom - top) / axis_max

    def x_of(i: int) -> float:
        return left + slot * i + slot / 2

    body = _legend(named, left, 16) if named else []
    body += _grid(left, right, top, bottom, axis_max, step)
    for i, day in enumerate(days):
        if named:
            tip = f"{format_day(day, True)}: " + ", ".join(
                f"{name}: {_with_unit(vals[i], unit)}" for name, vals, _ in clean)
        else:
            tip = f"{format_day(day, True)}: {_with_unit(totals[i], unit)}"
        body.append(f'<g class="bar"><title>{esc(tip)}</title>')
        body.append(f'<rect x="{_f(left + slot * i)}" y="{_f(top)}" width="{_f(slot)}" '
                    f'height="{_f(bottom - top)}" fill="transparent"/>')
        y = bottom
        for _name, vals, color in clean:
            if vals[i] <= 0:
                continue
            h = max(vals[i] * scale, MIN_BAR)
            y -= h
            body.append(f'<rect x="{_f(x_of(i) - bar_w / 2)}" y="{_f(y)}" '
                        f'width="{_f(bar_w)}" height="{_f(h)}" fill="{esc(color)}"/>')
        body.append("</g>")
    body.append(f'<line x1="{_f(left)}" x2="{_f(right)}" y1="{_f(bottom)}" y2="{_f(bottom)}" '
                f'stroke="{TEXT_COLOR}" stroke-width="1"/>')
    body += _day_labels(days, x_of, bottom, left, right, max_labels)
    return _svg(width, height, title, description or _summary(days, totals, unit), body, _kind)


def _legend(series: Sequence[tuple[str, Sequence[float], str]], left: float,
            y: float) -> list[str]:
    out, x = [], left
    for name, _, color in series:
        out.append(f'<rect x="{_f(x)}" y="{_f(y - 9)}" width="10" height="10" rx="2" '
                   f'fill="{esc(color)}"/>')
        out.append(f'<text x="{_f(x + 14)}" y="{_f(y)}">{esc(name)}</text>')
        x += 14 + CHAR_WIDTH * len(name) + 16
    return out


def _truncate(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max(1, max_chars - 1)].rstrip() + "…"


def horizontal_bar_chart(items: Sequence[tuple[str, float]], *, title: str, unit: str = "",
                         color: str = COLOR, empty_text: str = EMPTY_TEXT,
                         description: str | None = None, width: float = 640,
                         row_height: float = 26, max_label_chars: int = 28) -> str:
    """One horizontal bar per category, in the given order, its value written after it;
    long names are shortened (the full name is in the hover text)."""
    rows = [(str(name), _value(v)) for name, v in items]
    if not rows or max(v for _, v in rows) == 0:
        return empty_chart(title, empty_text, width)
    longest = max(len(name) for name, _ in rows)
    chars = min(longest, max_label_chars)
    label_w = min(CHAR_WIDTH * chars + 12, width * 0.4)
    chars = min(chars, int((label_w - 12) / CHAR_WIDTH))
    value_w = CHAR_WIDTH * max(len(format_number(v)) for _, v in rows) + 12
    left, right, top = label_w, width - value_w, 6
    top_value = max(v for _, v in rows)
    height = top + row_height * len(rows) + 6
    body = []
    for i, (name, value) in enumerate(rows):
        y = top + row_height * i
        mid = y + row_height / 2
        length = 0.0 if value <= 0 else max((right - left) * value / top_value, MIN_BAR)
        body.append(f'<g class="bar"><title>{esc(name)}: {esc(_with_unit(value, unit))}</title>')
        body.append(f'<rect x="0" y="{_f(y)}" width="{_f(width)}" height="{_f(row_height)}" '
                    f'fill="transparent"/>')
        body.append(f'<text x="{_f(left - 8)}" y="{_f(mid)}" text-anchor="end" '
                    f'dominant-baseline="middle">{esc(_truncate(name, chars))}</text>')
        if length:
            body.append(f'<rect x="{_f(left)}" y="{_f(y + row_height * 0.18)}" '
                        f'width="{_f(length)}" height="{_f(row_height * 0.64)}" rx="2" '
                        f'fill="{esc(color)}"/>')
        body.append(f'<text x="{_f(left + length + 6)}" y="{_f(mid)}" '
                    f'dominant-baseline="middle">{esc(format_number(value))}</text>')
        body.append("</g>")
    if description is None:
        total = sum(v for _, v in rows)
        best = max(rows, key=lambda r: r[1])
        description = (f"Jumlah {_with_unit(total, unit)} dalam {len(rows)} kategori; "
                       f"terbanyak {best[0]} ({_with_unit(best[1], unit)}).")
    return _svg(width, height, title, description, body, "hbar")


def line_chart_days(points: Sequence[tuple[date, float]], *, title: str, unit: str = "",
                    color: str = COLOR, empty_text: str = EMPTY_TEXT,
                    description: str | None = None, width: float = 640,
                    height: float = 220, max_labels: int = 7) -> str:
    """A line over days with a dot per day (its hover text "5 Mei 2026: 12 <unit>")."""
    days = [d for d, _ in points]
    values = [_value(v) for _, v in points]
    if not values or max(values) == 0:
        return empty_chart(title, empty_text, width)
    axis_max, step = _nice_scale(max(values))
    left = _axis_width(axis_max, step)
    right, top, bottom = width - 10, 10, height - 26
    span = max(len(days) - 1, 1)

    def x_of(i: int) -> float:
        return left + (right - left) * (i / span if len(days) > 1 else 0.5)

    def y_of(v: float) -> float:
        return bottom - (bottom - top) * v / axis_max

    body = _grid(left, right, top, bottom, axis_max, step)
    coords = " ".join(f"{_f(x_of(i))},{_f(y_of(v))}" for i, v in enumerate(values))
    body.append(f'<polyline points="{coords}" fill="none" stroke="{esc(color)}" '
                f'stroke-width="2" stroke-linejoin="round"/>')
    radius = 2.5 if len(days) <= 120 else 1.5
    hit = max(min((right - left) / max(len(days), 1) / 2, 8), 2)
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        x, y = _f(x_of(i)), _f(y_of(value))
        body.append(f'<g class="point"><title>{esc(format_day(day, True))}: '
                    f'{esc(_with_unit(value, unit))}</title>'
                    f'<circle cx="{x}" cy="{y}" r="{_f(hit)}" fill="transparent"/>'
                    f'<circle cx="{x}" cy="{y}" r="{radius}" fill="{esc(color)}"/></g>')
    body += _day_labels(days, x_of, bottom, left, right, max_labels)
    return _svg(width, height, title, description or _summary(days, values, unit), body, "line")
