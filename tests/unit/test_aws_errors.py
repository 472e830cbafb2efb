"""What moto cannot show, with botocore's Stubber and before-send hooks: refusals, throttling,
unhealthy and initial targets, certificates from another region, a Classic Load Balancer.

Every AWS failure must reach the admin as one clear message (no traceback), with
the missing permission or the likely cause named.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries import standard
from botocore.stub import Stubber

from wizard.transport import aws as wizard_aws
from wizard.balancers.alb import timing
from wizard.balancers.alb.desired import TargetGroupSpec, TargetSpec
from wizard.balancers.alb.health import target_checks, wait_active, wait_healthy
from wizard.balancers.alb.read import read_certificate, refuse_classic
from wizard.transport.aws import Aws, AwsError, endpoint_for, iam_action

REGION = "eu-west-1"
TG_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/wiki-confluence/1"
LB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/wiki/1"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"


@pytest.fixture(autouse=True)
def offline_credentials(monkeypatch, tmp_path) -> Iterator[None]:
    """Test credentials and no configuration of the machine's own; no request leaves the process."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ELBV2"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    wizard_aws.forget_sessions()
    yield
    wizard_aws.forget_sessions()


class FakeClock:
    """timing.now/sleep without waiting: each sleep moves the clock on."""

    def __init__(self) -> None:
        self.time = 0.0
        self.sleeps = 0

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.time += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timing, "now", fake.now)
    monkeypatch.setattr(timing, "sleep", fake.sleep)
    monkeypatch.setattr(timing, "POLL_SECONDS", 10.0)
    monkeypatch.setattr(timing, "HEALTHY_TIMEOUT", 30.0)
    monkeypatch.setattr(timing, "ACTIVE_TIMEOUT", 30.0)
    return fake


def stubbed(service: str) -> tuple[Aws, Stubber]:
    """An Aws whose ``service`` client answers only what the test queues."""
    real = Aws(REGION).client(service)
    stubber = Stubber(real)
    stubber.activate()
    return Aws(REGION, clients={service: real}), stubber


# --- Refusals name the missing permission ------------------------------------------------

def test_access_denied_names_the_missing_permission_and_who_was_refused() -> None:
    aws, stub = stubbed("elbv2")
    aws.caller_arn = "arn:aws:iam::123456789012:user/admin"
    stub.add_client_error("create_target_group", service_error_code="AccessDenied",
                          service_message="User is not authorized to perform: elasticloadbalancing:CreateTargetGroup",
                          http_status_code=403)
    with pytest.raises(AwsError) as raised:
        aws.call("elbv2", "create_target_group", Name="wiki-confluence", Protocol="HTTP", Port=8090,
                 VpcId="vpc-0123456789abcdef0")
    error = raised.value
    assert error.message == ("AWS denied elasticloadbalancing:CreateTargetGroup to "
                             "arn:aws:iam::123456789012:user/admin: the permission is missing.")
    assert "Allow elasticloadbalancing:CreateTargetGroup" in error.hint
    assert (error.code, error.action) == ("AccessDenied", "elasticloadbalancing:CreateTargetGroup")


def test_an_ec2_refusal_with_an_encoded_message_says_how_to_decode_it() -> None:
    aws, stub = stubbed("ec2")
    stub.add_client_error("authorize_security_group_ingress", service_error_code="UnauthorizedOperation",
                          service_message="You are not authorized to perform this operation. Encoded "
                                          "authorization failure message: abc", http_status_code=403)
    with pytest.raises(AwsError) as raised:
        aws.call("ec2", "authorize_security_group_ingress", GroupId="sg-0123", IpPermissions=[])
    assert "ec2:AuthorizeSecurityGroupIngress" in raised.value.message
    assert "decode-authorization-message" in raised.value.hint


@pytest.mark.parametrize("code, expected", [
    ("ExpiredToken", "have expired"),
    ("InvalidClientTokenId", "did not accept the credentials"),
    ("TooManyTargetGroups", "An AWS quota stopped elasticloadbalancing:CreateTargetGroup"),
    ("ValidationError", "AWS refused elasticloadbalancing:CreateTargetGroup (ValidationError: bad)"),
])
def test_other_client_errors_are_worded_for_the_admin(code: str, expected: str) -> None:
    aws, stub = stubbed("elbv2")
    stub.add_client_error("create_target_group", service_error_code=code, service_message="bad",
                          http_status_code=400)
    with pytest.raises(AwsError) as raised:
        aws.call("elbv2", "create_target_group", Name="x", Protocol="HTTP", Port=1, VpcId="vpc-1")
    assert expected in raised.value.message and raised.value.hint


def test_iam_action_names_follow_the_api() -> None:
    assert iam_action("elbv2", "modify_load_balancer_attributes") == \
        "elasticloadbalancing:ModifyLoadBalancerAttributes"
    assert iam_action("sts", "GetCallerIdentity") == "sts:GetCallerIdentity"


# --- Throttling: retried by botocore's standard mode, then a clear message ---------------

THROTTLED = (b'<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error>'
             b'<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>'
             b'<RequestId>1</RequestId></ErrorResponse>')
DESCRIBED = (b'<DescribeTargetGroupsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
             b'<DescribeTargetGroupsResult><TargetGroups/></DescribeTargetGroupsResult>'
             b'<ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></DescribeTargetGroupsResponse>')


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self.body


def throttle(times: int, sent: list[str]):
    """A before-send handler: AWS answers Throttling ``times`` times, then a real answer."""

    def handler(request, **_: object) -> AWSResponse:
        sent.append(request.url)
        if len(sent) <= times:
            return AWSResponse(request.url, 400, {}, _Raw(THROTTLED))
        return AWSResponse(request.url, 200, {}, _Raw(DESCRIBED))

    return handler


@pytest.fixture
def no_backoff(monkeypatch) -> None:
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


def test_throttling_is_retried_then_succeeds(no_backoff, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing is sent: before-send answers
    sent: list[str] = []
    remove = wizard_aws.add_client_hook(lambda service, client: client.meta.events.register(
        "before-send", throttle(3, sent)))
    try:
        result = Aws(REGION).call("elbv2", "describe_target_groups")
    finally:
        remove()
    assert result == {"TargetGroups": []}
    assert len(sent) == 4


def test_throttling_that_never_ends_is_a_clear_message_after_every_attempt(no_backoff, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    sent: list[str] = []
    remove = wizard_aws.add_client_hook(lambda service, client: client.meta.events.register(
        "before-send", throttle(1000, sent)))
    try:
        with pytest.raises(AwsError) as raised:
            Aws(REGION).call("elbv2", "describe_target_groups")
    finally:
        remove()
    assert len(sent) == wizard_aws.MAX_ATTEMPTS == 8
    assert raised.value.message == ("AWS kept throttling elasticloadbalancing:DescribeTargetGroups (Throttling) "
                                    "through 8 attempts with back-off.")
    assert "run the same command again" in raised.value.hint


# --- Credentials and endpoints -----------------------------------------------------------

def test_no_credentials_anywhere_is_a_clear_message(monkeypatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    wizard_aws.forget_sessions()
    with pytest.raises(AwsError) as raised:
        Aws(REGION).call("sts", "get_caller_identity")
    assert raised.value.message.startswith("No AWS credentials were found")
    assert "aws sso login" in raised.value.hint


def test_an_unknown_profile_is_named() -> None:
    with pytest.raises(AwsError) as raised:
        Aws(REGION, "nosuchprofile").call("sts", "get_caller_identity")
    assert "The AWS profile 'nosuchprofile' is not in ~/.aws/config" in raised.value.message


def test_an_unreachable_endpoint_is_named(no_backoff, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(AwsError) as raised:
        Aws(REGION).call("sts", "get_caller_identity")
    assert "Cannot reach AWS for sts:GetCallerIdentity" in raised.value.message
    assert "AWS_ENDPOINT_URL" in raised.value.hint


def test_the_contracts_endpoint_variables_are_honoured(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://everything.test:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ELBV2", "http://elbv2.test:2")
    aws = Aws(REGION)
    assert aws.endpoint("elbv2") == "http://elbv2.test:2"
    assert aws.endpoint("ec2") == "http://everything.test:1"  # botocore's own AWS_ENDPOINT_URL
    ignored = {"AWS_ENDPOINT_URL_ELBV2": "http://x", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
    assert endpoint_for("elbv2", ignored) is None


def test_clients_retry_in_standard_mode() -> None:
    config = Aws(REGION).client("elbv2").meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 8}
    assert config.region_name == REGION


# --- Target health: reason codes and likely causes ---------------------------------------

SPEC = TargetGroupSpec(key="confluence", role="confluence-target-group", name="wiki-confluence", label="Confluence",
                       port=8090, vpc_id="vpc-1", target_type="instance", health_path="/status",
                       targets=(TargetSpec("node1", "i-01", 8090), TargetSpec("node2", "i-02", 8090),
                                TargetSpec("node3", "i-03", 8090)))


def health(*states: tuple[str, str, str]) -> dict:
    descriptions = []
    for target_id, state, reason in states:
        item = {"Target": {"Id": target_id, "Port": 8090}, "TargetHealth": {"State": state}}
        if reason:
            item["TargetHealth"].update({"Reason": reason, "Description": f"{reason} description"})
        descriptions.append(item)
    return {"TargetHealthDescriptions": descriptions}


def test_unhealthy_targets_fail_with_aws_reason_and_the_likely_cause() -> None:
    aws, stub = stubbed("elbv2")
    stub.add_response("describe_target_health", health(("i-01", "unhealthy", "Target.Timeout"),
                                                       ("i-02", "unhealthy", "Target.ResponseCodeMismatch"),
                                                       ("i-03", "unhealthy", "Target.FailedHealthChecks")),
                      {"TargetGroupArn": TG_ARN})
    from wizard.balancers.alb.health import read_health

    checks = {c.target: c for c in target_checks(SPEC, read_health(aws, TG_ARN))}
    assert not any(c.passed for c in checks.values())
    assert checks["node1"].seen == "wiki-confluence: i-01:8090 unhealthy (Target.Timeout: Target.Timeout description)"
    assert "port closed" in checks["node1"].fix and "port 8090" in checks["node1"].fix
    assert "wrong health path" in checks["node2"].fix and "/status" in checks["node2"].fix
    assert "node down" in checks["node3"].fix
    stub.assert_no_pending_responses()


def test_a_node_missing_from_the_group_is_a_failed_check() -> None:
    checks = target_checks(SPEC, ())
    assert [c.passed for c in checks] == [False, False, False]
    assert "not registered" in checks[0].fix


def test_initial_targets_are_reported_while_waiting_then_the_timeout_says_why(clock: FakeClock) -> None:
    aws, stub = stubbed("elbv2")
    for _ in range(4):  # at 0, 10, 20 and 30 s; the last look is past the 30 s timeout
        stub.add_response("describe_target_health", health(("i-01", "healthy", ""),
                                                           ("i-02", "initial", "Elb.InitialHealthChecking"),
                                                           ("i-03", "initial", "Elb.RegistrationInProgress")),
                          {"TargetGroupArn": TG_ARN})
    progress: list[tuple[str, float | None]] = []
    result = wait_healthy(aws, [(SPEC, TG_ARN)], lambda message, fraction: progress.append((message, fraction)))
    assert not result.done
    assert result.message.startswith("1 of 3 target(s) healthy after 30 s")
    assert "node2: wiki-confluence: i-02:8090 initial (Elb.InitialHealthChecking" in result.message
    assert "the first health checks are still running" in result.message
    assert len(progress) == 3 and progress[0][0].startswith("1 of 3 target(s) healthy; waiting for node2")
    assert progress[0][1] == pytest.approx(1 / 3)
    assert clock.sleeps == 3
    stub.assert_no_pending_responses()


def test_waiting_ends_as_soon_as_every_target_is_healthy(clock: FakeClock) -> None:
    aws, stub = stubbed("elbv2")
    stub.add_response("describe_target_health", health(("i-01", "initial", "Elb.InitialHealthChecking"),
                                                       ("i-02", "healthy", ""), ("i-03", "healthy", "")))
    stub.add_response("describe_target_health", health(("i-01", "healthy", ""), ("i-02", "healthy", ""),
                                                       ("i-03", "healthy", "")))
    result = wait_healthy(aws, [(SPEC, TG_ARN)], lambda *_: None)
    assert result.done and result.message == "all 3 target(s) healthy" and clock.sleeps == 1


def balancer_state(code: str, reason: str = "") -> dict:
    state = {"Code": code, **({"Reason": reason} if reason else {})}
    return {"LoadBalancers": [{"LoadBalancerArn": LB_ARN, "LoadBalancerName": "wiki", "State": state}]}


def test_waiting_for_the_balancer_reports_provisioning_until_active(clock: FakeClock) -> None:
    aws, stub = stubbed("elbv2")
    stub.add_response("describe_load_balancers", balancer_state("provisioning"), {"LoadBalancerArns": [LB_ARN]})
    stub.add_response("describe_load_balancers", balancer_state("active"), {"LoadBalancerArns": [LB_ARN]})
    seen: list[str] = []
    result = wait_active(aws, LB_ARN, "wiki", lambda message, fraction: seen.append(message))
    assert result.done and seen == ["wiki is provisioning; waiting until it is active", "wiki is active"]


def test_a_balancer_aws_could_not_make_is_an_error(clock: FakeClock) -> None:
    aws, stub = stubbed("elbv2")
    stub.add_response("describe_load_balancers", balancer_state("failed", "Subnet has no free addresses"))
    with pytest.raises(AwsError, match="as failed: Subnet has no free addresses"):
        wait_active(aws, LB_ARN, "wiki", lambda *_: None)


# --- Facts AWS refuses -------------------------------------------------------------------

def test_a_certificate_from_another_region_is_refused_without_asking_acm() -> None:
    aws, stub = stubbed("acm")
    with pytest.raises(AwsError) as raised:
        read_certificate(aws, "arn:aws:acm:us-east-1:123456789012:certificate/abc", "wiki.example.com")
    assert raised.value.message == ("The certificate arn:aws:acm:us-east-1:123456789012:certificate/abc is in region "
                                    "us-east-1, but the balancer is in eu-west-1: an ALB can only use an ACM "
                                    "certificate from its own region.")
    assert "Request or import the certificate in eu-west-1" in raised.value.hint
    stub.assert_no_pending_responses()


def certificate(status: str = "ISSUED", domain: str = "wiki.example.com", names: list[str] | None = None) -> dict:
    return {"Certificate": {"CertificateArn": CERT, "DomainName": domain, "Status": status,
                            "SubjectAlternativeNames": names or [domain]}}


@pytest.mark.parametrize("response, expected", [
    (certificate("PENDING_VALIDATION"), "is PENDING_VALIDATION, not ISSUED"),
    (certificate(domain="other.example.com"), "is for other.example.com, not for wiki.example.com"),
])
def test_a_certificate_that_cannot_serve_the_public_host_is_refused(response: dict, expected: str) -> None:
    aws, stub = stubbed("acm")
    stub.add_response("describe_certificate", response, {"CertificateArn": CERT})
    with pytest.raises(AwsError, match=expected):
        read_certificate(aws, CERT, "wiki.example.com")


def test_a_wildcard_certificate_covers_the_host() -> None:
    aws, stub = stubbed("acm")
    stub.add_response("describe_certificate", certificate(domain="*.example.com"), {"CertificateArn": CERT})
    assert read_certificate(aws, CERT, "wiki.example.com").status == "ISSUED"


def test_a_certificate_missing_from_acm_is_named() -> None:
    aws, stub = stubbed("acm")
    stub.add_client_error("describe_certificate", service_error_code="ResourceNotFoundException",
                          http_status_code=400)
    with pytest.raises(AwsError, match="does not exist in ACM in eu-west-1"):
        read_certificate(aws, CERT, "wiki.example.com")


def test_a_classic_load_balancer_with_the_name_is_refused() -> None:
    aws, stub = stubbed("elb")
    stub.add_response("describe_load_balancers",
                      {"LoadBalancerDescriptions": [{"LoadBalancerName": "wiki", "DNSName": "wiki.elb.test"}]},
                      {"LoadBalancerNames": ["wiki"]})
    with pytest.raises(AwsError) as raised:
        refuse_classic(aws, "wiki")
    assert "A Classic Load Balancer named wiki exists" in raised.value.message
    assert "Choose another balancer.alb.name" in raised.value.hint


def test_no_classic_load_balancer_is_fine() -> None:
    aws, stub = stubbed("elb")
    stub.add_client_error("describe_load_balancers", service_error_code="LoadBalancerNotFound",
                          http_status_code=400)
    refuse_classic(aws, "wiki")
    stub.assert_no_pending_responses()
