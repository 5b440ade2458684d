"""Personal data protection: keyed hashes (HMAC-SHA256) and masking, in Python and as Spark columns.

Raw mobiles, unionids, openids and names live only in bronze and in the protected `pii_values` table; silver
and gold carry `hmac_sha256(secret, "<kind>:<value>")` as hex, and masked values for display (`138****8000`).
The secret comes from `CDP_HMAC_SECRET` (or, only in the local profile, a generated git-ignored key file).

The Spark form computes HMAC with built-in `sha2` over binary concatenation (RFC 2104), no Python UDF:
    HMAC(K, m) = H((K0 xor opad) || H((K0 xor ipad) || m))
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from cdp.errors import MissingSecretError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from cdp.config import Settings

SECRET_ENV = "CDP_HMAC_SECRET"
_BLOCK = 64  # SHA-256 block size in bytes


def load_secret(settings: Settings | None = None) -> bytes:
    """The HMAC key: `$CDP_HMAC_SECRET`, else the local profile's key file (created once), else an error."""
    value = os.environ.get(SECRET_ENV)
    if value:
        return value.encode("utf-8")
    if settings is not None and settings.local_secret_file:
        path = Path(settings.local_secret_file)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip().encode("utf-8")
    raise MissingSecretError(
        f"{SECRET_ENV} is not set. Set it to a long random string kept outside the repository "
        "(an environment variable, or an Airflow connection/variable exported as that variable); "
        "every identifier hash in silver and gold is keyed by it, so keep it the same across runs.")


def hash_value(value: str, kind: str, key: bytes) -> str:
    """hex HMAC-SHA256 of `"<kind>:<value>"`."""
    return hmac.new(key, f"{kind}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()


def hash_col(col: Column, kind: str, key: bytes) -> Column:
    """Spark column: hex HMAC-SHA256 of `"<kind>:<value>"`; null stays null."""
    from pyspark.sql import functions as F

    k0 = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
    k0 = k0.ljust(_BLOCK, b"\0")
    ipad = bytes(b ^ 0x36 for b in k0)
    opad = bytes(b ^ 0x5C for b in k0)
    message = F.encode(F.concat(F.lit(f"{kind}:"), col.cast("string")), "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), message), 256))
    return F.when(col.isNull(), F.lit(None)).otherwise(F.sha2(F.concat(F.lit(opad), inner), 256))


def mask_mobile(mobile: str | None) -> str | None:
    """'13800138000' -> '138****8000'."""
    if not mobile:
        return None
    digits = re.sub(r"\D", "", mobile)
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_mobile_col(col: Column) -> Column:
    from pyspark.sql import functions as F

    return F.when(F.length(col) >= 7, F.concat(F.substring(col, 1, 3), F.lit("****"), F.substring(col, -4, 4)))


def mask_name(name: str | None) -> str | None:
    """'张伟' -> '张*'; keeps only the first character."""
    if not name:
        return None
    return name[0] + "*" * (len(name) - 1)


def mask_name_col(col: Column) -> Column:
    from pyspark.sql import functions as F

    return F.when(F.length(col) > 0, F.concat(F.substring(col, 1, 1), F.repeat(F.lit("*"), F.length(col) - 1)))


# Fields whose values identify a person by themselves but stay in clear in silver and gold (the retailer's own
# card numbers, WeCom and platform buyer ids): shown masked to roles that do not see identifiers (the console,
# `cdp query --role marketer`).
MASKED_IDENTIFIER_FIELDS = frozenset({"member_card_no", "member_card", "external_userid", "buyer_id"})


def mask_identifier(value: str | None) -> str | None:
    """Keep the first two and last two characters: 'M00012345' -> 'M0*****45'; short values become stars."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:2] + "*" * (len(text) - 4) + text[-2:]


def mask_identifier_col(col: Column) -> Column:
    """`mask_identifier` as a Spark column."""
    from pyspark.sql import functions as F

    stars = F.repeat(F.lit("*"), F.greatest(F.length(col) - 4, F.lit(0)))
    return (F.when(F.length(col) <= 4, F.repeat(F.lit("*"), F.length(col)))
            .otherwise(F.concat(F.substring(col, 1, 2), stars, F.substring(col, -2, 2))))


def mask_identifier_fields(df: DataFrame) -> DataFrame:
    """`df` with every MASKED_IDENTIFIER_FIELDS string masked wherever it sits: a column, a struct field, the
    elements of an array (e.g. gold_profiles.memberships[].member_card_no). Other columns are untouched."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StringType, StructType

    def needs(dtype, name: str | None) -> bool:
        if isinstance(dtype, StringType):
            return name in MASKED_IDENTIFIER_FIELDS
        if isinstance(dtype, ArrayType):
            return needs(dtype.elementType, name)
        if isinstance(dtype, StructType):
            return any(needs(f.dataType, f.name) for f in dtype.fields)
        return False

    def masked(col: Column, dtype, name: str | None) -> Column:
        if not needs(dtype, name):
            return col
        if isinstance(dtype, StringType):
            return mask_identifier_col(col)
        if isinstance(dtype, ArrayType):
            return F.transform(col, lambda element: masked(element, dtype.elementType, name))
        return F.when(col.isNotNull(), F.struct(*[masked(col[f.name], f.dataType, f.name).alias(f.name)
                                                  for f in dtype.fields]))

    return df.select(*[masked(F.col(f"`{f.name}`"), f.dataType, f.name).alias(f.name) for f in df.schema.fields])
