"""docs/audit.md's formats are the implemented ones: both worked examples, recomputed from the
documentation's text with nothing but hashlib and hmac, equal what the code computes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re

from tests.support import REPO
from worker.audit import record_hash
from worker.keys import record_key_hash

DOC = (REPO / "docs" / "audit.md").read_text(encoding="utf-8")


def _one(pattern: str) -> str:
    found = re.findall(pattern, DOC, flags=re.DOTALL)
    assert len(found) == 1, f"docs/audit.md should hold one match of {pattern!r}"
    return str(found[0])


def test_the_event_example_hashes_as_documented() -> None:
    """sha256(64 zeros || body) of the documented body is the documented hash, and the code's
    record_hash of the body's fields gives the same."""
    body = _one(r"Its body is\s+```\n(.+?)\n```")
    expected = _one(r"its hash is\s+`([0-9a-f]{64})`")
    assert hashlib.sha256(("0" * 64 + body).encode("utf-8")).hexdigest() == expected
    fields = json.loads(body)
    at = dt.datetime.fromisoformat(fields.pop("at"))
    assert record_hash("0" * 64, at=at, **fields) == expected


def test_the_record_key_example_hashes_as_documented() -> None:
    """HMAC-SHA256(pepper, documented bytes) is the documented key hash, the one the code
    computes for the key 7, and the one in the event example's payload."""
    data = _one(r"give the bytes\s+`([^`]+)`")
    pepper = _one(r"with the pepper `([^`]+)`")
    expected = _one(r"their HMAC-SHA256 is\s+`([0-9a-f]{64})`")
    by_hand = hmac.new(pepper.encode(), data.encode("utf-8"), hashlib.sha256).hexdigest()
    assert by_hand == expected
    code = record_key_hash(pepper.encode(), "kdv-zonnestraal", "flexkids", "invoice", (7,))
    assert code == expected
    body = json.loads(_one(r"Its body is\s+```\n(.+?)\n```"))
    assert body["payload"]["key_hashes"] == [expected]
