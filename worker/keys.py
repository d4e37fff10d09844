"""Keyed hashes of record keys: how the audit trail and the legal-hold ledger name a record
without storing its key.

    record_key_hash = lowercase hex of HMAC-SHA256(pepper, encode(customer, product, table,
                                                                  key part 1, key part 2, ...))

`encode` writes every field as a netstring, `<length>:<bytes>,`, where bytes are the field's
UTF-8 text and length is their number in decimal: unambiguous whatever the text holds, and
cheap to compute. A key part's text is the same whatever type the database or the operator
gives it:

- a whole number in decimal (`7`, `-12`); a boolean as `true`/`false`;
- a text as it is; bytes in lowercase hex;
- a date as `YYYY-MM-DD`;
- a date-time as `YYYY-MM-DDTHH:MM:SS`, followed by `.ffffff` (six digits) only when its
  microseconds are not zero; a date-time with a time zone is first converted to UTC and ends
  in `+00:00` (`2020-01-01T10:00:00`, `2020-01-01T10:00:00.250000+00:00`);
- a UUID in lowercase `8-4-4-4-12` form; a decimal as the database returns it, with its scale
  (`7.10`); a float by Python's shortest round-trip text (`0.1`).

So the operator's `--key 7` on the command line hashes like the integer 7 read from the
database (`holds add` looks the key up and hashes the stored value).

A row of a table without a key is named by all its values in table order, NULL written as
one NUL character (`row_key`).

Example (docs/audit.md works it through): customer `kdv-zonnestraal`, product `flexkids`,
table `invoice`, key `(7,)` encode as
`15:kdv-zonnestraal,8:flexkids,7:invoice,1:7,`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from connectors.base import SchemaError


def key_text(value: Any) -> str:
    """The canonical text of one key part (see the module docstring); ValueError for None."""
    if value is None:
        raise ValueError("a record key part cannot be NULL")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        moment: dt.datetime = value
        if moment.utcoffset() is not None:
            moment = moment.astimezone(dt.UTC)
        return moment.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def row_key(values: Sequence[Any]) -> tuple[str, ...]:
    """The key of a row of a table without one: all its values in table order, NULL written
    as one NUL character (a text never holds one)."""
    return tuple("\x00" if v is None else key_text(v) for v in values)


def encode_fields(fields: Iterable[str]) -> bytes:
    """Fields as concatenated netstrings of their UTF-8 bytes: `<len>:<bytes>,` each."""
    out = bytearray()
    for field in fields:
        data = field.encode("utf-8")
        out += b"%d:%s," % (len(data), data)
    return bytes(out)


# HMAC's block size for SHA-256 and its pads (RFC 2104).
_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class KeyHasher:
    """Keyed hashes of the record keys of one customer × product table.

    Exactly HMAC-SHA256 (RFC 2104) of the module docstring's encoding, computed with two
    SHA-256 states built once: the inner one keyed with the pepper's inner pad and fed with
    the table's prefix (customer, product, table), the outer one keyed with the outer pad.
    A key then costs two copies, two updates and a digest in C (2.8 µs; the `hmac` module's
    copy and the generic encoder cost 6.8). `tests/unit/test_keys.py` checks it against
    `hmac.new` for every kind of key part.

    A hasher remembers the hashes of the keys it was last asked for with `remember` (a page
    of a batch, hashed before the batch's transaction), so that the hold check, the guard
    and the intent inside the transaction do not hash them again.
    """

    def __init__(self, pepper: bytes, customer: str, product: str, table: str) -> None:
        secret = hashlib.sha256(pepper).digest() if len(pepper) > _BLOCK else pepper
        secret = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(secret.translate(_IPAD))
        self._inner.update(encode_fields((customer, product, table)))
        self._outer = hashlib.sha256(secret.translate(_OPAD))
        self._table = table
        # Remembered hashes by key and its parts' types (int and str only): False == 0 and
        # 1 == 1.0 in Python, but they are different texts (`false`, `0`): other records.
        self._known: dict[tuple[Sequence[Any], tuple[type, ...]], str] = {}

    def __call__(self, key: Sequence[Any]) -> str:
        """The lowercase hex HMAC-SHA256 of one record key (a tuple of its parts).

        Raises SchemaError (the rule fails, the pair's other rules run) when a part is NULL:
        a key on a nullable column (a unique index allows many NULLs) names no row.
        """
        if self._known:
            known = self._known.get((key, tuple(map(type, key))))
            if known is not None:
                return known
        data = bytearray()
        for part in key:
            if type(part) is int:  # the common key: no generic conversion
                text = b"%d" % part
            elif type(part) is str:
                text = part.encode("utf-8")
            elif part is None:
                raise SchemaError(
                    f"a row of {self._table} has NULL in its mapped key: a key must be NOT NULL "
                    "(a unique index allows many NULLs, so such a row has no name in the audit "
                    "or the legal-hold ledger); make the key's columns of "
                    f"{self._table} NOT NULL, or map another key (the primary key); "
                    "`validate` names the column"
                )
            else:
                text = key_text(part).encode("utf-8")
            data += b"%d:%s," % (len(text), text)
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def remember(self, keys: Sequence[Sequence[Any]]) -> list[str]:
        """Hash `keys` and keep their hashes (forgetting the ones kept before) until the next
        `remember`; the hashes in the order of `keys`. Raises as `__call__` does."""
        self._known = {}
        found = [self(key) for key in keys]
        # Only keys of whole numbers and texts are kept: for them equal values have equal
        # texts. Decimal('1.0') == Decimal('1.00') and 0.0 == -0.0, with different texts.
        self._known = {}
        for key, h in zip(keys, found, strict=True):
            types = tuple(map(type, key))
            if all(t is int or t is str for t in types):
                self._known[(key, types)] = h
        return found


def record_key_hash(
    pepper: bytes, customer: str, product: str, table: str, key: Sequence[Any]
) -> str:
    """The keyed hash of one record key; `KeyHasher` does the same for many keys faster."""
    return KeyHasher(pepper, customer, product, table)(key)
