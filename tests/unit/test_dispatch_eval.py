"""Dispatch scored by the unit a ticket reaches, and the handler a government reply names."""

from __future__ import annotations

from pipeline.dispatch_eval import NONE, Decision, Truth, figures, reply_handlers, silver_truths


def truth(unit: str | None, item: str | None = None, top: str = "城乡建设") -> Truth:
    return Truth("k", "标题", "正文", unit, item, top)


def test_figures_count_units_of_what_went_out_and_a_none_fits_is_right_only_waiting():
    truths = [truth("cgj", "CJ-029"), truth("zjj", "CJ-002"), truth("cgj", "CJ-050"), truth(NONE, NONE),
              truth(None)]  # readers differ on the unit: left out
    decisions = [Decision("CJ-029", "cgj", 0.9, True), Decision("CJ-013", "zrzyj", 0.8, True),
                 Decision("CJ-029", "cgj", 0.5, False), Decision("CJ-002", "zjj", 0.7, True),
                 Decision("CJ-029", "cgj", 0.9, True)]
    f = figures(truths, decisions, thresholds=(0.0, 0.75, 0.85))
    assert (f["with_known_unit"], f["unit_unknown"]) == (4, 1)
    assert f["sent_share"] == 0.75 and f["right_unit_of_sent"] == round(1 / 3, 4)
    assert f["right_item_of_sent"] == round(1 / 3, 4) and f["none_fits_sent"] == 1
    assert f["coverage_curve"] == [{"threshold": 0.0, "sent_share": 1.0, "right_unit": 0.5},
                                   {"threshold": 0.75, "sent_share": 0.5, "right_unit": 0.5},
                                   {"threshold": 0.85, "sent_share": 0.25, "right_unit": 1.0}]
    assert f["sent_at_95_right_unit"] == {"threshold": 0.85, "sent_share": 0.25, "right_unit": 1.0}
    assert {(c["right_unit"], c["sent_to"]) for c in f["worst_confusions"]} == {("zjj", "zrzyj (CJ-013)"),
                                                                              (NONE, "zjj (CJ-002)")}


def test_silver_rows_know_the_unit_where_both_readers_items_share_it(sample_book):
    rows = [{"id": 1, "title": "t", "text": "x", "item": None, "item_a": "CJ-002", "item_b": "CJ-006"},  # both zjj
            {"id": 2, "title": "t", "text": "x", "item": None, "item_a": "CJ-002", "item_b": "CJ-029"},  # zjj / cgj
            {"id": 3, "title": "t", "text": "x", "item": "NONE", "item_a": "NONE", "item_b": "NONE",
             "class_if_none": "纪检监察"}]
    units = [t.unit for t in silver_truths(rows, sample_book)]
    assert units == ["zjj", None, NONE]


def test_a_reply_names_its_handler_by_function_whatever_its_level(sample_book):
    assert reply_handlers("网友您好！针对您反映A3区教师村小区盼望早日安装电梯的问题,A3区住建局高度重视，现回复如下",
                          sample_book) == {"zjj"}
    assert reply_handlers("您反映的问题已转市教育局调查、核处。", sample_book) == {"jyj"}
    assert reply_handlers("您好，您的留言已收悉，感谢您的关注。", sample_book) == set()
