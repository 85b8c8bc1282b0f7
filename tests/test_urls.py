"""Storage URLs never show their password: property-based over generated URLs (empty users, ``@``
and ``:`` in passwords, percent-encoding, secret query parameters), in messages and files."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reglab.urls import mask_url, scrub

SCHEMES = st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql", "sqlite", "redis"])
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=12)
USER = st.one_of(st.just(""), WORD, WORD.map(lambda w: quote(w + "@:", safe="")))
# printable, no whitespace: any of @ : / ? # & = % and quotes, raw or percent-encoded
SECRET = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=3, max_size=16)
HOST = st.sampled_from(["db.example", "localhost", "10.0.0.5", ""])
PORT = st.sampled_from(["", ":5432"])


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, str, str]:
    """(url, the password as written in it, the same url with the password replaced by ``***``)."""
    encode = draw(st.booleans())
    secret = draw(SECRET)
    written = quote(secret, safe="") if encode else secret
    scheme, host, port, user = draw(SCHEMES), draw(HOST), draw(PORT), draw(USER)
    where = draw(st.sampled_from(["userinfo", "query"]))
    extra = draw(st.sampled_from(["", "?sslmode=require", "?connect_timeout=5&application_name=x"]))
    if where == "query":  # a raw "&" ends a query value: the driver would read the password up to it too
        written = written.replace("&", "%26")
    if where == "userinfo":
        fmt = f"{scheme}://{user}:{{}}@{host}{port}/reglab{extra}"
    else:
        key = draw(st.sampled_from(["password", "sslpassword", "PASSWORD", "auth_token"]))
        fmt = f"{scheme}://{user}@{host}{port}/reglab?{key}={{}}" + extra.replace("?", "&")
    return fmt.format(written), written, fmt.format("***")


@settings(max_examples=400, deadline=None)
@given(urls())
@example(("postgresql://:secret@host/db", "secret", "postgresql://:***@host/db"))
@example(("postgresql://u:pa@ss@host/db", "pa@ss", "postgresql://u:***@host/db"))
@example(("postgresql://u:a:b@c@h/db", "a:b@c", "postgresql://u:***@h/db"))
@example(("postgresql://h/db?password=s3cr@t&x=1", "s3cr@t", "postgresql://h/db?password=***&x=1"))
def test_the_password_of_a_url_is_never_shown(case: tuple[str, str, str]) -> None:
    url, written, reference = case
    shown = mask_url(reference)  # what may be shown: the same URL with the password "***"
    for secret in {written, unquote(written)} - {"*", "**", "***"}:
        if len(secret) < 3 or secret in shown:
            continue
        assert secret not in mask_url(url), (url, mask_url(url))
        message = f"could not connect to {url}: password authentication failed ({secret!r})"
        assert secret not in scrub(message, url), (url, scrub(message, url))
        study_file = f'name: s\nstorage: "{url}"\nseeds: 3\n'
        if secret not in study_file.replace(url, ""):  # "see" is in "seeds": not the password showing
            assert secret not in mask_url(study_file), (url, mask_url(study_file))


def test_urls_without_a_password_are_unchanged() -> None:
    for url in ["sqlite:///x.db", "sqlite:////tmp/a:b/s.db", "postgresql://user@h/db", "mysql://h:3306/db?x=1"]:
        assert mask_url(url) == url
        assert scrub(f"cannot open {url}", url) == f"cannot open {url}"


def test_the_masked_url_keeps_what_identifies_the_database() -> None:
    assert mask_url("postgresql://:secret@host/db") == "postgresql://:***@host/db"
    assert mask_url("postgresql://u:p@ss@host:5432/db") == "postgresql://u:***@host:5432/db"
    assert mask_url("postgresql://u@h/db?password=abc&sslmode=x") == "postgresql://u@h/db?password=***&sslmode=x"
    assert mask_url('storage: "postgresql://u:pw@h/db"\nname: x') == 'storage: "postgresql://u:***@h/db"\nname: x'


@pytest.mark.parametrize("url", ["postgresql://u:abc@defghij@127.0.0.1:1/db", "postgresql://a@b:pw@h/db"])
def test_an_unencoded_at_in_the_password_is_refused_before_connecting(url: str) -> None:
    from reglab.errors import ConfigError
    from reglab.study.results.storage import open_storage

    with pytest.raises(ConfigError, match="percent-encode it as %40") as err:
        open_storage(url)
    assert "defghij" not in str(err.value) and "pw" not in str(err.value).replace("percent", "")


def test_at_signs_in_a_sqlite_path_are_fine(tmp_path: Path) -> None:
    from reglab.study.results.storage import check_storage_url

    check_storage_url(f"sqlite:///{tmp_path}/a@b@c/study.db")
    assert scrub("host name defghij@127.0.0.1", "postgresql://u:abc@defghij@127.0.0.1/db").count("defghij") == 0
