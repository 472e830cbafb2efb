"""Secrets are masked wherever they hide; ordinary text passes through untouched."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wizard.redact import MASK, is_secret_name, redact

# A Connector as Confluence ships it, with the proxy attributes the wizard adds: no secret in it.
PLAIN_CONNECTOR = """\
<Server port="8000" shutdown="SHUTDOWN" debug="0">
    <Service name="Tomcat-Standalone">
        <Connector port="8090" connectionTimeout="20000" redirectPort="8443"
                   maxThreads="48" maxPostSize="16777216" minSpareThreads="10"
                   enableLookups="false" acceptCount="10" URIEncoding="UTF-8"
                   protocol="org.apache.coyote.http11.Http11NioProtocol"
                   scheme="https" secure="true" proxyName="wiki.example.com" proxyPort="443"/>
        <Engine name="Standalone" defaultHost="localhost" debug="0">
            <Host name="localhost" debug="0" appBase="webapps" unpackWARs="true" autoDeploy="false">
                <Context path="" docBase="../confluence" debug="0" reloadable="false" useHttpOnly="true">
                    <Manager pathname=""/>
                    <Valve className="org.apache.catalina.valves.StuckThreadDetectionValve" threshold="60"/>
                </Context>
            </Host>
        </Engine>
    </Service>
</Server>
"""

PROXY_DIFF = """\
--- a/opt/atlassian/confluence/conf/server.xml
+++ b/opt/atlassian/confluence/conf/server.xml
@@ -3,7 +3,8 @@
         <Connector port="8090" connectionTimeout="20000" redirectPort="8443"
                    maxThreads="48" maxPostSize="16777216" minSpareThreads="10"
                    enableLookups="false" acceptCount="10" URIEncoding="UTF-8"
-                   protocol="org.apache.coyote.http11.Http11NioProtocol"/>
+                   protocol="org.apache.coyote.http11.Http11NioProtocol"
+                   scheme="https" secure="true" proxyName="wiki.example.com" proxyPort="443"/>
"""

APACHE_VHOST = """\
<VirtualHost *:443>
    ServerName wiki.example.com
    ProxyRequests Off
    ProxyPreserveHost On
    <Proxy balancer://confluence>
        BalancerMember http://10.0.1.11:8090 route=node1
        BalancerMember http://10.0.1.12:8090 route=node2
        ProxySet stickysession=JSESSIONID|jsessionid
    </Proxy>
    ProxyPass /synchrony balancer://synchrony/synchrony
    ProxyPass / balancer://confluence/ stickysession=JSESSIONID|jsessionid nofailover=On
    ProxyPassReverse / balancer://confluence/
    SSLCertificateFile /etc/ssl/wiki.crt
    SSLCertificateKeyFile /etc/ssl/wiki.key
</VirtualHost>
"""

ORDINARY = [
    PLAIN_CONNECTOR,
    PROXY_DIFF,
    APACHE_VHOST,
    "PasswordAuthentication no",
    "ssh -o PasswordAuthentication=no -o BatchMode=yes node1.internal",
    "sudo systemctl restart confluence",
    "The password is asked for at run time; it is never stored.",
    "psql --no-password -h db.internal confluence",
    "curl -fsS http://10.0.1.11:8090/status",
    "https://wiki.example.com:443/confluence",
    "key_file: ~/.ssh/id_ed25519",
    'keystoreFile="/opt/atlassian/confluence/conf/keystore.jks" keyAlias="tomcat"',
    "",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        ('<Connector keystorePass="s3cret"/>', "s3cret", f'<Connector keystorePass="{MASK}"/>'),
        ("<Connector keystorePass='s3cret'/>", "s3cret", f"<Connector keystorePass='{MASK}'/>"),
        ('truststorePass="tr-pw" truststoreType="JKS"', "tr-pw", f'truststorePass="{MASK}" truststoreType="JKS"'),
        ("truststorePass='tr-pw'", "tr-pw", f"truststorePass='{MASK}'"),
        ('<Resource password="db-pw" username="confluence"/>', "db-pw",
         f'<Resource password="{MASK}" username="confluence"/>'),
        ("<Realm connectionPassword='ldap-pw'/>", "ldap-pw", f"<Realm connectionPassword='{MASK}'/>"),
        ("password=abc123", "abc123", f"password={MASK}"),
        ("db.password = abc123\nother=1", "abc123", f"db.password = {MASK}\nother=1"),
        ("PGPASSWORD=hunter2 psql -h db confluence", "hunter2", f"PGPASSWORD={MASK} psql -h db confluence"),
        ("PGPASSWORD='hunter 2' psql", "hunter 2", f"PGPASSWORD='{MASK}' psql"),
        ('env PGPASSWORD="hunter2" psql', "hunter2", f'env PGPASSWORD="{MASK}" psql'),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI",
         f"aws_secret_access_key = {MASK}"),
        ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "wJalrXUtnFEMI", f"export AWS_SECRET_ACCESS_KEY={MASK}"),
        ("aws_session_token=FwoGZXIvYXdzE", "FwoGZXIvYXdzE", f"aws_session_token={MASK}"),
        ('{"SecretAccessKey": "wJalr", "AccessKeyId": "AKIA1"}', "wJalr",
         f'{{"SecretAccessKey": "{MASK}", "AccessKeyId": "AKIA1"}}'),
        ("password: 'x1'", "x1", f"password: '{MASK}'"),
        ("keytool -importkeystore -srcstorepass abc -deststorepass def -alias a", "abc",
         f"keytool -importkeystore -srcstorepass {MASK} -deststorepass {MASK} -alias a"),
        ("jdbc:postgresql://db/confluence?user=c&password=pw9", "pw9",
         f"jdbc:postgresql://db/confluence?user=c&password={MASK}"),
        ("postgresql://confluence:pw9@db:5432/confluence", "pw9",
         f"postgresql://confluence:{MASK}@db:5432/confluence"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", f"Authorization: Basic {MASK}"),
        ('<property name="hibernate.connection.password">dbpw</property>', "dbpw",
         f'<property name="hibernate.connection.password">{MASK}</property>'),
        ("<keystorePass>kpw</keystorePass>", "kpw", f"<keystorePass>{MASK}</keystorePass>"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow",
         f"-----BEGIN RSA PRIVATE KEY-----\n{MASK}\n-----END RSA PRIVATE KEY-----"),
    ],
)
def test_secrets_are_masked(text: str, secret: str, expected: str) -> None:
    masked = redact(text)
    assert masked == expected
    assert secret not in masked


def test_secrets_inside_xml_comments_are_masked() -> None:
    text = ("<!--\n<Connector port=\"8443\" SSLEnabled=\"true\"\n"
            "           keystorePass=\"changeit\" truststorePass='trustme' />\n-->")
    masked = redact(text)
    assert "changeit" not in masked and "trustme" not in masked
    assert masked.startswith("<!--") and masked.endswith("-->")
    assert f'keystorePass="{MASK}"' in masked and f"truststorePass='{MASK}'" in masked


def test_diff_of_a_secret_masks_both_sides() -> None:
    diff = ('-   <Connector keystorePass="old-pw" port="8443"/>\n'
            '+   <Connector keystorePass="new-pw" port="8443" proxyName="wiki.example.com"/>\n')
    masked = redact(diff)
    assert "old-pw" not in masked and "new-pw" not in masked
    assert 'proxyName="wiki.example.com"' in masked
    assert masked.count(MASK) == 2


def test_an_empty_password_stays_empty() -> None:
    # "no password" is worth seeing and is no secret.
    assert redact('keystorePass=""') == 'keystorePass=""'


def test_secret_names() -> None:
    for name in ("password", "keystorePass", "truststorePass", "PGPASSWORD", "aws_secret_access_key",
                 "SecretAccessKey", "SessionToken", "passphrase", "client_secret"):
        assert is_secret_name(name), name
    for name in ("key_file", "proxyName", "passwordAuthentication", "known_hosts", "name"):
        assert not is_secret_name(name), name


@pytest.mark.parametrize("text", ORDINARY + [
    '<Connector keystorePass="s3cret" password=\'x\'/>', "PGPASSWORD=hunter2 psql",
    'password="a\\"b" token=x', "aws_secret_access_key=\n", "Authorization: Bearer",
    "-----BEGIN PRIVATE KEY-----\nabc",
])
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


# Fragments that make up secret-looking text, so hypothesis explores the rules'
# edges rather than random bytes that never come near them.
FRAGMENTS = st.sampled_from([
    "password", "Pass", "keystorePass", "PGPASSWORD", "aws_secret_access_key", "SessionToken",
    "secret", "token", "passphrase", "Authorization", "Basic", "Bearer", "-storepass", "--no-password",
    "<property name=\"db.password\">", "</property>", "<password>", "</password>", "<", ">", "/",
    "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "http://", "u:", "@",
    "=", ":", " ", "\t", "\n", '"', "'", "\\", "-", ";", "&", "?", ",", "{", "}", "no", "yes",
    "x", "abc", MASK, "*", "<!--", "-->", ".",
])
SECRETISH = st.lists(st.one_of(FRAGMENTS, st.text(max_size=4)), max_size=30).map("".join)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(), SECRETISH))
def test_redact_never_raises_and_is_idempotent(text: str) -> None:
    once = redact(text)
    assert isinstance(once, str)
    assert redact(once) == once


@settings(max_examples=300, deadline=None)
@given(value=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=6, max_size=20))
def test_any_attribute_password_value_is_masked(value: str) -> None:
    cases = {
        f'<Connector keystorePass="{value}"/>': f'<Connector keystorePass="{MASK}"/>',
        f"<Connector keystorePass='{value}'/>": f"<Connector keystorePass='{MASK}'/>",
        f"PGPASSWORD={value} psql": f"PGPASSWORD={MASK} psql",
        f"password={value}": f"password={MASK}",
        f"keytool -storepass {value} -v": f"keytool -storepass {MASK} -v",
    }
    for text, expected in cases.items():
        assert redact(text) == expected, text


@pytest.mark.parametrize("unit", ["a.b-c.", "-", "password", 'password="', "x" * 63 + " ",
                                  '<property name="password ', "http://a", "-storepass "])
def test_large_adversarial_text_is_masked_and_stable(unit: str) -> None:
    # Names were once re-scanned from every start position: 12 kB of "a.b-c." took
    # seconds. How the cost grows is measured in tests/bench/bench_redact.py, not here.
    text = unit * (200_000 // len(unit))
    masked = redact(text)
    assert redact(masked) == masked
    assert len(masked) >= len(text) // 2
