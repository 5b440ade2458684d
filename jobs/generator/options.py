"""Typed options of the generator: size, seed, dates, brands, encodings and the noise rates."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace

from cdp.errors import ConfigError

DEFAULT_END_DATE = dt.date(2026, 11, 26)  # fixed so that a seed alone decides the output
POS_ENCODINGS = ("utf-8", "utf-8-sig", "gbk")


@dataclass(frozen=True)
class NoiseRates:
    """How often each kind of real-world dirt appears. `scaled(0)` gives clean data.

    Person-level rates are shares of persons; order-level rates are shares of orders or typed phones.
    """
    never_gives_phone: float = 0.10   # persons who never give a phone at the till (anonymous POS orders)
    skips_phone: float = 0.30         # POS orders without a card where the customer gives no phone this time
    phone_format: float = 0.08        # typed phones written '138 0013 8000', '+86 13800138000', '86-13800138000'
    placeholder_phone: float = 0.005  # typed phones replaced by 13800000000 / 00000000000 / ... (POS and CRM)
    no_unionid: float = 0.12          # persons whose openids (and WeCom contact) come without unionid
    family_phone: float = 0.03        # persons in a family of 2-3 sharing one phone
    store_phone: float = 0.5          # at lazy-cashier stores: anonymous orders typed with the store's own phone
    phone_change: float = 0.02        # persons who change their phone number during the window
    redelivered_files: int = 2        # files delivered again (same dt under another name, and a later dt)
    corrupt_rows: float = 0.0005      # rows broken: wrong column count, bad date, bad amount, broken JSON

    def scaled(self, factor: float) -> NoiseRates:
        """All rates multiplied by `factor` (0 = clean data; probabilities capped at 1)."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = round(value * factor) if isinstance(value, int) else min(1.0, value * factor)
        return replace(self, **values)

    @property
    def enabled(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class GeneratorOptions:
    customers: int = 1000
    days: int = 120
    seed: int = 7
    end_date: dt.date = DEFAULT_END_DATE
    brands: tuple[str, ...] = ("main", "fresh")
    pos_encoding: str = "utf-8"
    noise: NoiseRates = field(default_factory=NoiseRates)
    max_rows_per_file: int = 500_000     # a bigger day is split into several files
    buffer_chars: int = 16_000_000       # staged text kept in memory before it is appended to disk

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ConfigError(f"--customers must be at least 1, got {self.customers}")
        if self.customers > 10_000_000:  # order ids are bijections of an 8-digit counter (~5 orders per person)
            raise ConfigError(f"--customers must be at most 10,000,000, got {self.customers}")
        if not 1 <= self.days <= 3650:
            raise ConfigError(f"--days must be between 1 and 3650, got {self.days}")
        if not self.brands or len(set(self.brands)) != len(self.brands):
            raise ConfigError(f"--brands must list distinct brand ids, got {','.join(self.brands)!r}")
        for brand in self.brands:
            if not brand.isidentifier():
                raise ConfigError(f"--brands: {brand!r} is not a valid brand id (letters, digits, underscore)")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ConfigError(f"--pos-encoding must be one of {POS_ENCODINGS}, got {self.pos_encoding!r}")

    @property
    def start_date(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.days - 1)
