"""Reading what AWS holds for a setup (read-only), and refusing what cannot work.

Each fact that does not fit (no such VPC, subnets in one zone, a stopped
instance, a certificate from another region, a Classic Load Balancer with the
balancer's name) is an AwsError that says what was found and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wizard.answers_model import AlbOptions, Answers
from wizard.balancers.alb.facts import (
    AlbFacts,
    CertificateFact,
    Environment,
    InstanceFact,
    ListenerFact,
    LoadBalancerFact,
    NodePorts,
    Permission,
    RegisteredTarget,
    RuleFact,
    SecurityGroupFact,
    TargetGroupFact,
)
from wizard.balancers.alb.desired import normal_cidr
from wizard.balancers.alb.names import Names, tag_dict
from wizard.transport.aws import Aws, AwsError

_CHECK_ANSWERS = "Check balancer.alb in the answers file (and the region: {region})."


def read_facts(aws: Aws, answers: Answers, nodes: tuple[NodePorts, ...]) -> AlbFacts:
    """The environment, the nodes' ports, and what this setup already made."""
    alb = answers.balancer.alb
    assert alb is not None, "balancer.kind is alb"
    names = Names.of(answers)
    env = read_environment(aws, alb, nodes, answers.public_url.host)
    refuse_classic(aws, names.load_balancer)
    return AlbFacts(
        env=env, nodes=nodes,
        security_group=read_balancer_group(aws, alb.vpc_id, names.security_group),
        target_groups={"confluence": read_target_group(aws, names.confluence_target_group),
                       "synchrony": read_target_group(aws, names.synchrony_target_group)},
        load_balancer=read_load_balancer(aws, names.load_balancer))


# --- The environment ---------------------------------------------------------------------

def read_environment(aws: Aws, alb: AlbOptions, nodes: tuple[NodePorts, ...], host: str) -> Environment:
    identity = aws.call("sts", "get_caller_identity")
    aws.caller_arn = str(identity.get("Arn", ""))
    vpc_cidrs = read_vpc(aws, alb.vpc_id)
    subnets = read_subnets(aws, alb.vpc_id, alb.subnet_ids)
    node_group = read_node_group(aws, alb.vpc_id, alb.node_security_group_id) \
        if alb.node_security_group_id else None
    certificate = read_certificate(aws, alb.certificate_arn, host) if alb.certificate_arn else None
    instances = read_instances(aws, alb, nodes, set(subnets.values()))
    return Environment(account=str(identity.get("Account", "")), caller_arn=aws.caller_arn, region=aws.region,
                       vpc_id=alb.vpc_id, vpc_cidrs=vpc_cidrs, subnets=subnets, node_security_group=node_group,
                       certificate=certificate, instances=instances)


def read_vpc(aws: Aws, vpc_id: str) -> tuple[str, ...]:
    try:
        vpcs = aws.call("ec2", "describe_vpcs", VpcIds=[vpc_id])["Vpcs"]
    except AwsError as exc:
        if exc.code != "InvalidVpcID.NotFound":
            raise
        vpcs = []
    if not vpcs:
        raise AwsError(f"The VPC {vpc_id} (balancer.alb.vpc_id) does not exist in {aws.region}.",
                       _CHECK_ANSWERS.format(region=aws.region))
    vpc = vpcs[0]
    cidrs = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])
             if a.get("CidrBlockState", {}).get("State", "associated") == "associated"]
    return tuple(dict.fromkeys([vpc["CidrBlock"], *cidrs])) if vpc.get("CidrBlock") else tuple(cidrs)


def read_subnets(aws: Aws, vpc_id: str, subnet_ids: list[str]) -> dict[str, str]:
    """subnet id -> zone; at least two zones, all in the VPC (an ALB needs both)."""
    try:
        found = aws.call("ec2", "describe_subnets", SubnetIds=list(subnet_ids))["Subnets"]
    except AwsError as exc:
        if exc.code != "InvalidSubnetID.NotFound":
            raise
        raise AwsError(f"A subnet of balancer.alb.subnet_ids does not exist in {aws.region}: {exc.message}",
                       _CHECK_ANSWERS.format(region=aws.region)) from None
    zones: dict[str, str] = {}
    for subnet in found:
        if subnet["VpcId"] != vpc_id:
            raise AwsError(f"The subnet {subnet['SubnetId']} is in {subnet['VpcId']}, not in the VPC {vpc_id}.",
                           "List subnets of balancer.alb.vpc_id in balancer.alb.subnet_ids.")
        zones[subnet["SubnetId"]] = subnet["AvailabilityZone"]
    missing = [s for s in subnet_ids if s not in zones]
    if missing:
        raise AwsError(f"The subnet(s) {', '.join(missing)} do not exist in {aws.region}.",
                       _CHECK_ANSWERS.format(region=aws.region))
    if len(set(zones.values())) < 2:
        shown = ", ".join(f"{s} ({z})" for s, z in zones.items())
        raise AwsError(f"An Application Load Balancer needs subnets in at least two availability zones; "
                       f"the answers give {shown}.",
                       "Add a subnet of another zone in the same VPC to balancer.alb.subnet_ids.")
    return zones


def read_security_group(aws: Aws, group_id: str) -> SecurityGroupFact | None:
    try:
        groups = aws.call("ec2", "describe_security_groups", GroupIds=[group_id])["SecurityGroups"]
    except AwsError as exc:
        if exc.code != "InvalidGroup.NotFound":
            raise
        return None
    return security_group_fact(groups[0]) if groups else None


def read_node_group(aws: Aws, vpc_id: str, group_id: str) -> SecurityGroupFact:
    group = read_security_group(aws, group_id)
    if group is None:
        raise AwsError(f"The nodes' security group {group_id} (balancer.alb.node_security_group_id) does not "
                       f"exist in {aws.region}.", _CHECK_ANSWERS.format(region=aws.region))
    if group.vpc_id != vpc_id:
        raise AwsError(f"The nodes' security group {group_id} is in {group.vpc_id}, not in the VPC {vpc_id}.",
                       "Give the security group the nodes' instances use, in the balancer's VPC.")
    return group


def _source(item: dict[str, Any]) -> str | None:
    """What one entry of a permission admits: its network (normalised, IPv4 or IPv6) or its group."""
    cidr = item.get("CidrIp") or item.get("CidrIpv6")
    return normal_cidr(str(cidr)) if cidr else (str(item["GroupId"]) if item.get("GroupId") else None)


def security_group_fact(group: dict[str, Any]) -> SecurityGroupFact:
    permissions = []
    for p in group.get("IpPermissions", []):
        ranges = [*p.get("IpRanges", []), *p.get("Ipv6Ranges", [])]
        sources = [*ranges, *p.get("UserIdGroupPairs", [])]
        permissions.append(Permission(
            protocol=str(p.get("IpProtocol", "")), from_port=int(p.get("FromPort", -1)),
            to_port=int(p.get("ToPort", -1)),
            cidrs=tuple(source for source in map(_source, ranges) if source),
            groups=tuple(g["GroupId"] for g in p.get("UserIdGroupPairs", []) if g.get("GroupId")),
            descriptions=tuple((source, str(item["Description"])) for item in sources
                               if item.get("Description") and (source := _source(item)))))
    return SecurityGroupFact(id=group["GroupId"], name=group.get("GroupName", ""), vpc_id=group.get("VpcId", ""),
                             tags=tag_dict(group.get("Tags")), ingress=tuple(permissions))


def read_certificate(aws: Aws, arn: str, host: str) -> CertificateFact:
    """The ACM certificate: in the balancer's region, issued, and covering the public host."""
    parts = arn.split(":")
    region = parts[3] if len(parts) > 3 else ""
    if region != aws.region:
        raise AwsError(f"The certificate {arn} is in region {region or '(none)'}, but the balancer is in "
                       f"{aws.region}: an ALB can only use an ACM certificate from its own region.",
                       f"Request or import the certificate in {aws.region} with ACM, and give its ARN in "
                       "balancer.alb.certificate_arn.")
    try:
        cert = aws.call("acm", "describe_certificate", CertificateArn=arn)["Certificate"]
    except AwsError as exc:
        if exc.code not in ("ResourceNotFoundException", "InvalidArnException"):
            raise
        raise AwsError(f"The certificate {arn} does not exist in ACM in {aws.region} for this account.",
                       "Check balancer.alb.certificate_arn (`aws acm list-certificates --region "
                       f"{aws.region}`).") from None
    fact = CertificateFact(arn=arn, status=str(cert.get("Status", "")), domain=str(cert.get("DomainName", "")),
                           names=tuple(cert.get("SubjectAlternativeNames") or [cert.get("DomainName", "")]),
                           in_use_by=tuple(cert.get("InUseBy", [])))
    if fact.status != "ISSUED":
        raise AwsError(f"The certificate {arn} is {fact.status}, not ISSUED; a listener cannot use it yet.",
                       "Complete its validation in ACM (the DNS record ACM asks for), or import an issued "
                       "certificate, then run again.")
    if not any(covers(name, host) for name in (fact.domain, *fact.names)):
        raise AwsError(f"The certificate {arn} is for {', '.join(dict.fromkeys((fact.domain, *fact.names)))}, "
                       f"not for {host} (the public_url's host); browsers would refuse it.",
                       f"Use a certificate that names {host} (or a matching wildcard).")
    return fact


def covers(pattern: str, host: str) -> bool:
    """Whether a certificate name (possibly ``*.example.com``) covers ``host``."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def read_instances(aws: Aws, alb: AlbOptions, nodes: Iterable[NodePorts], zones: set[str]) -> dict[str, InstanceFact]:
    """The nodes' instances: running, in the VPC, in the nodes' group and a balancer zone."""
    by_id = {node.instance_id: node.node for node in nodes if node.instance_id}
    if not by_id:
        return {}
    try:
        reservations = aws.call("ec2", "describe_instances", InstanceIds=sorted(by_id))["Reservations"]
    except AwsError as exc:
        if exc.code != "InvalidInstanceID.NotFound":
            raise
        raise AwsError(f"An instance of nodes[].instance_id does not exist in {aws.region}: {exc.message}",
                       "Check each node's instance_id (`aws ec2 describe-instances`) and the region.") from None
    instances = {}
    for reservation in reservations:
        for item in reservation.get("Instances", []):
            instances[item["InstanceId"]] = InstanceFact(
                id=item["InstanceId"], state=item.get("State", {}).get("Name", "unknown"), vpc_id=item.get("VpcId"),
                availability_zone=item.get("Placement", {}).get("AvailabilityZone", ""),
                private_ip=item.get("PrivateIpAddress"),
                security_groups=tuple(g["GroupId"] for g in item.get("SecurityGroups", [])))
    for instance_id, node in by_id.items():
        instance = instances.get(instance_id)
        if instance is None:
            raise AwsError(f"{node}'s instance {instance_id} does not exist in {aws.region}.",
                           f"Check nodes[].instance_id of {node}.")
        if instance.state != "running":
            raise AwsError(f"{node}'s instance {instance_id} is {instance.state}, not running; the balancer "
                           "could never reach it.",
                           f"Start {instance_id} (or correct its instance_id), then run again.")
        if instance.vpc_id != alb.vpc_id:
            raise AwsError(f"{node}'s instance {instance_id} is in {instance.vpc_id}, not in the balancer's VPC "
                           f"{alb.vpc_id}.", "Use the VPC the nodes run in for balancer.alb.vpc_id.")
        if alb.node_security_group_id and alb.node_security_group_id not in instance.security_groups:
            raise AwsError(f"{node}'s instance {instance_id} is not in the nodes' security group "
                           f"{alb.node_security_group_id} (it has {', '.join(instance.security_groups) or 'none'}); "
                           "opening that group to the balancer would not reach it.",
                           "Set balancer.alb.node_security_group_id to a group all the nodes' instances are in.")
        if instance.availability_zone and instance.availability_zone not in zones:
            raise AwsError(f"{node}'s instance {instance_id} is in {instance.availability_zone}, but the balancer's "
                           f"subnets cover {', '.join(sorted(zones))}: AWS would not route to it "
                           "(Target.NotInUse).",
                           f"Add a subnet of {instance.availability_zone} to balancer.alb.subnet_ids.")
    return instances


# --- What this setup already made --------------------------------------------------------

def refuse_classic(aws: Aws, name: str) -> None:
    """A Classic Load Balancer is not supported (seeds 000, 001): never build on or next to one."""
    try:
        found = aws.call("elb", "describe_load_balancers", LoadBalancerNames=[name])["LoadBalancerDescriptions"]
    except AwsError as exc:
        if exc.code not in ("LoadBalancerNotFound", "AccessPointNotFound"):
            raise
        return
    if found:
        raise AwsError(f"A Classic Load Balancer named {name} exists. Atlassian does not support the Classic "
                       "Load Balancer for Confluence (no path rule for /synchrony, no WebSockets); the wizard "
                       "builds an Application Load Balancer and leaves the classic one alone.",
                       "Choose another balancer.alb.name for the new Application Load Balancer, and retire the "
                       "classic one once users are on the new one.")


def read_balancer_group(aws: Aws, vpc_id: str, name: str) -> SecurityGroupFact | None:
    groups = aws.call("ec2", "describe_security_groups",
                      Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                               {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    return security_group_fact(groups[0]) if groups else None


def elbv2_tags(aws: Aws, arns: list[str]) -> dict[str, dict[str, str]]:
    """arn -> tags, 20 ARNs per call (AWS's limit)."""
    tags: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), 20):
        for item in aws.call("elbv2", "describe_tags", ResourceArns=arns[start:start + 20])["TagDescriptions"]:
            tags[item["ResourceArn"]] = tag_dict(item.get("Tags"))
    return tags


def read_target_group(aws: Aws, name: str) -> TargetGroupFact | None:
    try:
        groups = aws.call("elbv2", "describe_target_groups", Names=[name])["TargetGroups"]
    except AwsError as exc:
        if exc.code not in ("TargetGroupNotFound", "TargetGroupNotFoundException"):
            raise
        return None
    if not groups:
        return None
    group = groups[0]
    arn = group["TargetGroupArn"]
    attributes = {a["Key"]: a["Value"] for a in
                  aws.call("elbv2", "describe_target_group_attributes", TargetGroupArn=arn)["Attributes"]}
    return TargetGroupFact(
        arn=arn, name=group["TargetGroupName"], protocol=group.get("Protocol", ""), port=int(group.get("Port", 0)),
        vpc_id=group.get("VpcId", ""), target_type=group.get("TargetType", "instance"),
        health_protocol=group.get("HealthCheckProtocol", ""), health_path=group.get("HealthCheckPath", ""),
        health_port=str(group.get("HealthCheckPort", "")), interval=int(group.get("HealthCheckIntervalSeconds", 0)),
        timeout=int(group.get("HealthCheckTimeoutSeconds", 0)),
        healthy_threshold=int(group.get("HealthyThresholdCount", 0)),
        matcher=str((group.get("Matcher") or {}).get("HttpCode", "")), attributes=attributes,
        tags=elbv2_tags(aws, [arn]).get(arn, {}), targets=read_targets(aws, arn),
        load_balancers=tuple(group.get("LoadBalancerArns", [])))


def read_targets(aws: Aws, target_group_arn: str) -> tuple[RegisteredTarget, ...]:
    health = aws.call("elbv2", "describe_target_health", TargetGroupArn=target_group_arn)
    return tuple(target_fact(item) for item in health.get("TargetHealthDescriptions", []))


def target_fact(item: dict[str, Any]) -> RegisteredTarget:
    target, health = item.get("Target", {}), item.get("TargetHealth", {})
    return RegisteredTarget(id=target["Id"], port=int(target.get("Port", 0)), state=health.get("State", "unknown"),
                            reason=health.get("Reason", ""), description=health.get("Description", ""),
                            availability_zone=target.get("AvailabilityZone"))


def read_load_balancer(aws: Aws, name: str) -> LoadBalancerFact | None:
    try:
        found = aws.call("elbv2", "describe_load_balancers", Names=[name])["LoadBalancers"]
    except AwsError as exc:
        if exc.code not in ("LoadBalancerNotFound", "LoadBalancerNotFoundException"):
            raise
        return None
    if not found:
        return None
    balancer = found[0]
    arn = balancer["LoadBalancerArn"]
    attributes = {a["Key"]: a["Value"] for a in
                  aws.call("elbv2", "describe_load_balancer_attributes", LoadBalancerArn=arn)["Attributes"]}
    listeners = [item for page in aws.pages("elbv2", "describe_listeners", LoadBalancerArn=arn)
                 for item in page.get("Listeners", [])]
    rules = {item["ListenerArn"]: aws.call("elbv2", "describe_rules", ListenerArn=item["ListenerArn"])["Rules"]
             for item in listeners}
    arns = [arn] + [item["ListenerArn"] for item in listeners] + \
        [rule["RuleArn"] for listener_rules in rules.values() for rule in listener_rules if not rule.get("IsDefault")]
    tags = elbv2_tags(aws, arns)
    state = balancer.get("State", {})
    return LoadBalancerFact(
        arn=arn, name=balancer["LoadBalancerName"], type=balancer.get("Type", ""), scheme=balancer.get("Scheme", ""),
        vpc_id=balancer.get("VpcId", ""), state=state.get("Code", ""), state_reason=state.get("Reason", ""),
        dns_name=balancer.get("DNSName", ""),
        subnets=tuple(sorted(z["SubnetId"] for z in balancer.get("AvailabilityZones", []))),
        security_groups=tuple(balancer.get("SecurityGroups", [])), attributes=attributes, tags=tags.get(arn, {}),
        listeners=tuple(listener_fact(item, rules[item["ListenerArn"]], tags) for item in listeners))


def listener_fact(item: dict[str, Any], rules: list[dict[str, Any]], tags: dict[str, dict[str, str]]) -> ListenerFact:
    return ListenerFact(
        arn=item["ListenerArn"], port=int(item["Port"]), protocol=item.get("Protocol", ""),
        # describe_listeners lists the default certificate only; that is the one the wizard sets.
        certificates=tuple(c["CertificateArn"] for c in item.get("Certificates", [])),
        ssl_policy=item.get("SslPolicy") if item.get("Protocol") == "HTTPS" else None,
        default_actions=tuple(item.get("DefaultActions", [])), tags=tags.get(item["ListenerArn"], {}),
        rules=tuple(rule_fact(rule, tags) for rule in rules))


def rule_fact(rule: dict[str, Any], tags: dict[str, dict[str, str]]) -> RuleFact:
    paths: list[str] = []
    for condition in rule.get("Conditions", []):
        if condition.get("Field") == "path-pattern":
            paths += (condition.get("PathPatternConfig") or {}).get("Values") or condition.get("Values") or []
    return RuleFact(arn=rule["RuleArn"], priority=str(rule.get("Priority", "")), paths=tuple(paths),
                    actions=tuple(rule.get("Actions", [])), conditions=tuple(rule.get("Conditions", [])),
                    tags=tags.get(rule["RuleArn"], {}), is_default=bool(rule.get("IsDefault")))
