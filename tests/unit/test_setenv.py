"""The setenv.sh edit: one line in, only this setup's line out, every other byte kept (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wizard.answers import validate
from wizard.confluence.setenv import (
    PROXY_ENABLED,
    SERVICE_URL,
    SetenvError,
    decode_setenv,
    option_line,
    plan_setenv_edit,
    read_option,
    service_url,
    wanted_options,
)

STOCK = (Path(__file__).resolve().parents[1] / "fixtures" / "setenv" / "confluence-7-stock.sh").read_text()
URL = "https://wiki.example.com/synchrony/v1"
STANDALONE = {SERVICE_URL: URL}
PROXY = {PROXY_ENABLED: "true"}


def edit(text: str, wanted: dict[str, str], setup: str = "wiki"):
    return plan_setenv_edit(text, setup=setup, wanted=wanted)


def inserted(before: str, after: str) -> str:
    """What was inserted, asserting that it was one contiguous insertion and nothing else changed."""
    assert len(after) > len(before)
    start = next((i for i, (a, b) in enumerate(zip(before, after)) if a != b), len(before))
    length = len(after) - len(before)
    assert after[:start] + after[start + length:] == before
    return after[start:start + length]


def test_standalone_inserts_one_line_after_the_last_catalina_opts_line() -> None:
    result = edit(STOCK, STANDALONE)
    assert result.added == ((SERVICE_URL, URL),) and not result.removed
    line = inserted(STOCK, result.new_text)
    assert line == option_line("wiki", SERVICE_URL, URL) + "\n"
    assert result.new_text.index(line) == STOCK.index("# CATALINA_OPTS=\"-Dsynchrony.proxy")
    assert read_option(result.new_text, SERVICE_URL) == URL
    assert edit(result.new_text, STANDALONE).changed is False  # a second apply changes nothing


def test_direct_removes_exactly_what_the_setup_added_and_the_file_is_back_byte_for_byte() -> None:
    with_flag = edit(STOCK, PROXY).new_text
    assert read_option(with_flag, PROXY_ENABLED) == "true"
    back = edit(with_flag, {})
    assert back.removed == ((PROXY_ENABLED, "true"),) and back.new_text == STOCK


def test_another_setups_line_and_the_admins_own_lines_are_never_removed() -> None:
    text = STOCK.replace("export CATALINA_OPTS", option_line("other", PROXY_ENABLED, "true")
                         + '\nCATALINA_OPTS="-Dsynchrony.proxy.enabled=true ${CATALINA_OPTS}"\nexport CATALINA_OPTS')
    result = edit(text, {})
    assert not result.changed and result.new_text == text


def test_internal_proxy_leaves_the_admins_own_flag_alone_saying_why() -> None:
    text = STOCK.replace("# CATALINA_OPTS=\"-Dsynchrony.proxy.enabled=false", "CATALINA_OPTS=\"-Dsynchrony.proxy.enabled=false")
    result = edit(text, PROXY)
    assert not result.changed and result.new_text == text
    assert "set by the admin: left as it is" in result.notes[0] and "false" in result.notes[0]
    same = STOCK.replace("# CATALINA_OPTS=\"-Dsynchrony.proxy.enabled=false", "CATALINA_OPTS=\"-Dsynchrony.proxy.enabled=true")
    assert not edit(same, PROXY).changed


def test_a_commented_option_does_not_count() -> None:
    assert read_option(STOCK, PROXY_ENABLED) is None
    assert edit(STOCK, PROXY).added == ((PROXY_ENABLED, "true"),)


def test_standalone_refuses_another_service_url_of_the_admin() -> None:
    text = STOCK + 'CATALINA_OPTS="-Dsynchrony.service.url=http://sync.internal:8091/synchrony/v1 ${CATALINA_OPTS}"\n'
    with pytest.raises(SetenvError) as caught:
        edit(text, STANDALONE)
    assert "http://sync.internal:8091/synchrony/v1" in caught.value.message and URL in caught.value.hint


def test_switching_modes_swaps_the_setups_line() -> None:
    proxied = edit(STOCK, PROXY).new_text
    standalone = edit(proxied, STANDALONE)
    assert standalone.removed == ((PROXY_ENABLED, "true"),) and standalone.added == ((SERVICE_URL, URL),)
    assert edit(standalone.new_text, {}).new_text == STOCK


@pytest.mark.parametrize("text, why", [
    ("#!/bin/sh\nJAVA_OPTS=-Xmx1g\n", "no top-level CATALINA_OPTS"),
    ('CATALINA_OPTS="-Dx=1 ${CATALINA_OPTS}\n', "ends inside a quote"),
    ("CATALINA_OPTS=-Dx=1 \\\n", "ends inside a quote"),
    ('if true; then\n  CATALINA_OPTS="-Dx ${CATALINA_OPTS}"\nfi\n', "no top-level CATALINA_OPTS"),
])
def test_refuses_a_file_that_is_not_what_it_expects(text: str, why: str) -> None:
    with pytest.raises(SetenvError) as caught:
        edit(text, PROXY)
    assert why in caught.value.message and "nothing was changed" in caught.value.hint


def test_refuses_binary_and_non_utf8() -> None:
    with pytest.raises(SetenvError):
        decode_setenv(b"CATALINA_OPTS=\x00\n")
    with pytest.raises(SetenvError):
        decode_setenv(b"CATALINA_OPTS=\xff\n")


def test_a_multi_line_assignment_is_not_split() -> None:
    text = 'CATALINA_OPTS="-Da=1\n  -Db=2 ${CATALINA_OPTS}"\necho done\n'
    result = edit(text, PROXY)
    assert result.new_text == 'CATALINA_OPTS="-Da=1\n  -Db=2 ${CATALINA_OPTS}"\n' + option_line(
        "wiki", PROXY_ENABLED, "true") + "\necho done\n"


def test_crlf_and_no_final_newline_keep_their_style() -> None:
    crlf = 'CATALINA_OPTS="-Da=1 ${CATALINA_OPTS}"\r\nexport CATALINA_OPTS\r\n'
    result = edit(crlf, PROXY)
    assert inserted(crlf, result.new_text).endswith("\r\n") and edit(result.new_text, {}).new_text == crlf
    bare = 'CATALINA_OPTS="-Da=1 ${CATALINA_OPTS}"'
    result = edit(bare, PROXY)
    assert inserted(bare, result.new_text).startswith("\n") and edit(result.new_text, {}).new_text == bare


def test_service_url_is_the_public_origin() -> None:
    raw = {"name": "wiki", "public_url": "https://wiki.example.com:8443/confluence", "synchrony": {
        "mode": "standalone", "nodes": [{"name": "s1", "address": "10.0.0.5"}]},
        "nodes": [{"name": "n1", "address": "10.0.0.1"}],
        "balancer": {"kind": "apache", "apache": {"access": {"host": "lb"}, "tls": {
            "certificate_file": "/c.pem", "key_file": "/k.pem"}}}}
    answers = validate(raw)
    assert service_url(answers) == "https://wiki.example.com:8443/synchrony/v1"
    assert wanted_options(answers) == {SERVICE_URL: "https://wiki.example.com:8443/synchrony/v1"}


# Generated files: anything around a CATALINA_OPTS line, the edit keeps every byte of it.
_SAFE_CHARS = st.characters(codec="utf-8", exclude_characters="\"'\\`$#(){}\r\x00")
_line = st.text(alphabet=_SAFE_CHARS, max_size=40).map(lambda s: s.replace("\n", " "))
_comment = _line.map(lambda s: "# " + s)
_admin = st.sampled_from(['CATALINA_OPTS="-Xmx2g ${CATALINA_OPTS}"', "export CATALINA_OPTS",
                          "CATALINA_OPTS=\"-Dsynchrony.port=8099 ${CATALINA_OPTS}\"", 'echo "a # b"',
                          "CATALINA_OPTS='-Dsingle=1'", "# -Dsynchrony.proxy.enabled=false"])


@settings(max_examples=200, deadline=None)
@given(before=st.lists(st.one_of(_comment, _admin, _line.map(lambda s: "X=" + s.replace(" ", "_"))), max_size=8),
       after=st.lists(st.one_of(_comment, _admin), max_size=8),
       wanted=st.sampled_from([STANDALONE, PROXY]), final_newline=st.booleans())
def test_every_byte_outside_the_inserted_line_survives(before, after, wanted, final_newline) -> None:
    text = "\n".join([*before, 'CATALINA_OPTS="-Dbase=1 ${CATALINA_OPTS}"', *after]) + ("\n" if final_newline else "")
    result = edit(text, wanted)
    assert result.changed
    line = inserted(text, result.new_text)
    assert line.strip() == option_line("wiki", *next(iter(wanted.items())))
    assert edit(result.new_text, wanted).changed is False
    assert edit(result.new_text, {}).new_text == text  # direct takes it out again, byte for byte
