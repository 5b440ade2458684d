"""Tiny hand-written landing files for the ingest tests (no dependency on the generator)."""
from __future__ import annotations

import json
from pathlib import Path

POS_HEADER = ("order_id,line_no,store_id,paid_at,member_card_no,mobile,sku_id,sku_name,category,quantity,"
              "unit_price,amount,pay_method")
ECOM_HEADER = ("platform,shop_id,order_id,buyer_id,receiver_name,receiver_mobile,province,city,paid_at,sku_id,"
               "sku_name,category,quantity,amount,status,member_card_no")
CRM_HEADER = ("member_card_no,mobile,name,gender,birthday,level,is_paid_member,has_app,join_store_id,registered_at,"
              "marketing_consent,updated_at")


def write(landing: Path, source: str, day: str, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    folder = landing / source / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


# Noisy phones as cashiers type them; all but the last two are the same person 13800138000.
POS_DAY1 = "\n".join([
    POS_HEADER + ",brand_id",
    "P1,1,S01,2026-11-20 10:00:00,M001,138 0013 8000,K1,巨峰葡萄,grape,2,19.90,39.80,wechat,",
    "P1,2,S01,2026-11-20 10:00:00,M001,+86 13800138000,K2,榴莲,durian,1,88.00,88.00,wechat,",
    "P2,1,S02,2026-11-20 23:30:00,,86-13800138000,K1,巨峰葡萄,grape,1,19.90,19.90,cash,B2",
    "P3,1,S02,2026-11-21 09:15:00,,138****8000,K3,黑藤巨峰,grape,1,29.90,-29.90,cash,",
    "P4,1,S01,2026-11-21 09:20:00,, ,K3,黑藤巨峰,grape,1,29.90,29.90,alipay,",
]) + "\n"

ECOM_DAY1 = "\n".join([
    ECOM_HEADER,
    "tmall,TM01,T1001,buyer_a,张伟,138****8000,广东,深圳,2026-11-20 12:00:00,K1,巨峰葡萄,grape,2,39.80,paid,M001",
    "JD,JD01,J2001,buyer_b,李娜,0086 139-0013-9000,北京,北京,2026-11-20 13:00:00,K2,榴莲,durian,1,88.00,refunded,",
    "douyin,DY01,D3001,buyer_c,王芳,,上海,上海,2026-11-20 14:00:00,K3,黑藤巨峰,grape,1,29.90,paid,",
]) + "\n"

# CRM delivered in GBK (encoding configured per source); two versions of M001, the later one wins.
CRM_DAY1 = "\n".join([
    CRM_HEADER,
    "M001,13800138000,张伟,男,1990-05-01,gold,1,1,S01,2025-01-01 09:00:00,1,2026-11-20 08:00:00",
    "M001,13800138000,张伟,男,1990-05-01,platinum,1,1,S01,2025-01-01 09:00:00,0,2026-11-21 08:00:00",
    "M002,139 0013 9000,李娜,F,,silver,0,0,S02,2025-02-01 10:00:00,,2026-11-20 09:00:00",
]) + "\n"

CATALOG_DAY1 = "sku_id,sku_name,category,brand,list_price\nK1,巨峰葡萄,grape,FreshCo,19.90\nK2,榴莲,durian,FreshCo,88\n"
STORES_DAY1 = "store_id,store_name,city,region\nS01,福田店,深圳,South\nS02,朝阳店,北京,North\n"

MINI_DAY1 = [
    {"event_id": "E1", "event_type": "bind_mobile", "event_time": "2026-11-20T10:00:00+08:00", "appid": "wxapp",
     "openid": "o_open_1", "unionid": "u_union_1", "mobile": "+86 138-0013-8000"},
    {"event_id": "E2", "event_type": "order_paid", "event_time": "2026-11-20T02:05:00Z", "appid": "wxapp",
     "openid": "o_open_2", "order_id": "W1", "amount": 59.8, "brand_id": "B2",
     "items": [{"sku_id": "K1", "quantity": 2, "price": 19.9}, {"sku_id": "K3", "quantity": "1", "price": "20"}]},
    # coupon redemptions: coupon_id is trimmed (a full-width space too); a JSON number is kept as its text
    {"event_id": "E3", "event_type": "coupon_redeem", "event_time": "2026-11-20T10:06:00+08:00", "appid": "wxapp",
     "openid": "o_open_2", "order_id": "W1", "coupon_id": "\u3000CP-HTJF-TRIAL "},
    {"event_id": "E4", "event_type": "coupon_redeem", "event_time": "2026-11-20T10:07:00+08:00", "appid": "wxapp",
     "openid": "o_open_2", "coupon_id": 2026},
]

WECOM_DAY1 = [
    {"change_type": "add_external_contact", "event_time": 1795140000,
     "external_contact": {"external_userid": "wm_ext_1", "name": "张伟", "gender": 1, "unionid": "u_union_1"},
     "follow_user": {"userid": "guide_01", "remark_mobiles": ["13800138000", "138****9000", "12345"],
                     "createtime": 1795140000, "tags": [{"group_name": "偏好", "tag_name": "葡萄"}], "state": "S01"}},
    {"change_type": "edit_external_contact", "event_time": "2026-11-21T09:00:00+08:00",
     "external_contact": {"external_userid": "wm_ext_1", "name": "张伟", "gender": 1, "unionid": "u_union_1"},
     "follow_user": {"userid": "guide_01", "remark_mobiles": ["13800138000"],
                     "tags": [{"group_name": "偏好", "tag_name": "榴莲"}], "state": "S01"}},
]
