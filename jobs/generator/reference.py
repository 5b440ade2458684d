"""Static reference data of the sample retail group: names, cities, stores, guides, the fruit catalog.

Everything here is fixed (no randomness), so the catalog and store list are the same for every seed.
"""
from __future__ import annotations

from dataclasses import dataclass

# Common surnames, weighted roughly by frequency (王 李 张 刘 陈 lead in mainland China).
SURNAMES = ("王王王李李李张张张刘刘陈陈杨杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
            "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN_F = ("芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "婷", "雪", "慧", "颖", "琳", "洁", "晶", "倩", "欣怡",
           "思雨", "梓涵", "诗涵", "雨桐", "佳怡", "欣然", "子萱", "梦琪", "雅琪", "晓燕", "丽娟", "秀英", "桂英", "美玲", "海燕")
GIVEN_M = ("伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "华", "飞", "浩然", "子轩",
           "宇航", "俊杰", "浩宇", "志强", "建华", "国庆", "建国", "文博", "天宇", "晨阳", "一鸣", "家豪", "志明", "海涛", "振华")
NICKNAMES = ("Sunny", "Lily", "小鱼儿", "开心果", "Amy", "阳光", "Coco", "糖糖", "Grace", "Kevin", "大熊", "Tony", "果果",
             "静待花开", "知足常乐", "Jessica", "Leo", "风轻云淡", "Mia", "小米", "Vivian", "老王", "Jack", "水果控")
GUIDE_PINYIN = ("zhangli", "wangfang", "liuyang", "chenjing", "yangmin", "huangwei", "zhaolei", "zhoujie", "wuxia",
                "xuqing", "sunhao", "maling", "zhuyan", "hujun", "guoying", "helin")

# Mobile prefixes of the three mainland carriers (China Mobile 139/138/135/136/137/150/151/152/157/158/159/182/
# 183/187/188/198, China Unicom 130/131/132/155/156/185/186/166, China Telecom 133/153/177/180/181/189/199).
MOBILE_PREFIXES = ("139", "138", "137", "136", "135", "150", "151", "152", "158", "159", "182", "187", "188", "198",
                   "130", "131", "132", "155", "156", "185", "186", "166", "133", "153", "177", "180", "181", "189",
                   "199")
# Values cashiers type when a customer gives no phone: never valid identifiers.
PLACEHOLDER_MOBILES = ("13800000000", "00000000000", "11111111111", "13888888888")


@dataclass(frozen=True)
class City:
    name: str
    code: str
    province: str
    region: str
    weight: float
    districts: tuple[str, ...]


CITIES = (
    City("上海", "SH", "上海", "华东", 0.20, ("徐家汇", "静安寺", "五角场", "陆家嘴", "中山公园", "七宝")),
    City("北京", "BJ", "北京", "华北", 0.15, ("望京", "中关村", "国贸", "五道口", "回龙观")),
    City("杭州", "HZ", "浙江", "华东", 0.10, ("西湖", "滨江", "萧山", "城西")),
    City("深圳", "SZ", "广东", "华南", 0.13, ("南山", "福田", "宝安", "龙华", "科技园")),
    City("广州", "GZ", "广东", "华南", 0.09, ("天河", "越秀", "番禺")),
    City("成都", "CD", "四川", "西南", 0.10, ("春熙路", "高新", "武侯", "金牛")),
    City("重庆", "CQ", "重庆", "西南", 0.06, ("解放碑", "观音桥", "沙坪坝")),
    City("南京", "NJ", "江苏", "华东", 0.07, ("新街口", "河西", "仙林")),
    City("武汉", "WH", "湖北", "华中", 0.06, ("光谷", "江汉路", "汉街")),
    City("苏州", "SU", "江苏", "华东", 0.04, ("园区", "观前街")),
)
CITY_BY_NAME = {c.name: c for c in CITIES}
# Cities where the second brand of the group also runs stores (one-code-two-memberships happens there).
SECOND_BRAND_CITIES = ("上海", "杭州", "深圳", "成都")
SECOND_BRAND_STORE_NAMES = {"fresh": "鲜果社", }


@dataclass(frozen=True)
class Store:
    store_id: str
    store_name: str
    city: str
    region: str
    brand_id: str
    phone: str          # the store manager's mobile, typed by some cashiers for walk-in customers
    guides: tuple[str, ...]
    lazy_cashier: bool  # this store's cashiers type the store phone for customers who give none


def store_phone_for(number: int) -> str:
    """The store manager's mobile: prefix 173 is never given to persons, so it cannot collide with theirs."""
    return f"173{(number * 61_185_367 + 40_000_000) % 100_000_000:08d}"


def build_stores(brands: tuple[str, ...]) -> tuple[Store, ...]:
    """Every district of every city gets a store of the first brand; later brands only in a few cities."""
    stores: list[Store] = []
    number = 0
    for b, brand in enumerate(brands):
        label = "果园" if b == 0 else SECOND_BRAND_STORE_NAMES.get(brand, brand)
        for city in CITIES:
            if b > 0 and city.name not in SECOND_BRAND_CITIES:
                continue
            districts = city.districts if b == 0 else city.districts[:2]
            for d, district in enumerate(districts):
                number += 1
                store_id = f"{city.code}{b + 1}{d + 1:02d}"
                guides = tuple(f"{GUIDE_PINYIN[(number * 3 + g) % len(GUIDE_PINYIN)]}{number:03d}" for g in range(2))
                stores.append(Store(store_id=store_id, store_name=f"{label}{city.name}{district}店", city=city.name,
                                    region=city.region, brand_id=brand, phone=store_phone_for(number),
                                    guides=guides, lazy_cashier=(number % 9 == 4)))
    return tuple(stores)


@dataclass(frozen=True)
class Sku:
    sku_id: str
    sku_name: str
    category: str
    brand: str
    list_price: float
    unit: str  # kg (sold by weight) or a pack unit


# Premium own-brand line of the group.
PREMIUM_BRAND = "熊猫大鲜"
KYOHO_SKU = "S20101"          # 巨峰葡萄
BLACK_KYOHO_SKU = "S20102"    # 黑藤巨峰
DURIAN_CATEGORY = "榴莲"

CATALOG = (
    Sku("S10101", "金枕榴莲", "榴莲", "泰国进口", 39.80, "kg"),
    Sku("S10102", "猫山王榴莲", "榴莲", "马来西亚进口", 89.00, "kg"),
    Sku("S10103", "榴莲肉盒装 300g", "榴莲", "自营", 59.90, "盒"),
    Sku("S10104", "熊猫大鲜 金枕榴莲 A级", "榴莲", PREMIUM_BRAND, 49.80, "kg"),
    Sku(KYOHO_SKU, "巨峰葡萄", "葡萄", "自营", 16.80, "kg"),
    Sku(BLACK_KYOHO_SKU, "黑藤巨峰", "葡萄", "自营", 29.80, "kg"),
    Sku("S20103", "阳光玫瑰葡萄", "葡萄", "自营", 39.80, "kg"),
    Sku("S20104", "熊猫大鲜 阳光玫瑰 精品盒", "葡萄", PREMIUM_BRAND, 69.90, "盒"),
    Sku("S20105", "夏黑葡萄", "葡萄", "自营", 19.80, "kg"),
    Sku("S30101", "智利车厘子 JJ级", "樱桃", "智利进口", 119.00, "kg"),
    Sku("S30102", "熊猫大鲜 车厘子 JJJ级 礼盒", "樱桃", PREMIUM_BRAND, 199.00, "盒"),
    Sku("S30103", "大连美早樱桃", "樱桃", "自营", 79.80, "kg"),
    Sku("S40101", "海南贵妃芒", "芒果", "自营", 19.90, "kg"),
    Sku("S40102", "澳芒", "芒果", "澳大利亚进口", 39.80, "kg"),
    Sku("S40103", "熊猫大鲜 台农芒 精选", "芒果", PREMIUM_BRAND, 29.90, "kg"),
    Sku("S50101", "赣南脐橙", "柑橘", "自营", 9.90, "kg"),
    Sku("S50102", "沃柑", "柑橘", "自营", 12.80, "kg"),
    Sku("S50103", "熊猫大鲜 爱媛38号果冻橙", "柑橘", PREMIUM_BRAND, 25.80, "kg"),
    Sku("S60101", "烟台红富士苹果", "苹果", "自营", 12.80, "kg"),
    Sku("S60102", "阿克苏冰糖心苹果", "苹果", "自营", 15.80, "kg"),
    Sku("S70101", "佳沛阳光金果", "猕猴桃", "佳沛", 9.90, "个"),
    Sku("S70102", "徐香猕猴桃", "猕猴桃", "自营", 13.80, "kg"),
    Sku("S80101", "丹东草莓", "莓果", "自营", 59.80, "盒"),
    Sku("S80102", "云南蓝莓 125g", "莓果", "自营", 19.90, "盒"),
    Sku("S80103", "熊猫大鲜 蓝莓 大果 125g", "莓果", PREMIUM_BRAND, 29.90, "盒"),
    Sku("S90101", "都乐香蕉", "香蕉", "都乐", 7.98, "kg"),
    Sku("S90201", "麒麟西瓜", "瓜类", "自营", 4.98, "kg"),
    Sku("S90202", "海南哈密瓜", "瓜类", "自营", 11.80, "kg"),
    Sku("S90301", "鲜切果盒 混合", "果切", "自营", 25.90, "盒"),
    Sku("S90302", "熊猫大鲜 鲜切榴莲肉盒", "果切", PREMIUM_BRAND, 45.90, "盒"),
)
SKU_BY_ID = {s.sku_id: s for s in CATALOG}
CATEGORIES = tuple(dict.fromkeys(s.category for s in CATALOG))
# Base share of each category in baskets (before personal preferences).
CATEGORY_WEIGHTS = {"榴莲": 0.06, "葡萄": 0.12, "樱桃": 0.06, "芒果": 0.09, "柑橘": 0.13, "苹果": 0.12, "猕猴桃": 0.07,
                    "莓果": 0.08, "香蕉": 0.12, "瓜类": 0.08, "果切": 0.07}

LEVELS = ("普通会员", "银卡会员", "金卡会员", "钻石会员")
PAY_METHODS = (("wechat_pay", 0.55), ("alipay", 0.30), ("bank_card", 0.05), ("cash", 0.05), ("stored_value", 0.05))
PLATFORMS = ("tmall", "jd", "douyin")
GUIDE_TAGS = {
    "durian": ("偏好", "爱吃榴莲"),
    "grape": ("偏好", "葡萄控"),
    "premium": ("偏好", "高端礼盒"),
    "vip": ("客户等级", "重要客户"),
    "normal": ("客户等级", "普通客户"),
    "family": ("家庭", "有孩子"),
}
