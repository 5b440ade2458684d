"""Per-person simulation: one person at a time, every record they leave in every source, plus their truth.

Each person has their own `random.Random(seed * 2**32 + index)`, so a person's behaviour does not depend on who was
generated before them; the only shared state is the id counters (orders, events), which advance in person order
and are therefore deterministic too. Rows go to the `Stager` (bounded memory); truth rows are streamed to the
`_truth/` files as each person finishes, so nothing grows with the number of persons.

Steps per person:
 1. attributes: name, gender, birthday, city, home store, behaviour pattern, phone(s), family, preferences;
 2. memberships per brand (card, level, paid, consent, app) and the CRM snapshot/change rows;
 3. purchase days from the behaviour pattern, each an order in one channel (POS, mini-program, e-commerce),
    with POS returns and e-commerce refunds;
 4. mini-program browsing sessions and mobile binding;
 5. WeCom contact changes when a store guide adds the person;
 6. truth: the records written (valid rows only), the orders, and the person's attributes and purchase facts.
"""
from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cdp.generator import ids
from cdp.generator.options import GeneratorOptions
from cdp.generator.reference import (
    BLACK_KYOHO_SKU, CATALOG, CATEGORY_WEIGHTS, CITIES, DURIAN_CATEGORY, GIVEN_F, GIVEN_M, GUIDE_TAGS, KYOHO_SKU,
    LEVELS, NICKNAMES, PAY_METHODS, PLACEHOLDER_MOBILES, PLATFORMS, PREMIUM_BRAND, SECOND_BRAND_CITIES, SURNAMES,
    Sku, Store, build_stores,
)
from cdp.generator.writer import Stager, csv_line

POS_COLUMNS = ("order_id", "line_no", "store_id", "paid_at", "member_card_no", "mobile", "sku_id", "sku_name",
               "category", "quantity", "unit_price", "amount", "pay_method", "brand_id")
ECOMMERCE_COLUMNS = ("platform", "shop_id", "order_id", "buyer_id", "receiver_name", "receiver_mobile", "province",
                     "city", "paid_at", "sku_id", "sku_name", "category", "quantity", "amount", "status",
                     "member_card_no", "brand_id")
CRM_COLUMNS = ("member_card_no", "mobile", "name", "gender", "birthday", "level", "is_paid_member", "has_app",
               "join_store_id", "registered_at", "marketing_consent", "updated_at", "brand_id")
CATALOG_COLUMNS = ("sku_id", "sku_name", "category", "brand", "list_price", "unit")
STORES_COLUMNS = ("store_id", "store_name", "city", "region", "brand_id", "phone")

BEHAVIOURS = (("regular", 0.12), ("occasional", 0.38), ("churner", 0.15), ("returner", 0.08), ("one_time", 0.12),
              ("prospect", 0.15))
_BEHAVIOUR_NAMES = tuple(b for b, _ in BEHAVIOURS)
_BEHAVIOUR_CUM = tuple(itertools.accumulate(w for _, w in BEHAVIOURS))
# Orders per week while active.
_RATE = {"regular": (1.0, 2.5), "occasional": (0.08, 0.3), "churner": (0.4, 1.2), "returner": (0.3, 0.8)}
_MEMBER_P = {"regular": 0.9, "occasional": 0.55, "churner": 0.6, "returner": 0.65, "one_time": 0.2, "prospect": 0.45}
_HOUR_W = (0, 0, 0, 0, 0, 0, 0, 1, 3, 4, 5, 7, 7, 4, 3, 3, 5, 8, 10, 9, 7, 4, 2, 0)
_HOUR_CUM = tuple(itertools.accumulate(_HOUR_W))
_PAY_CUM = tuple(itertools.accumulate(w for _, w in PAY_METHODS))
_CITY_CUM = tuple(itertools.accumulate(c.weight for c in CITIES))
_BASKET_CUM = tuple(itertools.accumulate((0.45, 0.30, 0.17, 0.08)))
_PHONE_FORMATS = ("fmt_space", "fmt_plus86", "fmt_86dash")
CORRUPT_KINDS = {"pos": ("wrong_column_count", "bad_date", "bad_amount"), "ecommerce": ("bad_amount",),
                 "miniprogram": ("broken_json",)}
_EPOCH = dt.date(1970, 1, 1)
# Seasonal demand per month (1.0 = average; 2.0 = peak): Chilean cherries around the Spring Festival, domestic
# cherries in May-June, Thai durian in May-August, grapes in July-October, citrus in winter, mangos in summer.
_SEASONS = {"樱桃": {1: 2.0, 2: 1.8, 5: 1.3, 6: 1.3, 12: 2.0}, "榴莲": {5: 1.6, 6: 1.8, 7: 1.8, 8: 1.5},
            "葡萄": {7: 1.6, 8: 1.9, 9: 1.9, 10: 1.5}, "柑橘": {11: 1.6, 12: 1.9, 1: 1.9, 2: 1.5, 3: 1.2},
            "芒果": {4: 1.3, 5: 1.6, 6: 1.8, 7: 1.6, 8: 1.3}, "莓果": {12: 1.5, 1: 1.8, 2: 1.8, 3: 1.5}}
_OFF_SEASON = {"樱桃": 0.5, "榴莲": 0.8, "葡萄": 0.6, "柑橘": 0.7, "芒果": 0.6, "莓果": 0.8}
SEASON_FACTORS = {m: {c: peaks.get(m, _OFF_SEASON[c]) for c, peaks in _SEASONS.items()} for m in range(1, 13)}
_TZ_OFFSET_S = 8 * 3600  # Asia/Shanghai has been UTC+8 without DST since 1991


def fmt_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def format_phone(mobile: str, style: str) -> str:
    """How cashiers and guides type a phone: '138 0013 8000', '+86 13800138000', '86-13800138000'."""
    if style == "fmt_space":
        return f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"
    if style == "fmt_plus86":
        return f"+86 {mobile}"
    return f"86-{mobile}"


def mask_phone(mobile: str) -> str:
    return f"{mobile[:3]}****{mobile[-4:]}"


def mask_name(name: str) -> str:
    return name[0] + "*" * (len(name) - 1)


@dataclass
class Membership:
    brand_id: str
    brand_no: int
    card: str
    level: str
    is_paid: bool
    consent: bool
    registered_day: int          # negative: before the window
    registered_at: str
    join_store: str
    has_app: bool                # at the end of the window
    app_day: int | None          # day the app was adopted inside the window (None: before the window)
    crm_mobile: str
    changes: list[tuple[int, str, Any]] = field(default_factory=list)


@dataclass
class Facts:
    orders_total: int = 0
    orders: Counter = field(default_factory=Counter)       # per channel
    orders_brand: Counter = field(default_factory=Counter)
    spend_cents: int = 0
    first_day: int | None = None
    last_day: int | None = None
    durian: int = 0
    kyoho: int = 0
    black_kyoho: int = 0
    premium: int = 0
    anonymous_pos: int = 0
    phone_noise: Counter = field(default_factory=Counter)  # valid POS orders (incl. returns) by phone noise
    placeholder_crm: int = 0
    corrupt: int = 0


class Simulation:
    """Holds the group's static world and the id counters; `person(i)` simulates one person."""

    def __init__(self, opts: GeneratorOptions, stager: Stager, truth: dict[str, Any]) -> None:
        self.o = opts
        self.noise = opts.noise
        self.seed = opts.seed
        self.days = opts.days
        self.stager = stager
        self.truth = truth  # csv writers: records, persons, orders
        self.brands = opts.brands
        self.stores: tuple[Store, ...] = build_stores(opts.brands)
        if self.noise.store_phone <= 0:
            self.stores = tuple(Store(**{**s.__dict__, "lazy_cashier": False}) for s in self.stores)
        self.stores_by = {}
        for s in self.stores:
            self.stores_by.setdefault((s.brand_id, s.city), []).append(s)
        self.store_no = {s.store_id: n + 1 for n, s in enumerate(self.stores)}
        self.appids = {b: ids.appid_for(self.seed, k) for k, b in enumerate(self.brands)}
        self.shops = {}
        for k, b in enumerate(self.brands):
            for p, platform in enumerate(PLATFORMS):
                if k == 0 or platform != "jd":
                    self.shops[(b, platform)] = f"{platform[:2].upper()}{100200 + k * 10 + p}"
        start = opts.start_date
        self.date_text = [(start + dt.timedelta(days=d)).isoformat() for d in range(self.days)]
        self.date_compact = [t.replace("-", "") for t in self.date_text]
        self.start_ordinal = start.toordinal()
        self.month = [(start + dt.timedelta(days=d)).month for d in range(self.days)]
        self.counters = Counter()
        self.stats = Counter()
        n = self.noise
        self.pending = set()
        if n.corrupt_rows > 0:
            self.pending |= {f"{src}:{k}" for src, kinds in CORRUPT_KINDS.items() for k in kinds}
        if n.phone_format > 0:
            self.pending |= set(_PHONE_FORMATS)
        for kind in ("placeholder_phone", "never_gives_phone", "no_unionid", "phone_change", "store_phone"):
            if getattr(n, kind) > 0:
                self.pending.add(kind)
        self.family_block_p = min(1.0, n.family_phone * 4 / 2.5)

    # ---- small helpers -------------------------------------------------------------------------------------
    def day_text(self, day: int) -> str:
        if 0 <= day < self.days:
            return self.date_text[day]
        return dt.date.fromordinal(self.start_ordinal + day).isoformat()

    def stamp(self, day: int, secs: int) -> str:
        return f"{self.day_text(day)} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"

    def iso(self, day: int, secs: int) -> str:
        return f"{self.day_text(day)}T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}+08:00"

    def epoch(self, day: int, secs: int) -> int:
        return (self.start_ordinal + day - _EPOCH.toordinal()) * 86400 + secs - _TZ_OFFSET_S

    @staticmethod
    def time_of_day(rng: random.Random) -> int:
        hour = bisect.bisect_right(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
        return hour * 3600 + rng.randrange(3600)

    def take(self, kind: str) -> bool:
        """Consume a forced noise occurrence (so every kind shows up even for tiny N)."""
        if kind in self.pending:
            self.pending.discard(kind)
            return True
        return False

    def next_id(self, name: str) -> int:
        value = self.counters[name]
        self.counters[name] = value + 1
        return value

    def family_of(self, i: int) -> tuple[str, int, int] | None:
        """(family_id, head index, size) when person `i` shares a phone with family, else None."""
        if self.noise.family_phone <= 0:
            return None
        block = i // 4
        forced = block == 1
        if not forced:
            h = hashlib.blake2b(f"{self.seed}|family|{block}".encode(), digest_size=8).digest()
            if int.from_bytes(h, "big") / 2 ** 64 >= self.family_block_p:
                return None
        size = min(2 + block % 2, self.o.customers - 4 * block)
        if size < 2 or i % 4 >= size:
            return None
        return f"F{block:07d}", 4 * block, size

    def corrupt(self, rng: random.Random, source: str, can_force: bool = True) -> str:
        """The kind of corruption of the next row ('' = none). Forced occurrences (one per kind, so that tiny
        datasets show every kind) only hit rows whose loss leaves the record in the data (`can_force`)."""
        rate = self.noise.corrupt_rows
        if rate <= 0:
            return ""
        for kind in CORRUPT_KINDS[source] if can_force else ():
            if self.take(f"{source}:{kind}"):
                return kind
        if rng.random() < rate:
            return rng.choice(CORRUPT_KINDS[source])
        return ""

    # ---- one person --------------------------------------------------------------------------------------------
    def person(self, i: int) -> None:
        o, n, days = self.o, self.noise, self.days
        rng = random.Random(self.seed * 4_294_967_296 + i)
        pid = f"P{i + 1:08d}"
        p = _Person(pid=pid, index=i)
        p.gender, surname, given, p.birthday, city = _base_draws(rng)
        p.name = surname + given
        p.behaviour = _BEHAVIOUR_NAMES[bisect.bisect_right(_BEHAVIOUR_CUM, rng.random() * _BEHAVIOUR_CUM[-1])]
        buys = p.behaviour != "prospect"

        # identity: own phone, family phone, phone change
        family = self.family_of(i)
        if family:  # a household: the head's phone and city, often the head's surname
            p.family_id, head, _size = family
            p.mobile = ids.mobile_for(head)
            if head != i:  # replay the head's first draws (same seed) to get their surname and city
                _g, head_surname, _n, _b, city = _base_draws(random.Random(self.seed * 4_294_967_296 + head))
                if rng.random() < 0.6:
                    p.name = head_surname + given
            self.stats["family_phone_persons"] += 1
        else:
            p.mobile = ids.mobile_for(i)
        p.city = city.name
        p.province = city.province
        p.never_gives_phone = buys and (rng.random() < n.never_gives_phone or self.take("never_gives_phone"))
        p.has_unionid = not (rng.random() < n.no_unionid)

        # brands shopped and memberships
        p.brands = [self.brands[0]] + [b for b in self.brands[1:] if p.city in SECOND_BRAND_CITIES
                                        and rng.random() < 0.45]
        p.home = {b: rng.choice(self.stores_by[(b, p.city)]) for b in p.brands}
        p.members = {}
        for b in p.brands:
            k = self.brands.index(b)
            p_member = _MEMBER_P[p.behaviour] if k == 0 else 0.6
            if rng.random() < p_member:
                p.members[b] = self.membership(rng, p, b, k)
            elif rng.random() < 0.06:  # browses the mini-program without a card
                p.app[b] = None if rng.random() < 0.7 else rng.randrange(days)
        for b, m in p.members.items():
            if m.has_app:
                p.app[b] = m.app_day
        if p.app and not p.has_unionid:
            self.stats["no_unionid_persons"] += 1
        elif p.app and self.take("no_unionid"):
            p.has_unionid = False
            self.stats["no_unionid_persons"] += 1
        if (not family and buys and self.brands[0] in p.members and days >= 10
                and (rng.random() < n.phone_change or self.take("phone_change"))):
            p.change_day = rng.randint(int(days * 0.2), int(days * 0.8))
            p.new_mobile = ids.mobile_for(o.customers + i)
            self.stats["phone_change_persons"] += 1
            for m in p.members.values():
                if m.registered_day < p.change_day:
                    m.changes.append((p.change_day, "mobile", p.new_mobile))
                elif m.crm_mobile == p.mobile:  # joined after the change: registered with the new number
                    m.crm_mobile = p.new_mobile
        p.uses_ecommerce = buys and rng.random() < 0.22
        if p.uses_ecommerce:
            p.platforms = sorted(rng.sample(PLATFORMS, rng.choice((1, 1, 2))))
        self.preferences(rng, p)

        # the records
        for m in p.members.values():
            self.crm_rows(rng, p, m)
        for d in self.purchase_days(rng, p):
            self.order(rng, p, d)
        self.app_sessions(rng, p)
        self.wecom(rng, p)
        self.write_truth(p)

    def membership(self, rng: random.Random, p: _Person, brand: str, k: int) -> Membership:
        days = self.days
        pre = rng.random() < 0.8
        reg_day = -rng.randint(1, 1500) if pre else rng.randrange(days)
        regular = p.behaviour == "regular"
        level = LEVELS[min(3, int(rng.random() * (4 if regular else 2.2)) + (1 if regular else 0))]
        is_paid = rng.random() < (0.35 if regular else 0.08)
        consent = rng.random() < 0.7
        has_app = rng.random() < (0.65 if regular else 0.45)
        app_day = None
        if has_app and (not pre or rng.random() < 0.25):
            app_day = rng.randint(max(0, reg_day), days - 1)
        crm_mobile = p.mobile
        if rng.random() < self.noise.placeholder_phone * 0.6:
            crm_mobile = rng.choice(PLACEHOLDER_MOBILES)
            p.facts.placeholder_crm = 1
            self.stats["placeholder_phone_crm"] += 1
        m = Membership(brand_id=brand, brand_no=k, card=ids.card_for(k, p.index), level=level, is_paid=is_paid,
                       consent=consent, registered_day=reg_day,
                       registered_at=self.stamp(reg_day, self.time_of_day(rng)), join_store=p.home[brand].store_id,
                       has_app=has_app, app_day=app_day, crm_mobile=crm_mobile)
        lo = max(0, reg_day + 1)
        if app_day is not None and app_day > reg_day:
            m.changes.append((app_day, "has_app", True))
        if lo < days:
            if rng.random() < 0.10 and level != LEVELS[-1]:
                m.changes.append((rng.randint(lo, days - 1), "level", LEVELS[LEVELS.index(level) + 1]))
            if is_paid and rng.random() < 0.2:
                m.changes.append((rng.randint(lo, days - 1), "is_paid", True))
            if consent and rng.random() < 0.06:
                m.changes.append((rng.randint(lo, days - 1), "consent", False))
        return m

    def preferences(self, rng: random.Random, p: _Person) -> None:
        r = rng.random()
        durian = 6.0 if r < 0.18 else (1.0 if r < 0.6 else 0.0)
        p.likes_durian = durian > 1
        r = rng.random()
        if r < 0.25:
            kyoho, black = 5.0, (0.0 if rng.random() < 0.6 else 0.5)
        elif r < 0.35:
            kyoho, black = 0.5, 4.0
        elif r < 0.55:
            kyoho, black = 0.0, 0.0
        else:
            kyoho, black = 1.0, 0.4
        p.grape_fan = kyoho >= 4 or black >= 4
        premium = 0.0 if rng.random() < 0.45 else rng.uniform(0.2, 1.5)
        weights = []
        for sku in CATALOG:
            w = CATEGORY_WEIGHTS[sku.category]
            if sku.category == DURIAN_CATEGORY or "榴莲" in sku.sku_name:
                w *= durian
            if sku.sku_id == KYOHO_SKU:
                w *= kyoho
            elif sku.sku_id == BLACK_KYOHO_SKU:
                w *= black
            elif sku.category == "葡萄" and kyoho == 0 and black == 0:
                w *= 0.3
            if sku.brand == PREMIUM_BRAND:
                w *= premium
            weights.append(w)
        p.sku_cum = tuple(itertools.accumulate(weights))

    def purchase_days(self, rng: random.Random, p: _Person) -> list[int]:
        days = self.days
        if p.behaviour == "prospect":
            return []
        if p.behaviour == "one_time":
            return [rng.randrange(days)]
        lo, hi = _RATE[p.behaviour]
        rate = rng.uniform(lo, hi) / 7.0
        if p.behaviour == "churner":
            periods = [(0, max(1, int(days * rng.uniform(0.15, 0.6))))]
        elif p.behaviour == "returner":
            first = max(1, int(days * 0.15))
            back = first + 90 if days >= first + 100 else first + int(days * 0.6)
            periods = [(0, first)] + ([(back, days)] if back < days else [])
        else:
            periods = [(0, days)]
        out = []
        for start, end in periods:
            found = []
            t = start + rng.expovariate(rate)
            while t < end:
                found.append(int(t))
                t += rng.expovariate(rate)
            if not found and p.behaviour != "occasional":
                found.append(rng.randrange(start, end))
            out.extend(found)
        if not out:
            out.append(rng.randrange(days))
        return out

    def basket(self, rng: random.Random, p: _Person, d: int, online: bool, discount: int = 100
               ) -> list[tuple[Sku, str, int, int]]:
        """[(sku, quantity text, unit price cents, amount cents)], distinct skus; `discount` in percent of list.

        Seasons: an off-season pick is kept with probability factor/2 and otherwise drawn again once."""
        k = bisect.bisect_right(_BASKET_CUM, rng.random() * _BASKET_CUM[-1]) + 1
        picks = rng.choices(CATALOG, cum_weights=p.sku_cum, k=k)
        season = SEASON_FACTORS[self.month[d]]
        for n, sku in enumerate(picks):
            factor = season.get(sku.category, 1.0)
            if factor < 2.0 and rng.random() * 2.0 > factor:
                picks[n] = rng.choices(CATALOG, cum_weights=p.sku_cum)[0]
        chosen = dict.fromkeys(picks)
        lines = []
        for sku in chosen:
            price = round(sku.list_price * discount)
            if sku.unit == "kg" and not online:
                grams = rng.randint(1500, 4500) if sku.category == DURIAN_CATEGORY else rng.randint(350, 2600)
                qty_text = f"{grams / 1000:.3f}"
                amount = round(price * grams / 1000)
            else:
                qty = rng.choice((1, 1, 1, 2, 2, 3))
                qty_text = str(qty)
                amount = price * qty
            lines.append((sku, qty_text, price, amount))
        return lines

    # ---- sources ----------------------------------------------------------------------------------------------
    def crm_rows(self, rng: random.Random, p: _Person, m: Membership) -> None:
        state = {"mobile": m.crm_mobile, "level": m.level, "is_paid": m.is_paid, "consent": m.consent,
                 "has_app": m.has_app and (m.app_day is None or m.app_day <= m.registered_day)}
        timeline = sorted(m.changes, key=lambda c: c[0])
        # the state before the window = the state minus every change inside the window
        for _day, fld, _value in timeline:
            if fld == "level":
                state["level"] = m.level
            elif fld == "is_paid":
                state["is_paid"] = False
            elif fld == "consent":
                state["consent"] = True
            elif fld == "mobile":
                state["mobile"] = m.crm_mobile
        if m.crm_mobile != p.mobile:  # placeholder typed in the CRM: later phone changes keep it
            timeline = [c for c in timeline if c[1] != "mobile"]
        gender = {"F": "女", "M": "男"}[p.gender] if rng.random() < 0.95 else ""
        birthday = p.birthday.isoformat() if rng.random() < 0.8 else ""

        previous = [(-10 ** 9, 0)]

        def emit(day: int, secs: int) -> None:
            # versions of one card never share an updated_at (the contract's version key) and keep their order
            if (day, secs) <= previous[0]:
                secs = min(86_399, previous[0][1] + 1)
            previous[0] = (day, secs)
            row = (m.card, state["mobile"], p.name, gender, birthday, state["level"],
                   _b(state["is_paid"]), _b(state["has_app"]), m.join_store, m.registered_at,
                   _b(state["consent"]), self.stamp(day, secs), m.brand_id)
            file_day = max(0, day)
            self.stager.add("crm", file_day, f"{secs:05d}{m.card}{day + 100000:06d}", csv_line(row))

        if m.registered_day < 0:
            last = rng.randint(m.registered_day, -1)
            emit(last, self.time_of_day(rng))  # lands in the day-0 full snapshot
        else:
            emit(m.registered_day, int(m.registered_at[-8:-6]) * 3600 + int(m.registered_at[-5:-3]) * 60
                 + int(m.registered_at[-2:]))
        for day, fld, value in timeline:
            if day <= m.registered_day:
                continue
            if fld == "level":
                state["level"] = value
            elif fld == "is_paid":
                state["is_paid"] = True
            elif fld == "consent":
                state["consent"] = False
            elif fld == "mobile":
                state["mobile"] = value
            elif fld == "has_app":
                state["has_app"] = True
            emit(day, self.time_of_day(rng))
        final_level = state["level"]
        m.level, m.is_paid, m.consent = final_level, state["is_paid"], state["consent"]
        p.records.setdefault(("crm", m.card), True)

    def typed_mobile(self, rng: random.Random, p: _Person, day: int) -> str:
        """A personal phone as typed by a person at a till or by a guide, with the noise of the typing."""
        mobile = p.mobile_on(day)
        if rng.random() < self.noise.phone_format:
            style = rng.choice(_PHONE_FORMATS)
        else:
            style = next((s for s in _PHONE_FORMATS if self.take(s)), None)
        if style:
            self.stats["formatted_phones"] += 1
            return format_phone(mobile, style)
        return mobile

    def order(self, rng: random.Random, p: _Person, d: int) -> None:
        choices = [("pos", 0.72)]
        app_brands = [b for b, a in p.app.items() if a is None or a <= d]
        if app_brands:
            choices.append(("miniprogram", 0.22))
        if p.uses_ecommerce:
            choices.append(("ecommerce", 0.16))
        total = sum(w for _, w in choices)
        r, channel = rng.random() * total, choices[-1][0]
        for name, w in choices:
            if r < w:
                channel = name
                break
            r -= w
        if channel == "pos":
            brand = p.brands[0] if len(p.brands) == 1 or rng.random() < 0.65 else rng.choice(p.brands[1:])
            self.pos_order(rng, p, d, brand)
        elif channel == "miniprogram":
            self.mini_order(rng, p, d, rng.choice(app_brands))
        else:
            self.ecommerce_order(rng, p, d)

    def pos_order(self, rng: random.Random, p: _Person, d: int, brand: str) -> None:
        n = self.noise
        store = p.home[brand] if rng.random() < 0.8 else rng.choice(self.stores_by[(brand, p.city)])
        m = p.members.get(brand)
        card = m.card if m and m.registered_day <= d and rng.random() < 0.85 else ""
        gives_phone = not p.never_gives_phone and rng.random() < (0.15 if card else 1 - n.skips_phone)
        mobile, anonymous, phone_noise = "", not card and not gives_phone, ""
        if gives_phone:
            if rng.random() < n.placeholder_phone or self.take("placeholder_phone"):
                mobile = rng.choice(PLACEHOLDER_MOBILES)
                phone_noise = "placeholder"
                self.stats["placeholder_phone_pos"] += 1
                anonymous = not card
            else:
                mobile = self.typed_mobile(rng, p, d)
                phone_noise = "formatted" if mobile != p.mobile_on(d) else ""
        elif anonymous and n.store_phone > 0:
            lazy = [s for s in self.stores_by[(brand, p.city)] if s.lazy_cashier]
            forced = lazy and self.take("store_phone")
            if forced:
                store = lazy[0]
            if store.lazy_cashier and (forced or rng.random() < n.store_phone):
                mobile = store.phone
                phone_noise = "store_phone"
                self.stats["store_phone_orders"] += 1
        secs = self.time_of_day(rng)
        pay = PAY_METHODS[bisect.bisect_right(_PAY_CUM, rng.random() * _PAY_CUM[-1])][0]
        if pay == "stored_value" and not card:
            pay = "wechat_pay"
        lines = self.basket(rng, p, d, online=False, discount=90 if m and m.is_paid else 100)  # paid members: -10%
        order_id = f"{self.date_compact[d]}{self.store_no[store.store_id]:03d}" \
                   f"{ids.permute(self.next_id('pos'), 10 ** 8):08d}"
        valid = self.write_pos_lines(rng, p, d, secs, order_id, store, card, mobile, pay, lines, sign=1)
        if valid:
            p.records[("pos", order_id)] = True
            self.record_order(p, "pos", order_id, order_id, d, brand, store.store_id, valid, anonymous=anonymous)
            p.facts.phone_noise[phone_noise] += 1
        if valid and rng.random() < 0.015 and d + 3 < self.days:  # a return a few days later
            back = d + rng.randint(0, 3)
            sku, qty, price, amount = rng.choice(valid)
            ret_id = f"{self.date_compact[back]}{self.store_no[store.store_id]:03d}" \
                     f"{ids.permute(self.next_id('pos'), 10 ** 8):08d}"
            ret = self.write_pos_lines(rng, p, back, self.time_of_day(rng), ret_id, store, card, mobile, pay,
                                       [(sku, qty, price, amount)], sign=-1)
            if ret:
                p.records[("pos", ret_id)] = True
                self.record_order(p, "pos", ret_id, ret_id, back, brand, store.store_id, ret, anonymous=anonymous,
                                  is_return=True)

    def write_pos_lines(self, rng, p, d, secs, order_id, store, card, mobile, pay, lines, sign):
        valid = []
        stamp = self.stamp(d, secs)
        for line_no, (sku, qty, price, amount) in enumerate(lines, start=1):
            qty_text = qty  # the contract: a return has a negative amount, its quantity stays positive
            row = [order_id, str(line_no), store.store_id, stamp, card, mobile, sku.sku_id, sku.sku_name,
                   sku.category, qty_text, fmt_cents(price), fmt_cents(sign * amount), pay, store.brand_id]
            kind = self.corrupt(rng, "pos", can_force=line_no > 1)
            if kind == "bad_date":
                row[3] = rng.choice((f"{stamp[:8]}32{stamp[10:]}", stamp[11:], stamp.replace("-", "/")[:16] + "PM"))
            elif kind == "bad_amount":
                row[11] = rng.choice(("N/A", "#VALUE!", "￥" + row[11]))
            payload = csv_line(row)
            if kind == "wrong_column_count":  # a comma inside the product name, unquoted by the till software
                payload = payload.replace(f",{sku.sku_name},", f",{sku.sku_name},特价,", 1)
            key = f"{secs:05d}{order_id}{line_no:03d}"
            if kind:
                self.stats[f"corrupt_pos_{kind}"] += 1
                p.facts.corrupt += 1
                self.stager.add("pos", d, key, payload, kind, order_id, p.pid)
            else:
                self.stager.add("pos", d, key, payload)
                valid.append((sku, qty, price, sign * amount))
        return valid

    def record_order(self, p, source, record_id, order_id, d, brand, where, valid, anonymous=False,
                     is_return=False):
        """Book one written order in `_truth/orders.csv` and in the person's facts; only `valid` lines count
        (corrupt and refunded lines do not)."""
        net, durian, kyoho, black, premium = 0, False, False, False, False
        for sku, _q, _p, amount in valid:
            net += amount
            durian = durian or sku.category == DURIAN_CATEGORY
            kyoho = kyoho or sku.sku_id == KYOHO_SKU
            black = black or sku.sku_id == BLACK_KYOHO_SKU
            premium = premium or sku.brand == PREMIUM_BRAND
        is_purchase = bool(valid) and not is_return and net > 0
        f = p.facts
        f.spend_cents += net
        if is_purchase:
            f.orders_total += 1
            f.orders[source] += 1
            f.orders_brand[brand] += 1
            f.first_day = d if f.first_day is None else min(f.first_day, d)
            f.last_day = d if f.last_day is None else max(f.last_day, d)
            f.durian += durian
            f.kyoho += kyoho
            f.black_kyoho += black
            f.premium += premium
            f.anonymous_pos += anonymous
        self.truth["orders"].writerow((source, record_id, order_id, p.pid, brand, self.date_text[d], where,
                                       _i(is_purchase), _i(is_return), fmt_cents(net), _i(durian), _i(kyoho),
                                       _i(black), _i(premium), _i(anonymous)))

    def mini_event(self, rng, p, brand, d, secs, event_type, extra, corruptible=False):
        appid = self.appids[brand]
        event_id = f"ev{ids.permute(self.next_id('event'), 2 ** 64, 0x9E3779B97F4A7C15, 7):016x}"
        openid = p.openids.get(appid) or p.openids.setdefault(appid, ids.openid_for(self.seed, appid, p.index))
        event = {"event_id": event_id, "event_type": event_type, "event_time": self.iso(d, secs), "appid": appid,
                 "openid": openid}
        if p.has_unionid:
            event["unionid"] = p.unionid or ids.unionid_for(self.seed, p.index)
            p.unionid = event["unionid"]
        m = p.members.get(brand)
        if m and m.registered_day <= d and event_type in ("app_login", "order_paid", "bind_mobile", "coupon_redeem"):
            event["member_card_no"] = m.card
        event.update(extra)
        event["brand_id"] = brand
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        payload = payload.replace('"@@', "").replace('@@"', "")
        kind = self.corrupt(rng, "miniprogram") if corruptible else ""
        key = f"{secs:05d}{event_id}"
        if kind:
            payload = payload[: len(payload) // 2]
            self.stats["corrupt_miniprogram_broken_json"] += 1
            p.facts.corrupt += 1
            self.stager.add("miniprogram", d, key, payload, kind, event_id, p.pid)
            p.records.setdefault(("miniprogram", event_id), False)
        else:
            self.stager.add("miniprogram", d, key, payload)
            p.records[("miniprogram", event_id)] = True
        return event_id

    def mini_order(self, rng, p, d, brand):
        secs = min(self.time_of_day(rng), 86400 - 900)
        self.mini_event(rng, p, brand, d, secs, "app_login", {})
        lines = self.basket(rng, p, d, online=True)
        t = secs
        for sku, *_ in lines:
            t += rng.randint(10, 120)
            self.mini_event(rng, p, brand, d, t, "view_item", {"sku_id": sku.sku_id}, corruptible=True)
            t += rng.randint(5, 60)
            self.mini_event(rng, p, brand, d, t, "add_to_cart", {"sku_id": sku.sku_id}, corruptible=True)
        order_id = f"MP{self.date_compact[d]}{ids.permute(self.next_id('mini'), 10 ** 8):08d}"
        amount = sum(a for *_, a in lines)
        items = [{"sku_id": s.sku_id, "quantity": int(q), "price": f"@@{fmt_cents(price)}@@"}
                 for s, q, price, _a in lines]
        t += rng.randint(20, 200)
        event_id = self.mini_event(rng, p, brand, d, t, "order_paid",
                                   {"order_id": order_id, "amount": f"@@{fmt_cents(amount)}@@", "items": items})
        if rng.random() < 0.12:
            self.mini_event(rng, p, brand, d, t + 1, "coupon_redeem",
                            {"order_id": order_id, "coupon_id": f"CP{brand.upper()}{rng.randint(1, 40):03d}"})
        self.record_order(p, "miniprogram", event_id, order_id, d, brand, self.appids[brand], lines)

    def app_sessions(self, rng, p):
        for brand, adopted in sorted(p.app.items()):
            start = 0 if adopted is None else adopted
            if adopted is not None:  # first use inside the window: log in and bind the phone
                secs = self.time_of_day(rng)
                self.mini_event(rng, p, brand, adopted, secs, "app_login", {})
                self.mini_event(rng, p, brand, adopted, min(secs + 40, 86399), "bind_mobile",
                                {"mobile": p.mobile_on(adopted)})
            rate = rng.uniform(0.1, 0.6) / 7.0
            t, first = start + rng.expovariate(rate), adopted is None and rng.random() < 0.4
            if adopted is None and t >= self.days:  # every app user opens the app at least once in the window
                t = rng.randrange(self.days)
            while t < self.days:
                d, secs = int(t), min(self.time_of_day(rng), 86400 - 600)
                self.mini_event(rng, p, brand, d, secs, "app_login", {})
                if first:  # re-authorised after an app update: the phone is bound again
                    self.mini_event(rng, p, brand, d, secs + 20, "bind_mobile", {"mobile": p.mobile_on(d)})
                    first = False
                for k in range(rng.randint(1, 3)):
                    sku = rng.choices(CATALOG, cum_weights=p.sku_cum)[0]
                    self.mini_event(rng, p, brand, d, secs + 30 + 40 * k, "view_item", {"sku_id": sku.sku_id},
                                    corruptible=True)
                t += rng.expovariate(rate)
            if p.change_day is not None and (adopted is None or adopted < p.change_day):
                self.mini_event(rng, p, brand, p.change_day, self.time_of_day(rng), "bind_mobile",
                                {"mobile": p.new_mobile})

    def ecommerce_order(self, rng, p, d):
        platform = rng.choice(p.platforms)
        brands = [b for b in p.brands if (b, platform) in self.shops] or [self.brands[0]]
        brand = brands[0] if rng.random() < 0.75 else rng.choice(brands)
        shop = self.shops.get((brand, platform)) or self.shops[(self.brands[0], platform)]
        counter = ids.permute(self.next_id(f"ecommerce:{platform}"), 10 ** 11)
        order_id = {"tmall": f"3{counter:011d}{d % 1000:03d}188", "jd": f"2{counter:011d}",
                    "douyin": f"69{counter:012d}{d % 10000:04d}1"}[platform]
        buyer = ids.buyer_id_for(self.seed, platform, p.index)
        receiver = p.name if rng.random() < 0.5 else mask_name(p.name)
        r = rng.random()
        phone = p.mobile_on(d)
        receiver_mobile = mask_phone(phone) if r < 0.85 else ("" if r < 0.92 else phone)
        m = p.members.get(brand)
        card = m.card if m and m.registered_day <= d and p.binds_platform_card(rng, platform) else ""
        secs = self.time_of_day(rng)
        stamp = self.stamp(d, secs)
        valid, written = [], False
        for n_line, (sku, qty, _price, amount) in enumerate(self.basket(rng, p, d, online=True)):
            row = [platform, shop, order_id, buyer, receiver, receiver_mobile, p.province, p.city, stamp,
                   sku.sku_id, sku.sku_name, sku.category, qty, fmt_cents(amount), "paid", card, brand]
            refund_day = d + rng.randint(1, 5) if rng.random() < 0.04 else None
            kind = "" if refund_day is not None else self.corrupt(rng, "ecommerce", can_force=n_line > 0)
            key = f"{secs:05d}{platform}{order_id}{sku.sku_id}"
            if kind:
                row[13] = rng.choice(("N/A", "￥" + row[13]))
                self.stats["corrupt_ecommerce_bad_amount"] += 1
                p.facts.corrupt += 1
                self.stager.add("ecommerce", d, key, csv_line(row), kind, f"{platform}:{order_id}", p.pid)
                continue
            self.stager.add("ecommerce", d, key, csv_line(row))
            written = True
            if refund_day is None or refund_day >= self.days:
                valid.append((sku, qty, _price, amount))
            else:  # the platform sends the line again with its new status
                row[14] = "refunded"
                rsecs = self.time_of_day(rng)
                self.stager.add("ecommerce", refund_day, f"{rsecs:05d}{platform}{order_id}{sku.sku_id}",
                                csv_line(row))
                self.stats["ecommerce_refunded_lines"] += 1
        record_id = f"{platform}:{order_id}"
        if written:  # refunded lines are written too; only orders whose every line is corrupt are absent
            p.records[("ecommerce", record_id)] = True
            self.record_order(p, "ecommerce", record_id, order_id, d, brand, platform, valid)

    def wecom(self, rng, p):
        any_member = bool(p.members)
        chance = 0.4 if p.behaviour == "prospect" else (0.35 if any_member else 0.08)
        if rng.random() >= chance:
            return
        ext = ids.external_userid_for(self.seed, p.index)
        brand = next(iter(p.members), p.brands[0])
        relations = [(p.home[brand], None)]
        if rng.random() < 0.05:
            other = rng.choice(self.stores_by[(brand, p.city)])
            if other is not p.home[brand] or len(other.guides) > 1:
                relations.append((other, "second"))
        contact = {"external_userid": ext, "name": p.nickname(rng), "gender": 2 if p.gender == "F" else 1}
        if p.has_unionid:
            contact["unionid"] = ids.unionid_for(self.seed, p.index)
        p.wecom_ever = True
        for store, role in relations:
            guide = store.guides[0] if role is None else store.guides[-1]
            pre = role is None and rng.random() < 0.5
            add_day = -rng.randint(1, 400) if pre else rng.randrange(self.days)
            secs = self.time_of_day(rng)
            remarks = [self.typed_mobile(rng, p, max(0, add_day))] if rng.random() < 0.7 else []
            tags = [GUIDE_TAGS["vip" if p.behaviour == "regular" else "normal"]]
            follow = {"userid": guide, "remark_mobiles": remarks, "createtime": self.epoch(add_day, secs),
                      "tags": [{"group_name": g, "tag_name": t} for g, t in tags]}
            if rng.random() < 0.7:
                follow["state"] = store.store_id

            last = [(-10 ** 9, 0)]

            def emit(change: str, day: int, s: int) -> None:
                if (day, s) <= last[0]:  # changes of one relation keep their order, one per second at most
                    s = min(86_399, last[0][1] + 1)
                last[0] = (day, s)
                row = {"change_type": change, "event_time": self.iso(day, s), "external_contact": contact,
                       "follow_user": follow, "brand_id": store.brand_id}
                self.stager.add("wecom", max(0, day), f"{s:05d}{ext}{guide}{day + 100000:06d}{change}",
                                json.dumps(row, ensure_ascii=False, separators=(",", ":")))

            emit("add_external_contact", add_day, secs)
            active, day = True, max(0, add_day)
            if rng.random() < 0.3 and day + 1 < self.days:  # the guide tags the customer's tastes later
                day = rng.randint(day + 1, self.days - 1)
                extra = [GUIDE_TAGS[k] for k, on in (("durian", p.likes_durian), ("grape", p.grape_fan),
                                                     ("family", p.family_id is not None)) if on]
                follow = {**follow, "tags": follow["tags"] + [{"group_name": g, "tag_name": t} for g, t in extra]}
                if not follow["remark_mobiles"] and rng.random() < 0.5:
                    follow = {**follow, "remark_mobiles": [self.typed_mobile(rng, p, day)]}
                emit("edit_external_contact", day, self.time_of_day(rng))
            if (p.change_day is not None and follow["remark_mobiles"] and max(0, add_day) < p.change_day
                    and day <= p.change_day):
                day = p.change_day
                follow = {**follow, "remark_mobiles": [p.new_mobile]}
                emit("edit_external_contact", day, self.time_of_day(rng))
            r = rng.random()
            if r < 0.06 and day + 1 < self.days:
                day = rng.randint(day + 1, self.days - 1)
                emit("del_external_contact" if r < 0.04 else "del_follow_user", day, self.time_of_day(rng))
                active = False
            if active:
                p.wecom_guides.append(guide)
        p.records[("wecom", ext)] = True

    # ---- truth -------------------------------------------------------------------------------------------------
    def write_truth(self, p: _Person) -> None:
        for (source, record_id), valid in p.records.items():
            if valid:
                self.truth["records"].writerow((source, record_id, p.pid))
        f = p.facts
        row = [p.pid, p.name, p.gender, p.birthday.isoformat(), p.city, p.home[self.brands[0]].store_id, p.behaviour,
               p.mobile, p.new_mobile or "", self.date_text[p.change_day] if p.change_day is not None else "",
               p.family_id or "", _i(p.family_id is not None), _i(p.change_day is not None), _i(p.never_gives_phone),
               _i(p.has_unionid and bool(p.app or p.wecom_ever)), _i(p.uses_ecommerce), ";".join(p.platforms)]
        for b in self.brands:
            m = p.members.get(b)
            row += [_i(m is not None), m.card if m else "", m.level if m else "", _i(bool(m and m.is_paid)),
                    _i(b in p.app), _i(bool(m and m.consent)), self.day_text(m.registered_day) if m else ""]
        row += [_i(bool(p.wecom_guides)), _i(p.wecom_ever), ";".join(p.wecom_guides), _i(p.likes_durian),
                f.orders_total, f.orders["pos"], f.orders["miniprogram"], f.orders["ecommerce"]]
        row += [f.orders_brand[b] for b in self.brands]
        row += [fmt_cents(f.spend_cents), self.day_text(f.first_day) if f.first_day is not None else "",
                self.day_text(f.last_day) if f.last_day is not None else "", f.durian, f.kyoho, f.black_kyoho,
                f.premium, f.anonymous_pos, f.phone_noise["store_phone"], f.phone_noise["placeholder"],
                f.placeholder_crm, f.phone_noise["formatted"], f.corrupt,
                sum(p.records.values())]
        self.truth["persons"].writerow(row)


def person_columns(brands: tuple[str, ...]) -> list[str]:
    cols = ["person_id", "name", "gender", "birthday", "city", "home_store_id", "behaviour", "mobile", "mobile_new",
            "phone_changed_on", "family_id", "shares_family_phone", "changed_phone", "never_gives_phone",
            "has_unionid", "uses_ecommerce", "ecommerce_platforms"]
    for b in brands:
        cols += [f"is_member_{b}", f"member_card_no_{b}", f"level_{b}", f"is_paid_member_{b}", f"has_app_{b}",
                 f"marketing_consent_{b}", f"registered_on_{b}"]
    cols += ["is_wecom_added", "wecom_ever_added", "wecom_guides", "likes_durian", "orders_total", "orders_pos",
             "orders_miniprogram", "orders_ecommerce"]
    cols += [f"orders_{b}" for b in brands]
    cols += ["spend_net", "first_purchase_date", "last_purchase_date", "durian_orders", "kyoho_orders",
             "black_kyoho_orders", "premium_orders", "anonymous_pos_orders", "store_phone_orders",
             "placeholder_phone_orders", "placeholder_phone_crm", "formatted_phone_orders", "corrupt_rows",
             "records"]
    return cols


ORDER_COLUMNS = ("source", "source_record_id", "order_id", "person_id", "brand_id", "order_date", "channel_detail",
                 "is_purchase", "is_return", "net_amount", "has_durian", "has_kyoho", "has_black_kyoho",
                 "has_premium", "is_anonymous")


def _base_draws(rng: random.Random) -> tuple[str, str, str, dt.date, Any]:
    """The first draws of every person: gender, surname, given name, birthday, city."""
    gender = "F" if rng.random() < 0.58 else "M"
    surname = rng.choice(SURNAMES)
    given = rng.choice(GIVEN_F if gender == "F" else GIVEN_M)
    birthday = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20_000))
    city = CITIES[bisect.bisect_right(_CITY_CUM, rng.random() * _CITY_CUM[-1])]
    return gender, surname, given, birthday, city


def _b(value: bool) -> str:
    return "true" if value else "false"


def _i(value: bool) -> int:
    return 1 if value else 0


@dataclass
class _Person:
    pid: str
    index: int
    gender: str = "F"
    name: str = ""
    birthday: dt.date = dt.date(1980, 1, 1)
    city: str = ""
    province: str = ""
    behaviour: str = "occasional"
    mobile: str = ""
    new_mobile: str | None = None
    change_day: int | None = None
    family_id: str | None = None
    never_gives_phone: bool = False
    has_unionid: bool = True
    brands: list[str] = field(default_factory=list)
    home: dict[str, Store] = field(default_factory=dict)
    members: dict[str, Membership] = field(default_factory=dict)
    app: dict[str, int | None] = field(default_factory=dict)  # brand -> adoption day (None: before the window)
    uses_ecommerce: bool = False
    platforms: list[str] = field(default_factory=list)
    likes_durian: bool = False
    grape_fan: bool = False
    sku_cum: tuple[float, ...] = ()
    wecom_ever: bool = False
    wecom_guides: list[str] = field(default_factory=list)
    records: dict[tuple[str, str], bool] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)
    _platform_cards: dict[str, bool] = field(default_factory=dict)
    openids: dict[str, str] = field(default_factory=dict)  # appid -> openid (cache)
    unionid: str = ""

    def mobile_on(self, day: int) -> str:
        if self.change_day is not None and day >= self.change_day:
            return self.new_mobile or self.mobile
        return self.mobile

    def binds_platform_card(self, rng: random.Random, platform: str) -> bool:
        """Whether the buyer joined the brand membership on this platform (decided once per platform)."""
        if platform not in self._platform_cards:
            self._platform_cards[platform] = rng.random() < 0.35
        return self._platform_cards[platform]

    def nickname(self, rng: random.Random) -> str:
        return self.name if rng.random() < 0.3 else rng.choice(NICKNAMES)
