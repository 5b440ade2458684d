"""Identifier factories: pure functions of (seed, index), unique by construction (bijections, not luck).

Mobiles, member cards and order ids come from affine bijections `x -> (a*x + b) mod m` with `gcd(a, m) = 1`, so
distinct indexes never collide; opaque ids (openid, unionid, external_userid, buyer ids) come from a keyed
BLAKE2b digest, whose collisions are negligible (>= 160 bits).
"""
from __future__ import annotations

import base64
import hashlib

from cdp.generator.reference import MOBILE_PREFIXES

_BODY_SPAN = 99_000_000          # mobile bodies live in [1_000_000, 100_000_000): never below a store phone body
_BODY_A, _BODY_B = 61_185_367, 27_182_818  # gcd(A, 99e6) == 1; A/span ~ golden ratio spreads bodies
_SPARE_PREFIX = "147"             # used only for the few bodies made of one repeated digit


def mobile_for(index: int) -> str:
    """The `index`-th personal mobile number: a real carrier prefix and 8 digits, unique per index."""
    # (prefix, body) repeats only when index repeats modulo lcm(29, 99e6) ~ 2.9e9: unique for every index we use
    n = len(MOBILE_PREFIXES)
    prefix_no = index % n
    body = f"{1_000_000 + (index * _BODY_A + _BODY_B) % _BODY_SPAN:08d}"
    if len(set(body)) == 1:  # 13888888888 looks like junk; map the <= 9 such values per prefix elsewhere, uniquely
        return f"{_SPARE_PREFIX}{prefix_no * 10 + int(body[0]):08d}"
    return MOBILE_PREFIXES[prefix_no] + body


def card_for(brand_no: int, index: int) -> str:
    """Member card number of person `index` at brand number `brand_no` (12 digits, brand prefix 8800+)."""
    return f"{8800 + brand_no}{(index * 48_271 + 1_234_567) % 100_000_000:08d}"


def permute(counter: int, modulus: int, a: int = 2_654_435_761, b: int = 48_271_013) -> int:
    """A bijection of [0, modulus) for moduli that are powers of 10 or of 2 (`a` is odd and not a multiple of 5)."""
    return (counter * a + b) % modulus


def opaque_id(seed: int, kind: str, index: int, length: int) -> str:
    """A stable base64url string of `length` characters for (seed, kind, index)."""
    digest = hashlib.blake2b(f"{seed}|{kind}|{index}".encode(), digest_size=30).digest()
    return base64.urlsafe_b64encode(digest).decode()[:length]


def digits_id(seed: int, kind: str, index: int, length: int) -> str:
    """A stable decimal string of `length` digits (leading digit non-zero) for (seed, kind, index)."""
    digest = hashlib.blake2b(f"{seed}|{kind}|{index}".encode(), digest_size=16).digest()
    value = int.from_bytes(digest, "big") % (9 * 10 ** (length - 1))
    return str(10 ** (length - 1) + value)


def openid_for(seed: int, appid: str, index: int) -> str:
    """WeChat openid (per app): 28 characters starting with 'o'."""
    return "o" + opaque_id(seed, f"openid:{appid}", index, 27)


def unionid_for(seed: int, index: int) -> str:
    """WeChat unionid (per open-platform account, shared by the group's apps and WeCom): 28 characters."""
    return "o" + opaque_id(seed, "unionid", index, 27)


def external_userid_for(seed: int, index: int) -> str:
    """WeCom external contact id: 'wm' + 30 characters."""
    return "wm" + opaque_id(seed, "external_userid", index, 30)


def buyer_id_for(seed: int, platform: str, index: int) -> str:
    """The platform's buyer id: Tmall open uid, JD pin, Douyin user id."""
    if platform == "tmall":
        return "AAH" + opaque_id(seed, "buyer:tmall", index, 21)
    if platform == "jd":
        return "jd_" + opaque_id(seed, "buyer:jd", index, 12).lower().replace("-", "a").replace("_", "b")
    return digits_id(seed, f"buyer:{platform}", index, 16)


def appid_for(seed: int, brand_no: int) -> str:
    """Mini-program appid of a brand: 'wx' + 16 hex digits (fixed per brand, independent of the seed)."""
    return "wx" + hashlib.blake2b(f"appid|{brand_no}".encode(), digest_size=8).hexdigest()
