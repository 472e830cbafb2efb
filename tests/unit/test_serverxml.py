"""The server.xml reader and Connector editor (wizard.confluence.serverxml).

The fixtures under tests/fixtures/serverxml are modelled on stock Confluence
6.x to 8.x files and on the variants admins really have (CRLF, BOM, one
attribute per line, an old proxyName, two Connectors, ...). Checks use
ElementTree, an independent parser, to confirm what Tomcat would read.
"""

from __future__ import annotations

import string
import tracemalloc
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wizard.errors import BadInputError
from wizard.confluence.serverxml import (
    ServerXmlError,
    _decode_attribute,
    _escape_attribute,
    decode_server_xml,
    encode_server_xml,
    find_connectors,
    plan_connector_edit,
    read_facts,
    read_synchrony_port,
    read_synchrony_service_url,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
PROXY_ATTRIBUTES = ("proxyName", "proxyPort", "scheme", "secure")


@dataclass(frozen=True)
class Case:
    """An editable fixture: what read_facts says, and which Connector an edit targets."""

    name: str
    port: int | None  # passed to plan_connector_edit
    edited: int  # the port of the Connector that gets edited
    confluence_port: int | None
    context_path: str | None
    shutdown_port: int | None


CASES = [
    Case("confluence-6-stock.xml", None, 8090, 8090, "", 8000),
    Case("confluence-7-stock.xml", None, 8090, 8090, "", 8000),
    Case("confluence-8-stock.xml", None, 8090, 8090, "", 8000),
    Case("crlf.xml", None, 8090, 8090, "", 8000),
    Case("utf8-bom.xml", None, 8090, 8090, "", 8000),
    Case("ansible-port-8080.xml", None, 8080, 8080, "", 8005),
    Case("one-attribute-per-line.xml", None, 8090, 8090, "", 8000),
    Case("single-quotes.xml", None, 8090, 8090, "", 8000),
    Case("old-proxy-name.xml", None, 8090, 8090, "", 8000),
    Case("plain-and-ssl.xml", None, 8090, 8090, "", 8000),
    Case("plain-and-ssl.xml", 8443, 8443, 8090, "", 8000),
    Case("context-path-wiki.xml", 8090, 8090, 8090, "/wiki", 8000),
    Case("not-self-closing.xml", None, 8090, 8090, "", 8000),
    Case("iso-8859-1.xml", None, 8090, 8090, "", 8000),
    Case("http-and-ajp.xml", None, 8090, 8090, "", 8000),
    Case("two-http-connectors.xml", 8091, 8091, None, "", 8000),
]
CASE_IDS = [f"{c.name}-{c.port}" for c in CASES]
ALL_FIXTURES = sorted(p.name for p in FIXTURES.iterdir())


def load(name: str) -> tuple[str, str]:
    return decode_server_xml((FIXTURES / name).read_bytes())


def connectors_by_port(text: str, encoding: str) -> dict[str, list[dict[str, str]]]:
    """Every Connector an independent parser (ElementTree, given the bytes) sees, by port."""
    root = ET.fromstring(encode_server_xml(text, encoding))
    assert root.tag == "Server"
    found: dict[str, list[dict[str, str]]] = {}
    for connector in root.iter("Connector"):
        found.setdefault(connector.get("port", ""), []).append(dict(connector.attrib))
    return found


def edit(text: str, port: int | None, scheme: str = "https", name: str = "confluence.example.com",
         proxy_port: int | None = None):
    if proxy_port is None:
        proxy_port = 443 if scheme == "https" else 80
    return plan_connector_edit(text, port=port, proxy_name=name, proxy_port=proxy_port,
                               scheme=scheme)


# --------------------------------------------------------------------------- facts


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_facts(case: Case) -> None:
    text, _ = load(case.name)
    facts = read_facts(text)
    assert facts.confluence_port == case.confluence_port, facts.confluence_port_reason
    assert facts.context_path == case.context_path, facts.context_path_reason
    assert facts.shutdown_port == case.shutdown_port
    assert facts.connectors, "every editable fixture has an active Connector"
    assert all(c.service is not None for c in facts.connectors)


def test_facts_of_stock_file_describe_the_connector() -> None:
    text, _ = load("confluence-7-stock.xml")
    facts = read_facts(text)
    # Four Connectors in the file, three commented out.
    assert text.count("<Connector ") == 4
    [connector] = facts.connectors
    assert connector.port == 8090
    assert connector.protocol == "org.apache.coyote.http11.Http11NioProtocol"
    assert connector.redirect_port == 8443
    assert connector.scheme is None and connector.proxy_name is None
    assert not connector.secure and not connector.ssl_enabled
    assert connector.service == "Tomcat-Standalone"
    assert facts.service_names == ["Tomcat-Standalone"]
    assert "only active HTTP Connector" in facts.confluence_port_reason


def test_facts_of_plain_and_ssl() -> None:
    facts = read_facts(load("plain-and-ssl.xml")[0])
    plain, ssl = facts.connectors
    assert (plain.port, plain.ssl_enabled) == (8090, False)
    assert (ssl.port, ssl.ssl_enabled, ssl.secure, ssl.scheme) == (8443, True, True, "https")
    assert ssl.attributes["keystorePass"] == "s3cret&more"  # decoded like Tomcat reads it
    assert facts.confluence_port == 8090


def test_facts_of_old_proxy_and_ambiguous_ports() -> None:
    old = read_facts(load("old-proxy-name.xml")[0]).connectors[0]
    assert (old.proxy_name, old.proxy_port, old.scheme, old.secure) == (
        "old.example.com", 443, "https", True)
    facts = read_facts(load("two-http-connectors.xml")[0])
    assert facts.confluence_port is None
    assert "8090" in facts.confluence_port_reason and "8091" in facts.confluence_port_reason
    assert "confluence_port" in facts.confluence_port_reason


def test_facts_without_http_connector() -> None:
    facts = read_facts(load("no-connector-on-port.xml")[0])
    assert facts.confluence_port is None
    assert "8443" in facts.confluence_port_reason


def test_ajp_connector_is_not_a_candidate() -> None:
    facts = read_facts(load("http-and-ajp.xml")[0])
    assert [c.port for c in facts.connectors] == [8090, 8009]
    assert facts.connectors[1].is_ajp
    assert facts.confluence_port == 8090


# --------------------------------------------------------------------------- find_connectors


def test_find_connectors_skips_comments_and_cdata_and_gives_offsets() -> None:
    text = (
        '<Server port="8000">\n'
        '  <!-- <Connector port="1"/> -->\n'
        '  <Service name="Tomcat-Standalone">\n'
        "    <![CDATA[ <Connector port='2'/> ]]>\n"
        '    <Connector port="8090" proxyName=\'a&amp;b\' attr = "x > y"/>\n'
        "  </Service>\n"
        '  <Connector port="9"/>\n'
        "</Server>\n")
    active, outside = find_connectors(text)
    assert text[active.start:active.end] == (
        '<Connector port="8090" proxyName=\'a&amp;b\' attr = "x > y"/>')
    assert active.line == 5 and active.self_closing and active.in_service
    assert active.service == "Tomcat-Standalone"
    assert active.ancestors == ("Server", "Service")
    name = active.attributes["proxyName"]
    assert (name.value, name.raw, name.quote) == ("a&b", "a&amp;b", "'")
    assert text[name.value_start:name.value_end] == "a&amp;b"
    assert active.attributes["attr"].value == "x > y"
    # A Connector directly in <Server> is not built by Tomcat: found, but not in a Service.
    assert outside.value("port") == "9" and not outside.in_service
    assert read_facts(text).confluence_port == 8090


def test_offsets_count_the_bom() -> None:
    text, encoding = load("utf8-bom.xml")
    assert text.startswith("\ufeff") and encoding == "utf-8"
    [connector] = find_connectors(text)
    assert text[connector.start:].startswith("<Connector port=\"8090\"")
    port = connector.attributes["port"]
    assert text[port.value_start:port.value_end] == "8090"


# --------------------------------------------------------------------------- the edit


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_edit_sets_exactly_the_intended_attributes(case: Case, scheme: str) -> None:
    text, encoding = load(case.name)
    result = edit(text, case.port, scheme)
    assert result.changed and result.port == case.edited

    before = connectors_by_port(text, encoding)
    after = connectors_by_port(result.new_text, encoding)
    assert before.keys() == after.keys()
    [old] = before[str(case.edited)]
    [new] = after[str(case.edited)]
    expected = {k: v for k, v in old.items() if k not in PROXY_ATTRIBUTES}
    expected |= {"proxyName": "confluence.example.com",
                 "proxyPort": "443" if scheme == "https" else "80", "scheme": scheme}
    if scheme == "https":
        expected["secure"] = "true"
    assert new == expected
    assert "secure" not in new if scheme == "http" else new["secure"] == "true"
    for port in before.keys() - {str(case.edited)}:
        assert before[port] == after[port], "other Connectors are untouched"
    for name, (old_value, new_value) in result.attributes_changed.items():
        assert old.get(name) == old_value and new.get(name) == new_value


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bytes_outside_the_tag_are_identical(case: Case, scheme: str) -> None:
    data = (FIXTURES / case.name).read_bytes()
    text, encoding = decode_server_xml(data)
    result = edit(text, case.port, scheme)
    new = result.new_text
    assert text[result.start:result.before_end] == result.before_tag
    assert new[result.start:result.after_end] == result.after_tag
    assert new[:result.start] == text[:result.start]
    assert new[result.after_end:] == text[result.before_end:]
    # And as bytes, which is what lands on the node.
    new_data = encode_server_xml(new, encoding)
    head = len(encode_server_xml(text[:result.start], encoding))
    tail = len(encode_server_xml(text[result.before_end:], encoding))
    assert new_data[:head] == data[:head]
    assert new_data[len(new_data) - tail:] == data[len(data) - tail:]
    # The tag keeps its ending.
    assert result.after_tag.endswith("/>") == result.before_tag.endswith("/>")


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_second_edit_is_a_no_op(case: Case, scheme: str) -> None:
    text, _ = load(case.name)
    first = edit(text, case.port, scheme)
    second = edit(first.new_text, case.port, scheme)
    assert second.changed is False
    assert second.new_text is first.new_text
    assert second.attributes_changed == {}
    assert second.before_tag == second.after_tag == first.after_tag
    assert second.reason.startswith(
        f"already has proxyName=confluence.example.com, proxyPort="
        f"{443 if scheme == 'https' else 80}, scheme={scheme}")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_switching_scheme_adds_and_removes_secure(case: Case) -> None:
    text, encoding = load(case.name)
    https = edit(text, case.port, "https")
    http = edit(https.new_text, case.port, "http")
    assert http.attributes_changed["secure"] == ("true", None)
    assert http.attributes_changed["scheme"] == ("https", "http")
    [connector] = connectors_by_port(http.new_text, encoding)[str(case.edited)]
    assert "secure" not in connector
    back = edit(http.new_text, case.port, "https")
    assert back.attributes_changed["secure"] == (None, "true")
    assert connectors_by_port(back.new_text, encoding) == \
        connectors_by_port(https.new_text, encoding)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_encode_decode_round_trip_is_byte_exact(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    text, encoding = decode_server_xml(data)
    assert encode_server_xml(text, encoding) == data


def test_stock_layout_gets_one_new_line_at_the_same_indentation() -> None:
    text, _ = load("confluence-7-stock.xml")
    result = edit(text, None, "https")
    assert result.after_tag == result.before_tag.replace(
        'Http11NioProtocol"/>',
        'Http11NioProtocol"\n                   proxyName="confluence.example.com" proxyPort="443"'
        ' scheme="https" secure="true"/>')


def test_one_attribute_per_line_adds_each_on_its_own_line() -> None:
    text, _ = load("one-attribute-per-line.xml")
    result = edit(text, None, "http")
    assert result.after_tag == result.before_tag.replace(
        'Http11NioProtocol"\n',
        'Http11NioProtocol"\n'
        '        proxyName="confluence.example.com"\n'
        '        proxyPort="80"\n'
        '        scheme="http"\n')
    assert result.after_tag.endswith('\n    />')


def test_crlf_tag_gets_crlf() -> None:
    text, _ = load("crlf.xml")
    result = edit(text, None, "https")
    assert result.after_tag.count("\n") == result.after_tag.count("\r\n") == 4
    assert result.new_text.count("\n") == result.new_text.count("\r\n")


def test_single_line_single_quotes_stay_single_line_and_single_quoted() -> None:
    text, _ = load("single-quotes.xml")
    result = edit(text, None, "https")
    assert "\n" not in result.after_tag
    assert result.after_tag.endswith(
        " proxyName='confluence.example.com' proxyPort='443' scheme='https' secure='true'/>")


def test_old_proxy_name_is_updated_in_place() -> None:
    text, encoding = load("old-proxy-name.xml")
    result = edit(text, None, "https", name="new.example.com")
    assert result.attributes_changed == {"proxyName": ("old.example.com", "new.example.com")}
    assert result.after_tag == result.before_tag.replace(
        'proxyName="old.example.com"', 'proxyName="new.example.com"')
    assert result.after_tag.count("proxyName") == 1
    # The commented-out Connector with the older domain is left alone.
    assert "wiki.old-company.example" in result.new_text
    [connector] = connectors_by_port(result.new_text, encoding)["8090"]
    assert connector["proxyName"] == "new.example.com"


def test_ansible_empty_proxy_values_and_secure_false() -> None:
    text, _ = load("ansible-port-8080.xml")
    https = edit(text, None, "https")
    assert https.attributes_changed == {
        "proxyName": ("", "confluence.example.com"), "proxyPort": ("", "443"),
        "scheme": ("http", "https"), "secure": ("false", "true")}
    http = edit(text, None, "http")
    assert http.attributes_changed["secure"] == ("false", None)
    assert '                   secure="false"\n' not in http.after_tag
    assert http.after_tag.endswith('disableUploadTimeout="true" />')


def test_not_self_closing_keeps_its_children() -> None:
    text, _ = load("not-self-closing.xml")
    result = edit(text, None, "https")
    assert result.after_tag.endswith(' secure="true">')
    assert "<UpgradeProtocol" in result.new_text and "</Connector>" in result.new_text
    facts = read_facts(text)
    assert facts.context_path == ""  # path="/" is the ROOT context


def test_secure_true_in_any_case_counts_as_set() -> None:
    text = '<Server><Service><Connector port="8090" proxyName="a.example" proxyPort="443" ' \
           'scheme="https" secure="TRUE"/></Service></Server>'
    result = edit(text, None, "https", name="a.example")
    assert not result.changed


def test_iso_8859_1_file_stays_latin_1() -> None:
    data = (FIXTURES / "iso-8859-1.xml").read_bytes()
    text, encoding = decode_server_xml(data)
    assert encoding == "iso8859-1" and "Configuración" in text
    new = encode_server_xml(edit(text, None).new_text, encoding)
    assert "Configuración".encode("latin-1") in new


def test_editing_the_ssl_connector_on_request() -> None:
    text, _ = load("plain-and-ssl.xml")
    result = edit(text, 8443, "https")
    # scheme and secure are already right on a TLS Connector; only the proxy values are added.
    assert result.attributes_changed == {"proxyName": (None, "confluence.example.com"),
                                         "proxyPort": (None, "443")}
    assert "keystorePass" in result.before_tag  # the caller redacts before storing


# --------------------------------------------------------------------------- refusals


def refused(text: str, **kwargs) -> ServerXmlError:
    arguments = {"port": None, "proxy_name": "confluence.example.com", "proxy_port": 443,
                 "scheme": "https"} | kwargs
    with pytest.raises(ServerXmlError) as caught:
        plan_connector_edit(text, **arguments)
    error = caught.value
    assert isinstance(error, BadInputError)
    assert error.message and error.hint
    return error


def test_refuses_malformed_file() -> None:
    text, _ = load("malformed-unclosed.xml")
    error = refused(text)
    assert "not well-formed" in error.message and "line 13" in error.message
    assert "closes <Connector> opened on line 3" in error.message
    with pytest.raises(ServerXmlError):
        read_facts(text)
    with pytest.raises(ServerXmlError):
        find_connectors(text)


def test_refuses_no_connector_on_the_port_listing_the_ports_found() -> None:
    text, _ = load("no-connector-on-port.xml")
    error = refused(text, port=8090)
    assert "port 8090" in error.message and "8443" in error.message
    assert "confluence_port" in error.hint
    error = refused(text)  # and no plain-HTTP Connector to pick by itself
    assert "8443" in error.message


def test_refuses_two_connectors_on_the_same_port() -> None:
    text, _ = load("same-port-twice.xml")
    for port in (8090, None):
        error = refused(text, port=port)
        assert "2 active Connectors on port 8090" in error.message
        assert "lines 3, 8" in error.message


def test_refuses_ambiguous_connectors_without_port() -> None:
    text, _ = load("two-http-connectors.xml")
    error = refused(text)
    assert "8090" in error.message and "8091" in error.message
    assert "confluence_port" in error.hint


def test_refuses_duplicate_attribute() -> None:
    text, _ = load("duplicate-attribute.xml")
    error = refused(text)
    assert "proxyName more than once" in error.message and "line 3" in error.message


@pytest.mark.parametrize("text, words", [
    ('<Context path=""/>', "<Context>, not <Server>"),
    ("", "not well-formed"),
    ('<Server><Service><!-- <Connector port="8090"/> --></Service></Server>', "commented out"),
    ('<Server><Connector port="8090"/></Server>', "outside any <Service>"),
])
def test_refuses_other_files(text: str, words: str) -> None:
    assert words in refused(text, port=8090).message


@pytest.mark.parametrize("kwargs, words", [
    ({"scheme": "ftp"}, "scheme"),
    ({"scheme": "HTTPS"}, "scheme"),
    ({"proxy_name": "https://confluence.example.com"}, "scheme"),
    ({"proxy_name": "confluence.example.com/wiki"}, "path"),
    ({"proxy_name": "confluence.example.com:443"}, "port"),
    ({"proxy_name": ""}, "empty"),
    ({"proxy_name": "bad host"}, "not a valid host name"),
    ({"proxy_name": 'a"b'}, "not a valid host name"),
    ({"proxy_name": "-bad.example.com"}, "not a valid host name"),
    ({"proxy_name": "10.0.0.999"}, "IPv4"),
    ({"proxy_port": 0}, "proxy_port"),
    ({"proxy_port": 65536}, "proxy_port"),
    ({"proxy_port": True}, "proxy_port"),
    ({"port": "8090"}, "port"),
])
def test_refuses_bad_values(kwargs: dict, words: str) -> None:
    text, _ = load("confluence-7-stock.xml")
    assert words in refused(text, **kwargs).message


def test_accepts_ip_address_and_single_label() -> None:
    text, _ = load("confluence-7-stock.xml")
    assert edit(text, None, name="10.0.0.5").changed
    assert edit(text, None, name="confluence").changed


# --------------------------------------------------------------------------- bytes


def test_decode_refusals_and_encode_failure() -> None:
    with pytest.raises(ServerXmlError, match="not valid utf-8"):
        decode_server_xml(b"<Server>\xff</Server>")
    with pytest.raises(ServerXmlError, match="byte order mark but declares"):
        decode_server_xml(b'\xef\xbb\xbf<?xml version="1.0" encoding="ISO-8859-1"?><Server/>')
    with pytest.raises(ServerXmlError, match="does not know"):
        decode_server_xml(b'<?xml version="1.0" encoding="x-no-such"?><Server/>')
    with pytest.raises(ServerXmlError, match="ASCII-compatible"):
        decode_server_xml(b'<?xml version="1.0" encoding="UTF-16"?><Server/>')
    with pytest.raises(ServerXmlError, match="cannot hold"):
        encode_server_xml("<Server>\u20ac</Server>", "iso8859-1")


@pytest.mark.parametrize("data, encoding", [
    (b"<Server/>", "utf-8"),
    (b'<?xml version="1.0"?>\n<Server/>', "utf-8"),
    (b"\xef\xbb\xbf<Server/>", "utf-8"),
    ('\ufeff<?xml version="1.0" encoding="UTF-16"?><Server/>'.encode("utf-16-le"), "utf-16-le"),
    ('\ufeff<Server/>'.encode("utf-16-be"), "utf-16-be"),
    ('<?xml version="1.0" encoding="windows-1252"?><Server>\u20ac</Server>'.encode("cp1252"),
     "cp1252"),
])
def test_decode_encodings(data: bytes, encoding: str) -> None:
    text, found = decode_server_xml(data)
    assert found == encoding
    assert encode_server_xml(text, found) == data
    assert read_facts(text).connectors == []


@given(st.binary(max_size=200))
@settings(max_examples=200)
def test_round_trip_for_any_accepted_bytes(data: bytes) -> None:
    try:
        text, encoding = decode_server_xml(data)
    except ServerXmlError:
        return
    assert encode_server_xml(text, encoding) == data


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), st.sampled_from("\"'"))
def test_escaped_values_read_back(value: str, quote: str) -> None:
    escaped = _escape_attribute(value, quote)
    assert quote not in escaped and "<" not in escaped
    assert _decode_attribute(escaped) == value


# --------------------------------------------------------------------------- setenv.sh


def test_synchrony_settings_from_fixture() -> None:
    text = (FIXTURES / "setenv.sh").read_text()
    assert read_synchrony_port(text) == 8099  # the last active one; comments ignored
    assert read_synchrony_service_url(text) == \
        "http://synchrony.internal.example.com:8091/synchrony/v1"


@pytest.mark.parametrize("text, port", [
    ("", None),
    ('#CATALINA_OPTS="-Dsynchrony.port=8099"\n', None),
    ('  # CATALINA_OPTS="-Dsynchrony.port=8099"\n', None),
    ('CATALINA_OPTS="-Dsynchrony.port=8099 ${CATALINA_OPTS}"\n', 8099),
    ("CATALINA_OPTS='-Dsynchrony.port=8099'\nexport CATALINA_OPTS\n", 8099),
    ('CATALINA_OPTS="-Dsynchrony.port=\'8100\' ${CATALINA_OPTS}"\n', 8100),
    ('CATALINA_OPTS="-Xmx1g \\\n  -Dsynchrony.port=8101 \\\n  ${CATALINA_OPTS}"\n', 8101),
    ('CATALINA_OPTS="-Dsynchrony.port=8099" # -Dsynchrony.port=1\n', 8099),
    ('CATALINA_OPTS="# not a comment -Dsynchrony.port=8102"\n', 8102),
    ('CATALINA_OPTS="-Dxsynchrony.port=1 -Dsynchrony.portal=2"\n', None),
    ('CATALINA_OPTS="-Dsynchrony.port=8099";#CATALINA_OPTS="-Dsynchrony.port=1"\n', 8099),
])
def test_synchrony_port(text: str, port: int | None) -> None:
    assert read_synchrony_port(text) == port


def test_synchrony_port_that_is_a_variable_is_refused() -> None:
    with pytest.raises(ServerXmlError, match="not a port number") as caught:
        read_synchrony_port('CATALINA_OPTS="-Dsynchrony.port=${SYNCHRONY_PORT} ${CATALINA_OPTS}"')
    assert "synchrony_port" in caught.value.hint


def test_synchrony_service_url_absent_or_commented() -> None:
    assert read_synchrony_service_url("# -Dsynchrony.service.url=http://x/synchrony/v1\n") is None
    assert read_synchrony_service_url(
        "CATALINA_OPTS=\"-Dsynchrony.service.url='http://a:8091/synchrony/v1' $X\"") == \
        "http://a:8091/synchrony/v1"


# --------------------------------------------------------------------------- hypothesis

NEWLINE = st.sampled_from(["\n", "\r\n"])
BLANK = st.lists(st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\n    ", "\r\n\t"]),
                 max_size=3).map("".join)
SEPARATOR = st.lists(st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\n           ",
                                      "\r\n        ", " \n  "]),
                     min_size=1, max_size=2).map("".join)
FREE_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " <>&\"'=/.:\n\t\u00e9\u20ac",
                    max_size=25)
FAKE_CONNECTOR = st.sampled_from([
    "", '<Connector port="8090" proxyName="evil.example.com" secure="true"/>',
    "<Connector port='8090' scheme='http'>", '<Connector port="8443" SSLEnabled="true"/>'])
ATTRIBUTE_POOL = [
    ("connectionTimeout", "20000"), ("redirectPort", "8443"), ("maxThreads", "48"),
    ("minSpareThreads", "10"), ("enableLookups", "false"), ("acceptCount", "10"),
    ("URIEncoding", "UTF-8"), ("protocol", "org.apache.coyote.http11.Http11NioProtocol"),
    ("maxPostSize", "16777216"), ("relaxedQueryChars", "[]|{}^\\`\"<>"), ("debug", "0"),
    ("bindOnInit", "false"), ("note", "a > b & 'c'"),
]
EXISTING_PROXY = [("proxyName", "old.example.com"), ("proxyName", ""), ("proxyPort", "8443"),
                  ("scheme", "http"), ("scheme", "https"), ("secure", "false"),
                  ("secure", "true")]


def written(value: str, quote: str) -> str:
    """``value`` as it would appear in a file, escaped independently of the module."""
    value = value.replace("&", "&amp;").replace("<", "&lt;")
    return value.replace(quote, "&quot;" if quote == '"' else "&apos;")


@st.composite
def comment(draw) -> str:
    body = (draw(FREE_TEXT) + draw(FAKE_CONNECTOR) + draw(FREE_TEXT)).replace("-", "")
    return f"<!--{body}-->"


@st.composite
def cdata(draw) -> str:
    body = draw(FREE_TEXT) + draw(FAKE_CONNECTOR)
    return f"<![CDATA[{body.replace(']]>', '')}]]>"


OTHER_ELEMENT = st.sampled_from([
    '<Listener className="org.apache.catalina.startup.VersionLoggerListener"/>',
    ("<GlobalNamingResources>\n  <Resource name='jdbc/confluence' password=\"p&amp;ss&lt;\"/>"
     "\n</GlobalNamingResources>"),
    "<?tomcat a processing instruction?>",
    '<Valve className="org.apache.catalina.valves.AccessLogValve" pattern="%h &quot;%r&quot;"/>',
])


def inside(allow_cdata: bool = True):
    kinds = [BLANK, comment(), OTHER_ELEMENT] + ([cdata()] if allow_cdata else [])
    return st.lists(st.one_of(kinds), max_size=3).map("".join)


OUTSIDE_ROOT = st.lists(st.one_of(BLANK.map(lambda s: s or " "), comment()),
                        max_size=2).map("".join)


@st.composite
def connector(draw) -> tuple[str, str, dict[str, str]]:
    """A Connector start tag (and end) with random attributes, order, quotes and layout."""
    chosen = draw(st.lists(st.sampled_from(ATTRIBUTE_POOL), unique_by=lambda a: a[0], max_size=8))
    proxy = draw(st.lists(st.sampled_from(EXISTING_PROXY), unique_by=lambda a: a[0], max_size=4))
    attributes = draw(st.permutations([("port", "8090")] + chosen + proxy))
    parts = ["<Connector"]
    for name, value in attributes:
        quote = draw(st.sampled_from("\"'"))
        around = draw(st.sampled_from(["=", " = ", "=\n"]))
        parts.append(f"{draw(SEPARATOR)}{name}{around}{quote}{written(value, quote)}{quote}")
    closing = draw(st.sampled_from(["/>", ">"]))
    parts.append(draw(BLANK) + closing)
    tag = "".join(parts)
    end = "" if closing == "/>" else draw(inside(False)) + "</Connector>"
    return tag, end, dict(attributes)


@st.composite
def documents(draw):
    tag, end, attributes = draw(connector())
    bom = draw(st.sampled_from(["", "\ufeff"]))
    declaration = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>',
                                        "<?xml version='1.0'?>"]))
    newline = draw(NEWLINE)
    other = draw(st.sampled_from([
        "", '<Connector port="8443" SSLEnabled="true" keystorePass="x&amp;y" scheme="https"/>',
        "<Connector port='8009' protocol='AJP/1.3'/>"]))
    prefix = (bom + declaration + (draw(OUTSIDE_ROOT) if declaration else "")
              + '<Server port="8000" shutdown="SHUTDOWN">' + draw(inside())
              + '<Service name="Tomcat-Standalone">' + newline + draw(inside()))
    suffix = (end + draw(inside()) + other + draw(inside())
              + '<Engine name="Standalone" defaultHost="localhost"><Host name="localhost">'
              + '<Context path="" docBase="../confluence"/></Host></Engine>'
              + draw(inside()) + "</Service>" + draw(inside()) + "</Server>"
              + draw(OUTSIDE_ROOT))
    return prefix, tag, suffix, attributes


HOST = st.from_regex(r"[a-z](?:[a-z0-9-]{0,8}[a-z0-9])?(?:\.[a-z](?:[a-z0-9-]{0,6}[a-z0-9])?){0,3}",
                     fullmatch=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), HOST, st.sampled_from([80, 443, 8443]), st.sampled_from(["http", "https"]))
def test_every_byte_outside_the_edited_tag_survives(document, host, proxy_port, scheme) -> None:
    prefix, tag, suffix, attributes = document
    text = prefix + tag + suffix
    result = plan_connector_edit(text, port=8090, proxy_name=host, proxy_port=proxy_port,
                                 scheme=scheme)
    new = result.new_text
    assert result.start == len(prefix) and result.before_tag == tag
    assert new[:result.start] == prefix
    assert new[result.after_end:] == suffix

    # It parses, and an independent parser reads exactly the intended attributes.
    root = ET.fromstring(new.removeprefix("\ufeff").encode("utf-8"))
    [edited] = [c for c in root.iter("Connector") if c.get("port") == "8090"]
    expected = {k: v for k, v in attributes.items() if k not in PROXY_ATTRIBUTES}
    expected |= {"proxyName": host, "proxyPort": str(proxy_port), "scheme": scheme}
    if scheme == "https":
        expected["secure"] = "true" if attributes.get("secure", "").lower() != "true" \
            else attributes["secure"]
    assert dict(edited.attrib) == expected

    # Existing attributes keep their order and quotes; the tag keeps its ending.
    [before] = [c for c in find_connectors(text) if c.value("port") == "8090"]
    [after] = [c for c in find_connectors(new) if c.value("port") == "8090"]
    kept = [n for n in before.attributes if n in after.attributes]
    assert list(after.attributes)[:len(kept)] == kept
    for name in kept:
        assert after.attributes[name].quote == before.attributes[name].quote
        if name not in PROXY_ATTRIBUTES:
            assert after.attributes[name].raw == before.attributes[name].raw
    assert result.after_tag.endswith("/>") == tag.endswith("/>")
    # A tag written with CRLF only never gains a bare LF.
    if "\n" in tag and tag.count("\n") == tag.count("\r\n"):
        assert result.after_tag.count("\n") == result.after_tag.count("\r\n")

    again = plan_connector_edit(new, port=8090, proxy_name=host, proxy_port=proxy_port,
                                scheme=scheme)
    assert again.changed is False and again.new_text == new


# --------------------------------------------------------------------------- hostile sizes
# Work must stay linear in the file's size, and absurd files are refused. These
# tests count work (characters scanned, bytes allocated) instead of timing it, so
# they hold on a loaded machine.

SERVER_OPEN = '<Server port="8000" shutdown="SHUTDOWN"><Service name="S">\n'
SERVER_CLOSE = '<Connector port="8090"/>\n</Service></Server>\n'


class CountingText(str):
    """Text that adds up how many characters each ``count`` call scans."""

    scanned = 0

    def count(self, sub, start=None, end=None):  # type: ignore[override]
        begin = 0 if start is None else start
        stop = len(self) if end is None else end
        CountingText.scanned += max(0, stop - begin)
        return super().count(sub, start, end)


def peak_bytes(call) -> int:
    """The peak memory ``call()`` allocates (tracemalloc), whether it returns or raises."""
    tracemalloc.start()
    try:
        call()
    except ServerXmlError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_line_numbers_of_many_connectors_scan_the_file_a_bounded_number_of_times() -> None:
    # Every Connector's line used to be counted from the start of the file:
    # 5,000 Connectors meant scanning about 5,000 / 2 times the file.
    lines = [f'<Connector port="{10000 + i}" protocol="AJP/1.3"/>' for i in range(5000)]
    text = CountingText(SERVER_OPEN + "\n".join(lines) + "\n" + SERVER_CLOSE)
    CountingText.scanned = 0
    facts = read_facts(text)
    assert CountingText.scanned <= 3 * len(text)
    assert [c.line for c in facts.connectors] == list(range(2, 5003))
    assert facts.confluence_port == 8090


def test_deep_nesting_is_refused_without_quadratic_memory() -> None:
    depth = 5000  # the 20,000 deep file found cost 1.6 GB; this one is refused at once
    text = SERVER_OPEN + "<a>" * depth + "</a>" * depth + SERVER_CLOSE
    with pytest.raises(ServerXmlError) as caught:
        read_facts(text)
    assert "more than 200 deep" in caught.value.message
    assert "install_dir" in caught.value.hint and "nothing was changed" in caught.value.hint
    assert peak_bytes(lambda: read_facts(text)) < 2_000_000


def test_memory_does_not_grow_with_depth() -> None:
    # Each tag used to hold a tuple of all its ancestors: depth x tags.
    def document(depth: int) -> str:
        return (SERVER_OPEN + "<a>" * depth + "<b/>" * 3000 + "</a>" * depth + SERVER_CLOSE)

    shallow = peak_bytes(lambda: read_facts(document(3)))
    deep = peak_bytes(lambda: read_facts(document(190)))
    assert deep < shallow * 1.3 + 200_000, (shallow, deep)


def test_too_many_elements_are_refused() -> None:
    connectors = "".join(f'<Connector port="{10000 + i}"/>\n' for i in range(20000))
    text = SERVER_OPEN + connectors + SERVER_CLOSE  # about 600 kB
    with pytest.raises(ServerXmlError) as caught:
        plan_connector_edit(text, port=8090, proxy_name="a.example.com", proxy_port=443,
                            scheme="https")
    assert "more than 10,000 elements" in caught.value.message
    assert "install_dir" in caught.value.hint
    assert peak_bytes(lambda: read_facts(text)) < 40_000_000


def test_absurdly_large_file_is_refused_before_it_is_parsed() -> None:
    big = (SERVER_OPEN + "<!--" + "x" * (5 * 1024 * 1024) + "-->" + SERVER_CLOSE)
    with pytest.raises(ServerXmlError) as caught:
        decode_server_xml(big.encode("utf-8"))
    assert "more than the 4,194,304" in caught.value.message
    assert "install_dir" in caught.value.hint and "nothing was changed" in caught.value.hint
    with pytest.raises(ServerXmlError, match="more than the 4,194,304"):
        read_facts(big)


def test_a_huge_gap_in_the_tag_is_not_copied_for_each_new_attribute() -> None:
    text = SERVER_OPEN.replace("<Service", "<Service" + " " * 1_000_000) + SERVER_CLOSE
    text = text.replace("<Connector port", "<Connector" + " " * 1_000_000 + "port")
    result = edit(text, 8090)
    assert len(result.new_text) < len(text) + 200
    assert result.new_text[:result.start] == text[:result.start]
