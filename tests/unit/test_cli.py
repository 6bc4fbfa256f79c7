"""The operator-facing duty-list commands."""

from __future__ import annotations

from typer.testing import CliRunner

from cityops.cli import cli
from pipeline.dutylists import sample_path

runner = CliRunner()


def test_check_accepts_the_sample_list():
    result = runner.invoke(cli, ["dutylist", "check", str(sample_path("dutylist.yaml"))])
    assert result.exit_code == 0, result.output
    assert "ok — version A市-2026.2" in result.output


def test_check_names_the_file_line_and_reason_and_exits_1(tmp_path):
    text = sample_path("dutylist.yaml").read_text(encoding="utf-8")
    broken = text.replace("number: JT-003,", "number: JT-002,").replace("primary_unit: gjjt, legal_basis", "primary_unit: bus, legal_basis", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(broken, encoding="utf-8")
    result = runner.invoke(cli, ["dutylist", "check", str(path)])
    assert result.exit_code == 1
    lines = broken.splitlines()
    duplicate_line = 1 + [i for i, line in enumerate(lines) if "number: JT-002," in line][1]
    unknown_line = 1 + next(i for i, line in enumerate(lines) if "primary_unit: bus," in line)
    assert f"{path}:{duplicate_line}: items." in result.output and "duplicate number JT-002" in result.output
    assert f"{path}:{unknown_line}: items." in result.output and "unknown unit 'bus'" in result.output
    assert "2 problem(s)" in result.output


def test_show_explains_an_item_and_its_local_variants():
    result = runner.invoke(cli, ["dutylist", "show", "CJ-001"])
    assert result.exit_code == 0, result.output
    assert "city-wide: 主责 市城市管理和综合执法局(cgj)" in result.output
    assert "A7县(a7) and its streets (local list): 违法建设: 主责 the street where it happens (属地)" in result.output


def test_show_says_where_an_item_was_removed():
    result = runner.invoke(cli, ["dutylist", "show", "NY-001"])
    assert "暮云街道(a2-s01): removed by its local list" in result.output


def test_show_an_unknown_item_exits_1():
    assert runner.invoke(cli, ["dutylist", "show", "XX-999"]).exit_code == 1


def test_report_locations_counts_every_message(tmp_path):
    import json

    data = tmp_path / "m.jsonl"
    rows = [{"title": "A3区西湖街道安置问题", "text": "安置房"}, {"title": "A7县", "text": "路灯"}, {"title": "无地名", "text": "咨询"}]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = runner.invoke(cli, ["report", "locations", "--data", str(data), "--json"])
    report = json.loads(result.output)
    assert report["counts"] == {"street": 1, "district": 1, "unresolved": 1}


def test_report_routing_accounts_for_every_event():
    import json

    result = runner.invoke(cli, ["report", "routing", "--events", "300", "--json"])
    report = json.loads(result.output)
    outcome = report["outcome"]
    assert outcome["dispatched"] + outcome["manual"] + outcome["dead-lettered"] == 300


def test_report_routing_replays_held_out_labelled_messages(tmp_path, shared_data, monkeypatch):
    import json

    messages = tmp_path / "shared" / "zh-gov-messages"
    messages.mkdir(parents=True)
    for name in ("labelled.jsonl", "taxonomy.csv"):  # the small file: a model in seconds
        (messages / name).symlink_to(shared_data / "zh-gov-messages" / name)
    monkeypatch.setenv("CITYOPS_SHARED_DATA_DIR", str(tmp_path / "shared"))
    result = runner.invoke(cli, ["report", "routing", "--events", "50", "--labelled", "--json"])
    assert result.exit_code == 0, result.output
    replay = json.loads(result.stdout)["labelled_replay"]
    assert replay["file"] == "labelled.jsonl" and 50 <= replay["held_out"] <= 70
    assert 0 < replay["auto_share"] <= 1 and 0.5 <= replay["auto_class_accuracy"] <= 1


def test_report_cases_merges_a_repeat_and_finds_a_hotspot(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("CITYOPS_MODEL_DIR", str(tmp_path / "no-model"))  # keywords alone: the same on any machine
    rows = [{"id": n, "user": f"u{n if n < 3 else 9}", "time": f"2019-12-20T1{n}:00:00", "title": "丽发新城搅拌站扰民",
             "text": f"A2区暮云街道丽发新城小区旁搅拌站{'噪音' if n % 2 else '粉尘'}扰民第{n}次"} for n in range(5)]
    rows.append({"id": 9, "user": "u9", "time": "2019-12-20T16:00:00", "title": "丽发新城搅拌站扰民",
                 "text": "A2区暮云街道丽发新城小区旁搅拌站粉尘扰民第4次"})
    data = tmp_path / "m.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = runner.invoke(cli, ["report", "cases", "--data", str(data), "--json", "--hotspot-threshold", "3"])
    report = json.loads(result.output)
    assert report["messages"] == 6 and report["by_rule"].get("repeat call") == 1
    assert sum(report["repeat_calls_in_the_stream"].values()) == 1  # the caller stage finds the same one
    assert report["hotspots"] == 1 and report["hotspot_examples"][0][0] == "MY-01"


def test_eval_classify_on_a_fresh_checkout_trains_first_and_scores_unseen_rows(tmp_path, shared_data, monkeypatch):
    import json

    monkeypatch.setenv("CITYOPS_MODEL_DIR", str(tmp_path / "models"))
    # Only the small labelled file beside it, so this test trains in seconds (the session's one
    # training on the large set is the integration tests' model).
    messages = tmp_path / "shared" / "zh-gov-messages"
    messages.mkdir(parents=True)
    for name in ("labelled.jsonl", "taxonomy.csv"):
        (messages / name).symlink_to(shared_data / "zh-gov-messages" / name)
    monkeypatch.setenv("CITYOPS_SHARED_DATA_DIR", str(tmp_path / "shared"))
    rows = [{"title": "学校乱收补课费", "text": "某中学暑假组织学生补课，每人收取补课费两千元，家长负担很重", "label": "教育文体"},
            {"title": "小区门口垃圾无人清运", "text": "小区门口的垃圾堆放一个星期没人清运，臭气熏天，污染环境", "label": "环境保护"},
            {"title": "公交线路调整不合理", "text": "公交车线路调整后，站点离小区太远，上下班乘坐公交很不方便", "label": "交通运输"}]
    data = tmp_path / "unseen.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = runner.invoke(cli, ["eval", "classify", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 3 and report["seen_in_training"] == 0 and report["method"].startswith("model ")
    assert set(report) >= {"accuracy", "macro_f1", "per_class", "coverage_curve"}
    assert sum(c["n"] for c in report["per_class"].values()) == 3
    assert "training one" in result.stderr and "labelled.jsonl" in result.stderr
    assert (tmp_path / "models" / "CURRENT").exists()


def test_dispatch_without_a_running_api_says_so_and_exits_2():
    result = runner.invoke(cli, ["dispatch", "manual", "abc123", "--item", "CJ-050", "--api",
                                      "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "cannot reach the api" in result.output
