"""The ALB lab's AWS: moto's server in this process, and an account ready for the wizard.

Nothing here reaches real AWS. moto answers on 127.0.0.1; while the lab runs, this
process's environment points every AWS client at it (``AWS_ENDPOINT_URL``) with test
credentials, and any variable that could select a real account (a profile, a session
token, a per-service endpoint, the machine's ~/.aws files) is set aside. ``stop()`` puts
the environment back exactly as it was.

The account holds what an admin's would before the wizard runs: a VPC with two subnets
in two availability zones, the nodes' security group, one running instance per node
and an issued ACM certificate for the lab's public host name.

moto and boto3 are imported only here, and only when an ALB lab starts: moto is a test
dependency of the project, so its absence is reported with the command that installs it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.errors import WizardError
from wizard.lab.node import THREAD_PREFIX

REGION = "eu-west-1"
#: moto accepts any image id; looking one up in its catalogue would cost seconds.
IMAGE_ID = "ami-12c6146b"
#: Variables that could send a client to a real account or endpoint; set aside while the lab runs.
_SET_ASIDE_PREFIXES = ("AWS_ENDPOINT_URL_",)
_SET_ASIDE = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
              "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
              "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
              "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_REGION")
MOTO_HINT = ("Install it into the same environment as confluence-lb-wizard: pip install 'moto[server]'. "
             "Or use the Apache lab: `confluence-lb-wizard lab`.")


@dataclass
class AwsAccount:
    """What the simulated account holds for the wizard."""

    region: str
    vpc_id: str
    subnet_ids: list[str]
    node_security_group_id: str
    certificate_arn: str
    #: node name -> its EC2 instance id
    instance_ids: dict[str, str] = field(default_factory=dict)


class LabAws:
    """moto's server on 127.0.0.1 and the environment that points this process at it."""

    def __init__(self, root: Path, *, region: str = REGION, thread_prefix: str = THREAD_PREFIX) -> None:
        self.root = Path(root)
        self.thread_prefix = thread_prefix
        self.region = region
        self.endpoint_url = ""
        self.account: AwsAccount | None = None
        self._server: Any = None
        self._saved_environ: dict[str, str | None] | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, node_names: list[str], domain: str, setup: str) -> AwsAccount:
        """Start moto, point this process at it, and build the account for ``node_names``."""
        self._point_environment_at_moto()
        try:
            import moto.settings
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            self._restore_environment()
            raise WizardError(f"The ALB lab simulates AWS with moto, which is not installed ({exc}).",
                              MOTO_HINT) from exc
        # Read by moto at import; set again in case it was imported before the lab started.
        moto.settings.ACM_VALIDATION_WAIT = 0
        # werkzeug logs every request; on the wizard's screen that is noise.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        thread = getattr(self._server, "_thread", None)
        if thread is not None:
            thread.name = f"{self.thread_prefix}-moto"  # so a test can tell it is gone after stop()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
        self._forget_sessions()
        try:
            self.account = self._build_account(node_names, domain, setup)
        except Exception as exc:  # botocore's errors: moto is ours, so any failure is the lab's
            raise WizardError(f"The ALB lab could not build its simulated AWS account in moto: {exc}.",
                              "Check that moto and boto3 are current (pip install -U 'moto[server]' boto3).") from exc
        return self.account

    def _point_environment_at_moto(self) -> None:
        names = set(_SET_ASIDE) | {n for n in os.environ if n.startswith(_SET_ASIDE_PREFIXES)}
        names |= {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                  "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "MOTO_ACM_VALIDATION_WAIT"}
        self._saved_environ = {name: os.environ.get(name) for name in names}
        for name in names:
            os.environ.pop(name, None)
        aws_dir = self.root / "aws"
        aws_dir.mkdir(parents=True, exist_ok=True)
        os.environ.update({
            # Test credentials, which moto accepts and real AWS refuses.
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            # Files that do not exist: the machine's own ~/.aws profiles stay out of the lab.
            "AWS_CONFIG_FILE": str(aws_dir / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "credentials"),
            "MOTO_ACM_VALIDATION_WAIT": "0",
        })

    def _restore_environment(self) -> None:
        saved, self._saved_environ = self._saved_environ, None
        for name, value in (saved or {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._forget_sessions()

    @staticmethod
    def _forget_sessions() -> None:
        # The wizard caches boto3 sessions (and the credentials they resolved) per profile.
        from wizard.transport.aws import forget_sessions

        forget_sessions()

    def _build_account(self, node_names: list[str], domain: str, setup: str) -> AwsAccount:
        import boto3

        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name=self.region)
        ec2 = session.client("ec2", endpoint_url=self.endpoint_url)
        acm = session.client("acm", endpoint_url=self.endpoint_url)
        tags = [{"Key": "Name", "Value": f"{setup}-lab"}]
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16",
                             TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}])["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{index}.0/24",
                                     AvailabilityZone=f"{self.region}{zone}")["Subnet"]["SubnetId"]
                   for index, zone in ((1, "a"), (2, "b"))]
        group = ec2.create_security_group(GroupName=f"{setup}-confluence-nodes", Description="Confluence nodes",
                                          VpcId=vpc)["GroupId"]
        instances: dict[str, str] = {}
        for index, name in enumerate(node_names):
            reply = ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, InstanceType="m5.xlarge",
                                      SubnetId=subnets[index % len(subnets)], SecurityGroupIds=[group],
                                      TagSpecifications=[{"ResourceType": "instance",
                                                          "Tags": [{"Key": "Name", "Value": f"{setup}-{name}"}]}])
            instances[name] = reply["Instances"][0]["InstanceId"]
        certificate = acm.request_certificate(DomainName=domain, ValidationMethod="DNS")["CertificateArn"]
        return AwsAccount(region=self.region, vpc_id=vpc, subnet_ids=subnets, node_security_group_id=group,
                          certificate_arn=certificate, instance_ids=instances)

    def stop(self) -> None:
        """moto stopped (its thread joined), the environment as it was. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        if self._saved_environ is not None:
            self._restore_environment()
