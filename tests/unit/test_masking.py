"""The URL masker: every way a password can sit in a URL or a DSN is masked, in every place
that prints one; what is not a secret stays readable."""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from connectors import masking
from connectors.masking import mask_text, safe_url
from connectors.sql import SqlConnector
from worker.settings import mask_url
from worker.state import StateStore

PEPPER = b"test-pepper-0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("mysql+pymysql://root:p@ss@h:3306/t", "mysql+pymysql://root:***@h:3306/t"),
        ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p?ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p%40s%3As@h/db", "postgresql://u:***@h/db"),
        ("redis://:pw@h:6379", "redis://:***@h:6379"),
        ("postgresql://u@h/db?password=pw", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u@h/db?sslmode=require&password=pw",
            "postgresql://u@h/db?sslmode=require&password=***",
        ),
        ("postgresql://u@h/db?password=p@ss&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("postgresql://u:pw@h/db?password=p@ss", "postgresql://u:***@h/db?password=***"),
        (
            "postgresql://u@h/db?sslpassword=kp&sslkey=/k.pem",
            "postgresql://u@h/db?sslpassword=***&sslkey=/k.pem",
        ),
        ("postgresql://u@/db?host=/tmp&password=pw", "postgresql://u@/db?host=/tmp&password=***"),
        ("host=db password='a b' dbname=x", "host=db password=*** dbname=x"),
        ("host=db password = 's\\'q' port=5432", "host=db password = *** port=5432"),
        (
            "host=db sslpassword=kp passfile=/p/.pgpass",
            "host=db sslpassword=*** passfile=/p/.pgpass",
        ),
        ("x?client_secret=abc&api_key=def&token=ghi", "x?client_secret=***&api_key=***&token=***"),
        ("{'password': 'pw', 'user': 'u'}", "{'password': *** 'user': 'u'}"),
        # Nothing to mask: left exactly as it was.
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("see https://example.org/docs", "see https://example.org/docs"),
        (
            "(Background on this error at: https://sqlalche.me/e/21/f405)",
            "(Background on this error at: https://sqlalche.me/e/21/f405)",
        ),
        (
            "password authentication failed for user app",
            "password authentication failed for user app",
        ),
    ],
)
def test_mask_text_masks_each_form(text: str, masked: str) -> None:
    """User part, ?password=, &password=, secret-named options, keyword DSNs and quoted
    mappings are masked; files (sslkey, passfile) and texts without secrets are left alone."""
    assert mask_text(text) == masked


def _libpq_quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Each form puts the password where a URL or DSN can hold it. In a query string a raw "&"
# would end the value, so those forms are marked to draw passwords without one.
RAW_FORMS: list[tuple[Callable[[str], str], bool]] = [
    (lambda pw: f"postgresql+psycopg://app:{pw}@db.internal:5432/kids", False),
    (lambda pw: f"mysql+pymysql://app:{pw}@db.internal/kids?charset=utf8mb4", False),
    (lambda pw: f"postgresql+psycopg://app@db.internal:5432/kids?password={pw}", True),
    (
        lambda pw: f"postgresql+psycopg://app@db.internal/kids?sslmode=require&password={pw}&x=1",
        True,
    ),
    (lambda pw: f"postgresql+psycopg://app@db.internal/kids?sslpassword={pw}", True),
    (lambda pw: f"postgresql+psycopg://app:{quote(pw, safe='')}@db.internal/kids", False),
    (lambda pw: f"postgresql+psycopg://app@db.internal/kids?password={quote_plus(pw)}", False),
    (lambda pw: f"host=db.internal port=5432 password={_libpq_quoted(pw)} dbname=kids", False),
    (lambda pw: f"cannot reach postgresql://app:{pw}@db.internal/kids: OperationalError", False),
    (lambda pw: f"connect_args {{'password': {pw!r}, 'host': 'db.internal'}}", False),
]
# Raw in a URL: anything but whitespace ("*" is the mask itself).
URL_PASSWORDS = st.text(
    alphabet=string.ascii_letters + string.digits + "@:/?#%&!$+,;=~-._[]()'\"^|{}<>\\",
    min_size=6,
    max_size=24,
)


@pytest.mark.parametrize(("form", "in_query"), RAW_FORMS, ids=range(len(RAW_FORMS)))
@given(password=URL_PASSWORDS)
@example(password="p@ss:w/rd?x")
@example(password="'quoted'tail")
def test_no_password_survives_mask_text(
    form: Callable[[str], str], in_query: bool, password: str
) -> None:
    """Whatever characters a password holds, in whatever form, mask_text leaves none of it
    readable (neither raw nor %-escaped nor quoted)."""
    assume(not (in_query and "&" in password))
    spellings = {password, quote(password, safe=""), quote_plus(password), repr(password)[1:-1]}
    assume(not any(s in form("") for s in spellings))
    masked = mask_text(form(password))
    assert [s for s in spellings if s in masked] == []


@given(
    user_part=st.text(min_size=1, max_size=24).filter(lambda s: "*" not in s),
    option=st.text(min_size=1, max_size=24).filter(lambda s: "*" not in s),
)
@example(user_part="with space@and:colon", option="a&b=c d")
def test_no_password_survives_safe_url(user_part: str, option: str) -> None:
    """safe_url parses first: a password of any characters (spaces too) in the user part
    and in ?password= / ?sslpassword= is masked; everything else is shown as it is."""
    url = sa.URL.create(
        "postgresql+psycopg",
        username="app",
        password=user_part,
        host="db.internal",
        database="kids",
        query={"password": option, "sslpassword": option, "sslmode": "require"},
    )
    assert safe_url(url) == (
        "postgresql+psycopg://app:***@db.internal/kids?password=***&sslmode=require&sslpassword=***"
    )


def test_safe_url_repairs_what_sqlalchemy_leaves() -> None:
    """SQLAlchemy's own rendering shows ?password= and the part of a password after a raw @;
    safe_url shows neither, and a text that is no URL shows nothing of itself."""
    raw = "postgresql://u:first@second@h/db?password=third"
    assert "second" in sa.make_url(raw).render_as_string(hide_password=True)
    assert safe_url(raw) == "postgresql://u:***@h/db?password=***"
    assert safe_url("host=db password=s3cret") == "<not a database URL>"
    assert safe_url("postgresql://u:p@h:notaport/db") == "<not a database URL>"


URL = "postgresql+psycopg://app:first-secret@127.0.0.1:1/kids?sslpassword=second-secret"


@pytest.mark.parametrize(
    "shown",
    [
        lambda: mask_url(URL),
        lambda: SqlConnector(URL, pepper=PEPPER).safe_url,
        lambda: repr(SqlConnector(URL, pepper=PEPPER)),
        lambda: StateStore(URL).url,
    ],
    ids=["settings.mask_url", "connector.safe_url", "connector.repr", "state store"],
)
def test_every_printer_of_urls_uses_the_masker(shown: Callable[[], str]) -> None:
    """settings.mask_url, a connector's safe_url and repr, and the state store's URL all
    mask the user part's password and secret-named options."""
    text = shown()
    assert "first-secret" not in text
    assert "second-secret" not in text
    assert "app:***@127.0.0.1:1/kids" in text
    assert "sslpassword=***" in text


@pytest.mark.parametrize(
    "text",
    [
        "ab-" * 40_000,
        "password" * 15_000,
        "a" * 100 + "password=" + "x" * 120_000,
        "a://b:" * 20_000,
        "'a'" * 40_000,
        "a=" * 60_000,
    ],
    ids=["name characters", "secret words", "long key and value", "schemes", "quotes", "pairs"],
)
def test_masking_a_long_text_takes_linear_time(text: str) -> None:
    """A log value of 120 000 characters is masked in well under a second (the patterns
    have no unbounded backtracking: a quadratic one took minutes on such texts)."""
    started = time.perf_counter()
    masked = mask_text(text)
    assert time.perf_counter() - started < 2.0
    assert ("x" * 1000 not in masked) if "password=" in text else masked == text


@given(st.text(max_size=200))
@settings(max_examples=500)
def test_the_shortcut_of_mask_text_changes_no_answer(text: str) -> None:
    """A text without "=" or ":" is returned unscanned: the full scan returns it unchanged
    too (every pattern needs one of them), for any text."""
    assert mask_text(text) == masking._mask_scanned(text)
    if "=" not in text and ":" not in text:
        assert masking._mask_scanned(text) == text
