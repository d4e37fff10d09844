"""Single fake values: Dutch-looking, never real.

Names, streets, postcodes and mobile numbers look Dutch; e-mail addresses are on
example.nl / example.org, BSNs fail the elfproef (11-check), IBANs (check digits 00, bank
code DEMO) fail the mod-97 check, and IP addresses come from the documentation ranges.
Every function takes the `random.Random` to draw from, so callers decide the seed.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata


def _split(text: str, sep: str = ",") -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(sep))


GIRLS = _split(
    "Emma Julia Sophie Tess Zoë Sanne Lotte Femke Noor Fleur Anouk Lieke Isa Mila Yara Evi "
    "Marloes Ingrid Annemiek Roos",
    " ",
)
BOYS = _split(
    "Daan Sem Lucas Milan Bram Thijs Jesse Ruben Niels Joost Sven Stijn Wouter Floris Teun "
    "Jeroen Maarten Hidde Luuk Gijs",
    " ",
)
SURNAMES = _split(
    "de Jong,Jansen,de Vries,van den Berg,van Dijk,Bakker,Janssen,Visser,Smit,Meijer,de Boer,"
    "Mulder,de Groot,Bos,Vos,Peters,Hendriks,van Leeuwen,Dekker,Brouwer,de Wit,Dijkstra,"
    "van der Meer,van der Linden,Kok,de Haan,Vermeulen,van den Heuvel,van der Veen,"
    "van den Broek,de Bruijn,Koster,Prins,Huisman,Kuipers,van 't Hof,Postma,Willems,"
    "van der Heijden,ter Horst"
)
STREETS = _split(
    "Kerkstraat,Dorpsstraat,Schoolstraat,Molenweg,Stationsweg,Eikenlaan,Julianastraat,"
    "Beatrixlaan,Wilhelminastraat,Lindenlaan,Nieuwstraat,Prins Bernhardlaan,Kastanjelaan,"
    "Sportlaan,Emmastraat,Burgemeester de Withstraat,Van Goghstraat,Rembrandtplein,"
    "Tulpstraat,Zuiderweg"
)
# City and the first two digits of its postcodes.
CITIES = tuple(
    (city, int(prefix))
    for city, prefix in (
        pair.split(":")
        for pair in _split(
            "Amsterdam:10,Rotterdam:30,Den Haag:25,Utrecht:35,Eindhoven:56,Groningen:97,"
            "Tilburg:50,Almere:13,Breda:48,Nijmegen:65,Haarlem:20,Arnhem:68,Amersfoort:38,"
            "Zwolle:80,Leiden:23,Maastricht:62"
        )
    )
)
GROUPS = _split("Dolfijnen,Egeltjes,Vlinders,Kikkers,Uilen,Vossen,Beertjes,BSO 4+")
HEALTH = (
    "allergic to peanuts",
    "lactose intolerant",
    "asthma, inhaler in the bag",
    "eczema, cream after lunch",
    "allergic to wasp stings, EpiPen in the office",
    "gluten-free diet",
    "hay fever in spring",
    "allergic to penicillin",
)
STAFF_ROLES = (
    "pedagogisch medewerker",
    "groepshulp",
    "locatiemanager",
    "pedagogisch coach",
    "invalkracht",
)
DOMAINS = ("example.nl", "example.org")
_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def bsn_passes_elfproef(value: str) -> bool:
    """True when `value` is nine digits passing the BSN 11-check (it could be a real BSN)."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        return False
    return sum(int(d) * w for d, w in zip(value, _BSN_WEIGHTS, strict=True)) % 11 == 0


def iban_passes_mod97(value: str) -> bool:
    """True when `value` has a valid IBAN check (ISO 13616 mod-97)."""
    text = value.replace(" ", "").upper()
    if len(text) < 5 or not text.isascii() or not text.isalnum():
        return False
    digits = "".join(str(int(c, 36)) for c in text[4:] + text[:4])
    return int(digits) % 97 == 1


# --- single values -------------------------------------------------------------------


def fake_bsn(rng: random.Random) -> str:
    """Nine digits shaped like a BSN that fail the 11-check, so no person can have it."""
    while True:
        value = f"{rng.randrange(10**9):09d}"
        if not bsn_passes_elfproef(value):
            return value


def fake_iban(rng: random.Random) -> str:
    """A Dutch-shaped IBAN with bank code DEMO that fails the mod-97 check.

    Check digits 00 are never issued, but a bare mod-97 test cannot tell them from 97, so
    numbers that would pass it are drawn again.
    """
    while True:
        value = f"NL00DEMO{rng.randrange(10**10):010d}"
        if not iban_passes_mod97(value):
            return value


def fake_phone(rng: random.Random) -> str:
    return f"06-{rng.randrange(10**8):08d}"


def fake_ip(rng: random.Random) -> str:
    """An address from the documentation ranges (RFC 5737, RFC 3849)."""
    if rng.random() < 0.2:
        return f"2001:db8::{rng.randrange(1, 0xFFFF):x}"
    net = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
    return f"{net}.{rng.randrange(1, 255)}"


def fake_email(rng: random.Random, first: str, last: str) -> str:
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
    if rng.random() < 0.4:
        local += str(rng.randrange(1, 100))
    return f"{local}@{rng.choice(DOMAINS)}"


def fake_password_hash(rng: random.Random) -> str:
    alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "$2b$12$" + "".join(rng.choice(alphabet) for _ in range(53))


def fake_address(rng: random.Random) -> dict[str, str]:
    city, prefix = rng.choice(CITIES)
    letters = rng.choice("ABCDEFGHJKLMNPRTVWXZ") + rng.choice("ABCDEFGHJKLMNPRTVWXZ")
    number = f"{rng.randrange(1, 180)}{rng.choice(('', '', '', 'a', 'b'))}"
    return {
        "street": f"{rng.choice(STREETS)} {number}",
        "postcode": f"{prefix}{rng.randrange(100):02d} {letters}",
        "city": city,
    }


def fake_name(rng: random.Random, gender: str) -> tuple[str, str]:
    names = GIRLS if gender == "F" else BOYS if gender == "M" else GIRLS + BOYS
    return rng.choice(names), rng.choice(SURNAMES)


def fake_gender(rng: random.Random) -> str:
    return rng.choices(("F", "M", "X"), weights=(48, 48, 4))[0]


def days_before(rng: random.Random, day: dt.date, low: int, high: int) -> dt.date:
    return day - dt.timedelta(days=rng.randint(low, high))


def at_some_time(rng: random.Random, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(
        day, dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60))
    )
