"""Secrets out of printed text: the one masker of database URLs and DSNs.

Every place that prints a URL, or a text that may hold one, goes through here: log lines
(`worker.logging`), the CLI's messages (`worker.settings.mask_url`), a connector's
`safe_url` and the state store's name for its database. Masked, each replaced by `***`:

- the password of a URL's user part, `scheme://user:PASSWORD@host`, also when it holds a
  raw `@`, `:`, `/` or `?` or %-escapes: it runs from the first `:` after the user name to
  the last `@` of the URL (a URL without a password but with an `@` later on, in a query
  value, loses a little more than its password: masking too much is the safe side);
- the value of every secret-named option, in a query string (`?password=…`, `&password=…`),
  a libpq keyword DSN (`host=db password='a b'`) or a quoted mapping (`'password': '…'`).
  An option is secret when its name contains `password`, `passwd`, `pwd`, `passphrase`,
  `secret`, `token`, `api_key`/`apikey`, `credential`, `pepper`, `private_key`,
  `access_key` or `auth_key`, so `sslpassword` is masked. `sslkey`, `sslcert`,
  `sslrootcert` and `passfile` name files, not secrets, and stay readable.

Not recognised in free text: a raw space inside a URL's password (a URL should escape it
as `%20`); `safe_url` parses the URL first, so it masks such a password too.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

MASK = "***"

# Words that make an option name secret (see the module docstring).
_HIDDEN_WORDS = (
    r"passw(?:or)?d|pwd|passphrase|secret|token|api_?key|credential|pepper"
    r"|private_?key|access_?key|auth_?key|authorization"
)
SECRET_NAME = re.compile(_HIDDEN_WORDS, re.IGNORECASE)
# An option's name and its separator: `name=` (query strings, keyword DSNs) or `'name':`
# (quoted mappings). A name starts where a run of name characters starts, so a long text
# is scanned in linear time; whether the name is secret is decided afterwards.
_NAMED = re.compile(
    r"""(?<![A-Za-z0-9_.\-])(?P<key>[A-Za-z0-9_.\-]+)\s*=\s*"""
    r"""|(?P<q>['"])(?P<qkey>[A-Za-z0-9_.\-]+)(?P=q)\s*:\s*"""
)
# A value: quoted (to its closing quote, or to the end when the text was cut), and in any
# case up to the next space or "&". Masking a little too much is the safe side.
_VALUE = re.compile(r"""(?:'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?)[^\s&]*|[^\s&]+""")
# scheme://user:password@ → scheme://user:***@ (the password runs to the last "@" within
# 512 characters). Scheme, user and password are bounded so that a long text is scanned in
# linear time.
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s:/?#@]{0,256}:)\S{0,512}@")


def _mask_options(text: str) -> str:
    """`text` with the value of every secret-named option replaced by ***. A value that
    is not masked is searched too (`x=password=…`)."""
    parts: list[str] = []
    done = at = 0
    while (named := _NAMED.search(text, at)) is not None:
        at = named.end()
        if SECRET_NAME.search(named.group("key") or named.group("qkey") or ""):
            value = _VALUE.match(text, at)
            if value is not None and value.end() > at:
                parts += [text[done:at], MASK]
                done = at = value.end()
    parts.append(text[done:])
    return "".join(parts)


def mask_text(text: str) -> str:
    """`text` with every URL password and secret-named option value replaced by ***.

    Options first, then user parts: a `?password=p@ss` must not end a user part early.
    Linear in the length of `text`. A text with neither `=` nor `:` is returned as it is
    without a scan: every pattern above needs one of them (most values of a log line, such
    as rule ids, table names and counts, have neither).
    """
    if "=" not in text and ":" not in text:
        return text
    return _mask_scanned(text)


def _mask_scanned(text: str) -> str:
    """`mask_text` without its shortcut: the patterns applied to the whole text."""
    return _USERINFO.sub(rf"\g<1>{MASK}@", _mask_options(text))


def safe_url(url: str | sa.URL) -> str:
    """A database URL fit to print: its password and secret-named query options masked.

    A text that is not a URL at all becomes `<not a database URL>` (its parts cannot be
    told apart, so none of it is shown).
    """
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return "<not a database URL>"
    # SQLAlchemy hides the user part's password but prints query options as they are.
    return mask_text(parsed.render_as_string(hide_password=True))
