"""Server-side SVG charts (bot/svg_charts.py): well-formed XML, accessible, every caller text
escaped, friendly when there is no data, readable with one huge value."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from bot import svg_charts as charts

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = 'Pendaftaran <script>alert("x")</script> & \'kutip\' \x00\x07]]>'
DAY0 = date(2026, 9, 1)


def days(values) -> list[tuple[date, float]]:
    return [(DAY0 + timedelta(days=i), v) for i, v in enumerate(values)]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything not well formed
    assert root.tag == f"{NS}svg"
    return root


def titles(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}title")]


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


ALL_CHARTS = {
    "bars": lambda title, unit: charts.bar_chart_days(days([3, 0, 5]), title=title, unit=unit),
    "stacked": lambda title, unit: charts.stacked_bar_chart_days(
        [DAY0, DAY0 + timedelta(days=1)], [(unit, [1, 2], "#0a0"), ("Gagal", [0, 1], "#a00")],
        title=title, unit=unit),
    "hbars": lambda title, unit: charts.horizontal_bar_chart([(unit, 4), ("Jasa", 2)],
                                                             title=title, unit=unit),
    "line": lambda title, unit: charts.line_chart_days(days([1, 4, 2]), title=title, unit=unit),
    "empty": lambda title, unit: charts.empty_chart(title, empty_text=unit),
}


@pytest.mark.parametrize("kind", ALL_CHARTS)
def test_every_chart_is_well_formed_responsive_accessible_and_escaped(kind):
    svg = ALL_CHARTS[kind](HOSTILE, HOSTILE)
    root = parse(svg)
    assert root.get("role") == "img" and root.get("width") == "100%"
    assert root.get("viewBox", "").startswith("0 0 ") and root.get("height") is None
    label = root.get("aria-label")
    assert label is not None and label.startswith('Pendaftaran <script>alert("x")</script> &')
    first = list(root)[0]
    assert first.tag == f"{NS}title" and first.text.startswith("Pendaftaran <script>")
    assert root.find(f"{NS}desc") is not None
    assert "<script" not in svg and "\x00" not in svg and "\x07" not in svg
    assert root.find(f".//{NS}script") is None
    assert "]]>" not in svg


def test_bars_over_days_hover_text_and_sparse_labels():
    values = [i % 7 for i in range(90)]
    root = parse(charts.bar_chart_days(days(values), title="Pendaftaran per hari",
                                       unit="pendaftaran", max_labels=7))
    bars = root.findall(f"{NS}g[@class='bar']")
    assert len(bars) == 90
    assert bars[0].find(f"{NS}title").text == "1 Sep 2026: 0 pendaftaran"
    assert bars[5].find(f"{NS}title").text == "6 Sep 2026: 5 pendaftaran"
    labels = [t for t in texts(root) if not t.replace(".", "").replace(" ", "").isdigit()]
    assert 1 < len(labels) <= 7 and labels[0] == "29 Nov"  # the last day is always labelled
    assert all(label.split()[1] in charts.MONTHS for label in labels)
    desc = root.find(f"{NS}desc").text
    assert "1 Sep 2026 sampai 29 Nov 2026" in desc and f"jumlah {sum(values)} pendaftaran" in desc


@pytest.mark.parametrize("values", [[], [0, 0, 0], [None, float("nan"), -5]])
def test_no_data_draws_the_friendly_text(values):
    for svg in (charts.bar_chart_days(days(values), title="Cek kelayakan"),
                charts.line_chart_days(days(values), title="Cek kelayakan"),
                charts.horizontal_bar_chart([(f"k{i}", v) for i, v in enumerate(values)],
                                            title="Cek kelayakan"),
                charts.stacked_bar_chart_days([d for d, _ in days(values)],
                                              [("Terkirim", values, "#0a0")],
                                              title="Cek kelayakan")):
        root = parse(svg)
        assert charts.EMPTY_TEXT in texts(root)
        assert root.get("aria-label") == "Cek kelayakan: Belum ada data"


def test_the_caller_may_word_the_empty_text():
    root = parse(charts.bar_chart_days([], title="X", empty_text="Tidak ada siaran"))
    assert texts(root) == ["Tidak ada siaran"]


def heights(root: ET.Element) -> list[float]:
    return [float(r.get("height")) for g in root.iter(f"{NS}g")
            for r in g.findall(f"{NS}rect") if r.get("fill") != "transparent"]


def test_one_huge_value_keeps_the_small_ones_visible_and_exact():
    huge = 10**15
    root = parse(charts.bar_chart_days(days([1, 2, huge, 0, 3]), title="Lonjakan"))
    drawn = heights(root)
    assert len(drawn) == 4  # the zero day draws no bar, but keeps its hover area
    assert min(drawn) >= charts.MIN_BAR and max(drawn) > 100
    tips = titles(root)
    assert "3 Sep 2026: 1.000.000.000.000.000" in tips and "2 Sep 2026: 2" in tips
    grid = texts(root)
    assert all(len(label) <= 12 for label in grid)  # compact axis labels, not 19 digits
    root = parse(charts.horizontal_bar_chart([("Jawa Barat", huge), ("Bali", 1)], title="P"))
    assert min(float(r.get("width")) for r in root.iter(f"{NS}rect")
               if r.get("fill") not in ("transparent", None)) >= charts.MIN_BAR
    assert "1.000.000.000.000.000" in texts(root)


def test_horizontal_bars_shorten_long_names_but_keep_them_in_the_hover_text():
    name = "Nusa Tenggara Timur dan sebuah nama yang sangat panjang sekali"
    root = parse(charts.horizontal_bar_chart([(name, 7), ("Bali", 3)], title="Provinsi",
                                             unit="pendaftaran"))
    shown = texts(root)
    assert name not in shown and any(t.endswith("…") and name.startswith(t[:-1])
                                     for t in shown)
    assert f"{name}: 7 pendaftaran" in titles(root)
    assert "Bali: 3 pendaftaran" in titles(root)
    assert "terbanyak" in root.find(f"{NS}desc").text


def test_stacked_bars_name_each_series_in_legend_and_hover():
    root = parse(charts.stacked_bar_chart_days(
        [DAY0, DAY0 + timedelta(days=1)],
        [("Terkirim", [5, 1], "#16a34a"), ("Gagal", [1], "#dc2626")], title="Siaran"))
    assert "Terkirim" in texts(root) and "Gagal" in texts(root)
    assert "1 Sep 2026: Terkirim: 5, Gagal: 1" in titles(root)
    assert "2 Sep 2026: Terkirim: 1, Gagal: 0" in titles(root)  # short series: zeros


def test_line_chart_has_one_point_per_day():
    root = parse(charts.line_chart_days(days([1, 4, 2, 8]), title="Tidak dipahami",
                                        unit="percakapan"))
    assert len(root.findall(f"{NS}g[@class='point']")) == 4
    assert "4 Sep 2026: 8 percakapan" in titles(root)
    assert len(root.find(f"{NS}polyline").get("points").split()) == 4
    single = parse(charts.line_chart_days(days([5]), title="Satu hari"))
    assert len(single.findall(f"{NS}g[@class='point']")) == 1


def test_a_hostile_color_cannot_break_out_of_its_attribute():
    svg = charts.bar_chart_days(days([1, 2]), title="X", color='red" onload="alert(1)')
    root = parse(svg)
    assert all(not key.startswith("on") for el in root.iter() for key in el.attrib)


def test_indonesian_number_and_date_formats():
    assert charts.format_number(1234567) == "1.234.567"
    assert charts.format_number(2.5) == "2,5" and charts.format_number(1234.5) == "1.234,5"
    assert charts.format_compact(950) == "950" and charts.format_compact(1200) == "1,2 rb"
    assert charts.format_compact(3_000_000) == "3 jt"
    assert charts.format_compact(1.5e9) == "1,5 M" and charts.format_compact(2e12) == "2 T"
    assert len(charts.format_compact(10**20)) <= 8
    assert charts.format_day(date(2026, 5, 5)) == "5 Mei"
    assert charts.format_day(date(2026, 8, 17), year=True) == "17 Agu 2026"


def test_nice_scale_is_round_and_covers_the_maximum():
    for top in (1, 3, 7, 12, 99, 101, 12345, 10**15):
        axis_max, step = charts._nice_scale(top)
        assert axis_max >= top and step >= 1 and axis_max / step <= 6
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert mantissa in (1, 2, 2.5, 5)
