"""Talking to AWS: one session per balancer, clients with standard retries, errors in the admin's words.

The region and profile come from the answers; without a profile boto3's
standard credential chain applies (environment, ~/.aws, SSO, instance and
container roles). Endpoints: botocore itself honours ``AWS_ENDPOINT_URL``, the
service-id spelling (``AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2``) and the
config file's ``endpoint_url``; the contract also promises the client-name
spelling (``AWS_ENDPOINT_URL_ELBV2``, ``AWS_ENDPOINT_URL_EC2``...), which
botocore does not read for every service, so that one is passed explicitly.

boto3 and botocore are imported inside the functions that need them: importing
this module costs nothing, so ``--help`` and an Apache setup never load them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from wizard import __version__
from wizard.errors import WizardError

#: Attempts per call in all, the first included (botocore's ``total_max_attempts``; its
#: ``max_attempts`` would count retries only). The "standard" retry mode backs off
#: exponentially with jitter between them, throttling included.
MAX_ATTEMPTS = 8

#: The IAM action prefix of each client, to name a missing permission exactly.
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing", "ec2": "ec2",
              "acm": "acm", "sts": "sts"}

_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                  "UnauthorizedAccess", "AuthorizationError", "Forbidden"}
_THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
              "RequestThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
              "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_BAD_CREDENTIALS = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                    "AuthFailure", "InvalidAccessKeyId", "IncompleteSignature"}


class AwsError(WizardError):
    """An AWS call failed, or what AWS holds does not fit the setup; worded for the admin."""

    def __init__(self, message: str, hint: str | None = None, *, code: str = "",
                 action: str = "") -> None:
        super().__init__(message, hint)
        #: AWS's error code (``AccessDenied``, ``Throttling``...), when AWS gave one.
        self.code = code
        #: The IAM action of the failed call (``elasticloadbalancing:CreateTargetGroup``).
        self.action = action


# --- Sessions: one per profile for the process, as boto3's own default session ------------

# A session loads the service models once (some 50 ms of JSON per client otherwise, and the
# wizard makes a few dozen clients per run) and caches the credentials it resolved,
# refreshing them when they expire (SSO, roles).
_sessions: dict[str | None, Any] = {}
_sessions_lock = threading.RLock()


def _session(profile: str | None) -> Any:
    import boto3  # only ALB work pays for boto3

    with _sessions_lock:
        if profile not in _sessions:
            _sessions[profile] = boto3.Session(profile_name=profile)
        return _sessions[profile]


def forget_sessions() -> None:
    """Drop the cached sessions: the next client resolves credentials and config afresh."""
    with _sessions_lock:
        _sessions.clear()


# --- Client hooks: how tests (and nothing else) watch every call --------------------------

ClientHook = Callable[[str, Any], None]
_client_hooks: list[ClientHook] = []


def add_client_hook(hook: ClientHook) -> Callable[[], None]:
    """Call ``hook(service, client)`` for every client made from now on; returns the remover.

    A hook may register botocore event handlers (``before-call``, ``before-send``)
    on ``client.meta.events``: the tests count mutating calls and simulate
    refusals this way, against the same code path an admin runs.
    """
    _client_hooks.append(hook)

    def remove() -> None:
        if hook in _client_hooks:
            _client_hooks.remove(hook)

    return remove


def endpoint_for(service: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The endpoint named by the contract's ``AWS_ENDPOINT_URL_<CLIENT>`` variable, if set.

    None leaves the choice to botocore (``AWS_ENDPOINT_URL``, the service-id
    variables, the config file, then AWS itself).
    """
    env = os.environ if environ is None else environ
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return None
    return env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or None


def operation_title(operation: str) -> str:
    """``create_target_group`` -> ``CreateTargetGroup`` (the API's and IAM's spelling)."""
    if "_" not in operation and operation[:1].isupper():
        return operation
    return "".join(part.capitalize() for part in operation.split("_"))


def iam_action(service: str, operation: str) -> str:
    return f"{IAM_PREFIX.get(service, service)}:{operation_title(operation)}"


class Aws:
    """The AWS clients of one balancer (one region, one profile), made on first use.

    ``clients`` lets a test hand in prepared clients (botocore's ``Stubber``).
    """

    def __init__(self, region: str, profile: str | None = None, *,
                 clients: Mapping[str, Any] | None = None) -> None:
        self.region = region
        self.profile = profile
        #: Who is calling (from STS), once known: named in access-denied messages.
        self.caller_arn: str | None = None
        self._clients: dict[str, Any] = dict(clients or {})
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._make_client(service)
            return self._clients[service]

    def _make_client(self, service: str) -> Any:
        from botocore.config import Config

        try:
            session = _session(self.profile)
        except Exception as exc:
            raise _translated(exc, "sts", "get_caller_identity", self) from exc
        config = Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                        user_agent_extra=f"confluence-lb-wizard/{__version__}",
                        connect_timeout=15, read_timeout=60)
        with _sessions_lock:  # a boto3 Session does not make clients in two threads at once
            client = session.client(service, region_name=self.region, config=config,
                                    endpoint_url=endpoint_for(service))
        for hook in list(_client_hooks):
            hook(service, client)
        return client

    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """One API call; any failure comes back as an AwsError naming the call."""
        client = self.client(service)
        try:
            response = getattr(client, operation)(**params)
        except Exception as exc:
            raise _translated(exc, service, operation, self) from exc
        response.pop("ResponseMetadata", None)
        return response

    def pages(self, service: str, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a paginated call, each failure translated like ``call``'s."""
        paginator = self.client(service).get_paginator(operation)
        try:
            yield from paginator.paginate(**params)
        except Exception as exc:
            raise _translated(exc, service, operation, self) from exc

    def endpoint(self, service: str) -> str:
        return str(self.client(service).meta.endpoint_url)


def translate(exc: BaseException, service: str, operation: str, *, aws: Aws | None = None) -> BaseException:
    """An AwsError explaining ``exc`` for the admin; anything that is not botocore's is returned as is."""
    from botocore import exceptions as bex

    action = iam_action(service, getattr(exc, "operation_name", None) or operation)
    profile = aws.profile if aws else None
    if isinstance(exc, bex.ClientError):
        return _client_error(exc, action, aws)
    if isinstance(exc, bex.NoCredentialsError):
        return AwsError("No AWS credentials were found (environment variables, ~/.aws, SSO or an "
                        "instance role).",
                        "Set balancer.alb.profile (or AWS_PROFILE), run `aws configure` or `aws sso login`, "
                        "or run the wizard on an instance with a role.", action=action)
    if isinstance(exc, bex.ProfileNotFound):
        return AwsError(f"The AWS profile {profile!r} is not in ~/.aws/config or ~/.aws/credentials.",
                        "Correct balancer.alb.profile, or configure it: `aws configure --profile NAME` "
                        "(or `aws configure sso`).", action=action)
    sso_errors = tuple(getattr(bex, name) for name in ("SSOTokenLoadError", "UnauthorizedSSOTokenError",
                                                       "SSOError", "TokenRetrievalError")
                       if hasattr(bex, name))
    if sso_errors and isinstance(exc, sso_errors):
        login = f"aws sso login --profile {profile}" if profile else "aws sso login"
        return AwsError(f"The AWS SSO session is missing or has expired ({exc}).",
                        f"Sign in again with `{login}`, then run the same command.", action=action)
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError,
                        bex.ConnectionClosedError)):
        where = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        return AwsError(f"Cannot reach AWS for {action}{f' at {where}' if where else ''}: {exc}.",
                        "Check the network and proxy settings (HTTPS_PROXY), and AWS_ENDPOINT_URL if "
                        "it is set; then run the same command again.", action=action)
    if isinstance(exc, bex.ParamValidationError):
        return AwsError(f"The wizard built a request AWS cannot take for {action}: {exc}.",
                        "This is a bug in the wizard; please report it with this message.", action=action)
    if isinstance(exc, bex.BotoCoreError):
        return AwsError(f"{action} failed: {exc}.", "Run the same command again; if it keeps failing, "
                        "check the AWS configuration (`aws sts get-caller-identity`).", action=action)
    return exc


def _translated(exc: Exception, service: str, operation: str, aws: Aws) -> AwsError:
    """``exc`` as an AwsError; anything that is not botocore's (a bug) is raised unchanged."""
    translated = translate(exc, service, operation, aws=aws)
    if not isinstance(translated, AwsError):
        raise exc
    return translated


def _client_error(exc: Any, action: str, aws: Aws | None) -> AwsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")).strip() or code
    who = f" to {aws.caller_arn}" if aws and aws.caller_arn else ""
    profile = f" (profile {aws.profile})" if aws and aws.profile else ""
    if code in _ACCESS_DENIED or code.endswith("AccessDenied"):
        hint = (f"Allow {action} for this identity{profile} in IAM (a policy on the user or role), or "
                "run the wizard with a profile that has it; then run the same command again.")
        if "Encoded authorization failure message" in message:
            hint += " `aws sts decode-authorization-message` explains the encoded message."
        return AwsError(f"AWS denied {action}{who}: the permission is missing.", hint, code=code, action=action)
    if code in _THROTTLED:
        return AwsError(f"AWS kept throttling {action} ({code}) through {MAX_ATTEMPTS} attempts with "
                        "back-off.",
                        "Something else is calling the same API heavily. Wait a minute and run the same "
                        "command again: the wizard finds what it already made and carries on.",
                        code=code, action=action)
    if code in _EXPIRED:
        return AwsError(f"The AWS credentials{profile} have expired ({code}).",
                        "Renew them (`aws sso login`, or a fresh session token) and run the same command.",
                        code=code, action=action)
    if code in _BAD_CREDENTIALS:
        return AwsError(f"AWS did not accept the credentials{profile} for {action} ({code}: {message}).",
                        "Check the access key, the profile and the machine's clock "
                        "(`aws sts get-caller-identity` shows who you are).", code=code, action=action)
    if code.startswith("TooMany") or code.endswith("LimitExceeded"):
        return AwsError(f"An AWS quota stopped {action} ({code}: {message}).",
                        "Remove unused resources or raise the quota in Service Quotas, then run again.",
                        code=code, action=action)
    if code in ("DependencyViolation", "ResourceInUse"):
        return AwsError(f"AWS refused {action} because something still uses the resource ({message}).",
                        "Wait a minute for AWS to release it and run the same command again.",
                        code=code, action=action)
    return AwsError(f"AWS refused {action} ({code}: {message}).",
                    "Check the balancer.alb answers this call was built from, then run the same command.",
                    code=code, action=action)


def connect(region: str, profile: str | None = None) -> Aws:
    """The clients for one balancer's region and profile (made lazily)."""
    return Aws(region, profile)
