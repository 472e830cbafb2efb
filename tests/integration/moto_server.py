"""moto's AWS server on loopback for the ALB tests, and a small AWS "lab" inside it.

One ``ThreadedMotoServer`` serves the whole session on a free port; each test
starts from an empty account (``POST /moto-api/reset``). moto is looser than
AWS about duplicates: the tests never rely on it for idempotency, and use
botocore's Stubber for what it cannot show.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from dataclasses import dataclass

# moto reads this when it is first imported: requested certificates are ISSUED at once.
os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "0")

REGION = "eu-west-1"
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
#: Variables that would point boto3 at a real account, removed for the tests.
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


class MotoServer:
    """A moto server on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        import moto.settings
        from moto.server import ThreadedMotoServer

        moto.settings.ACM_VALIDATION_WAIT = 0  # in case moto was imported before this module
        # werkzeug logs every request; hundreds per test would drown a failure's report.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        self._server.stop()


@dataclass
class AwsLab:
    """What an admin's account holds before the wizard runs: a VPC with two subnets in two zones,
    the nodes' security group, two running nodes and an issued certificate."""

    vpc_id: str
    subnet_ids: list[str]
    node_security_group_id: str
    instance_ids: list[str]
    private_ips: list[str]
    certificate_arn: str
    #: A subnet of another VPC, for the tests of answers that mix them up.
    other_subnet_id: str = ""


def build_lab(domain: str = "wiki.example.com") -> AwsLab:
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{index}.0/24",
                                 AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
               for index, zone in ((1, "a"), (2, "b"))]
    nodes_group = ec2.create_security_group(GroupName="confluence-nodes", Description="Confluence nodes",
                                            VpcId=vpc)["GroupId"]
    # An admin's own rule that must survive everything the wizard does.
    ec2.authorize_security_group_ingress(GroupId=nodes_group, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    image = "ami-12c6146b"  # moto takes any image id; listing its 1,300 images costs seconds
    instances = []
    for subnet in subnets:
        instances += ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet,
                                       SecurityGroupIds=[nodes_group])["Instances"]
    acm = boto3.client("acm", region_name=REGION)
    certificate = acm.request_certificate(DomainName=domain, ValidationMethod="DNS")["CertificateArn"]
    other_vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    other_subnet = ec2.create_subnet(VpcId=other_vpc, CidrBlock="10.30.1.0/24",
                                     AvailabilityZone=f"{REGION}c")["Subnet"]["SubnetId"]
    return AwsLab(vpc_id=vpc, subnet_ids=subnets, node_security_group_id=nodes_group,
                  instance_ids=[i["InstanceId"] for i in instances],
                  private_ips=[i["PrivateIpAddress"] for i in instances], certificate_arn=certificate,
                  other_subnet_id=other_subnet)
