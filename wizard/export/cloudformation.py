"""``export --format cloudformation``: one template for the ALB path, from the wizard's own description.

Every setting comes from ``wizard.balancers.alb.desired.build_desired`` (the same ``Desired`` the
balancer step plans and applies from): the balancer's security group and the rules it
opens on the nodes' group, both target groups with their health checks, stickiness and
targets, the balancer with its idle timeout, the HTTPS listener, the HTTP->HTTPS redirect
and the ``/synchrony/*`` rule. Names and tags are the wizard's (``wizard.balancers.alb.names``), on
every resource that carries tags (the listeners and the rule included, as ``apply`` tags them), so
``plan`` and ``verify`` find the stack's resources by name and take them as this setup's: a setup
whose balancer came from the stack is never built a second time.

What differs per environment is a parameter whose default is the answers' value: the VPC,
the subnets, the certificate and the nodes' security group.
"""

from __future__ import annotations

from typing import Any

from wizard.answers_model import Answers
from wizard.export.project import Session, alb_constants

#: Logical ids, stable so a stack update keeps the same resources.
SECURITY_GROUP = "BalancerSecurityGroup"
LOAD_BALANCER = "LoadBalancer"
TARGET_GROUPS = {"confluence": "ConfluenceTargetGroup", "synchrony": "SynchronyTargetGroup"}
RULE = "SynchronyRule"


def _ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def _listener_id(spec: Any) -> str:
    return f"{spec.protocol.capitalize()}Listener{spec.port}"


def template(answers: Answers, desired: Any) -> dict[str, Any]:
    """The CloudFormation template (as data) for ``desired``."""
    constants = alb_constants()
    names = desired.names
    alb = answers.balancer.alb
    assert alb is not None
    parameters: dict[str, Any] = {
        "VpcId": {"Type": "AWS::EC2::VPC::Id", "Default": desired.vpc_id,
                  "Description": "The VPC of the nodes and the load balancer"},
        "Subnets": {"Type": "List<AWS::EC2::Subnet::Id>", "Default": ",".join(desired.subnets),
                    "Description": "At least two subnets in different Availability Zones"},
    }
    https = [listener for listener in desired.listeners if listener.protocol == "HTTPS"]
    if https:
        parameters["CertificateArn"] = {"Type": "String", "Default": https[0].certificate_arn,
                                        "AllowedPattern": "arn:aws[a-z-]*:acm:.+",
                                        "Description": "The ACM certificate for the public host name"}
    if desired.node_security_group:
        parameters["NodeSecurityGroupId"] = {
            "Type": "AWS::EC2::SecurityGroup::Id", "Default": desired.node_security_group,
            "Description": "The nodes' security group, opened to the balancer's on the nodes' ports"}

    resources: dict[str, Any] = {}
    resources[SECURITY_GROUP] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupName": names.security_group,
        "GroupDescription": f"Confluence load balancer {names.load_balancer} (confluence-lb-wizard, setup "
                            f"{names.setup})",
        "VpcId": _ref("VpcId"),
        # Each listener port from each allowed network (balancer.alb.allowed_cidrs or its default, as
        # `apply` makes them; an internal balancer's default is the VPC's CIDR read when exporting).
        "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": rule.port, "ToPort": rule.port,
                                  ("CidrIpv6" if rule.ipv6 else "CidrIp"): rule.cidr,
                                  "Description": rule.description}
                                 for rule in desired.balancer_ingress],
        "Tags": names.tags(constants["ROLE_SECURITY_GROUP"], names.security_group)}}
    for index, rule in enumerate(desired.node_ingress):
        resources[f"NodeIngress{rule.port}"] = {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": _ref("NodeSecurityGroupId"), "IpProtocol": "tcp", "FromPort": rule.port,
            "ToPort": rule.port, "SourceSecurityGroupId": {"Fn::GetAtt": [SECURITY_GROUP, "GroupId"]},
            "Description": rule.description}}
    for spec in desired.target_groups:
        resources[TARGET_GROUPS[spec.key]] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
            "Name": spec.name, "Protocol": spec.protocol, "Port": spec.port, "VpcId": _ref("VpcId"),
            "TargetType": spec.target_type, "HealthCheckEnabled": True, "HealthCheckProtocol": "HTTP",
            "HealthCheckPort": "traffic-port", "HealthCheckPath": spec.health_path,
            "HealthCheckIntervalSeconds": spec.interval, "HealthCheckTimeoutSeconds": spec.timeout,
            "HealthyThresholdCount": spec.healthy_threshold, "Matcher": {"HttpCode": spec.matcher},
            "TargetGroupAttributes": [{"Key": k, "Value": v} for k, v in spec.attributes.items()],
            "Targets": [target.api() for target in spec.targets],
            "Tags": names.tags(spec.role, spec.name)}}
    resources[LOAD_BALANCER] = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
        "Name": names.load_balancer, "Type": "application", "Scheme": desired.scheme, "IpAddressType": "ipv4",
        "Subnets": _ref("Subnets"), "SecurityGroups": [{"Fn::GetAtt": [SECURITY_GROUP, "GroupId"]}],
        "LoadBalancerAttributes": [{"Key": constants["IDLE_TIMEOUT_KEY"], "Value": str(desired.idle_timeout)}],
        "Tags": names.tags(constants["ROLE_LOAD_BALANCER"], names.load_balancer)}}
    for spec in desired.listeners:
        if spec.action == "redirect":
            actions = [{"Type": "redirect", "RedirectConfig": constants["redirect_config"](spec.redirect_port or 443)}]
        else:
            actions = [{"Type": "forward", "TargetGroupArn": _ref(TARGET_GROUPS["confluence"])}]
        properties: dict[str, Any] = {"LoadBalancerArn": _ref(LOAD_BALANCER), "Protocol": spec.protocol,
                                      "Port": spec.port, "DefaultActions": actions}
        if spec.protocol == "HTTPS":
            properties["Certificates"] = [{"CertificateArn": _ref("CertificateArn")}]
            properties["SslPolicy"] = spec.ssl_policy
        # Tagged as `apply` tags them: `plan` takes a listener on the setup's balancer as its own only
        # with these tags, whatever tags the stack was deployed with.
        properties["Tags"] = names.tags(spec.role, f"{names.load_balancer}-{spec.port}")
        resources[_listener_id(spec)] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": properties}
    if desired.rule is not None:
        listener = next(spec for spec in desired.listeners if spec.port == desired.rule.listener_port)
        resources[RULE] = {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
            "ListenerArn": _ref(_listener_id(listener)), "Priority": constants["RULE_PRIORITY"],
            "Conditions": desired.rule.conditions(),
            "Actions": [{"Type": "forward", "TargetGroupArn": _ref(TARGET_GROUPS[desired.rule.target])}],
            "Tags": names.tags(constants["ROLE_SYNCHRONY_RULE"], f"{names.load_balancer}-synchrony")}}
    outputs = {
        "DNSName": {"Description": "Point the public host name here (CNAME or alias)",
                    "Value": {"Fn::GetAtt": [LOAD_BALANCER, "DNSName"]}},
        "LoadBalancerArn": {"Description": "The load balancer", "Value": _ref(LOAD_BALANCER)},
        "CanonicalHostedZoneID": {"Description": "For a Route 53 alias record",
                                  "Value": {"Fn::GetAtt": [LOAD_BALANCER, "CanonicalHostedZoneID"]}},
    }
    return {"AWSTemplateFormatVersion": "2010-09-09",
            "Description": f"Confluence Data Center behind an Application Load Balancer: the setup {names.setup} "
                           f"of confluence-lb-wizard ({answers.public_url.url})",
            "Parameters": parameters, "Resources": resources, "Outputs": outputs}


def template_name(answers: Answers) -> str:
    return f"{answers.name}.cfn.yaml"


def build(answers: Answers, session: Session) -> dict[str, str]:
    """The one file of the CloudFormation export."""
    import yaml

    from wizard.errors import BadInputError

    if answers.balancer.kind != "alb":
        raise BadInputError(
            f"The setup {answers.name} puts Apache httpd in front of the nodes; CloudFormation describes the AWS "
            "load balancer only.", "Export it with --format ansible, or use answers with balancer.kind: alb.")
    data = template(answers, session.alb_desired())
    constants = alb_constants()
    header = (f"# Written by confluence-lb-wizard `export --format cloudformation` for the setup {answers.name}.\n"
              f"# Every resource has the name `apply` gives it and the tags {constants['TAG_SETUP']}={answers.name} and "
              f"{constants['TAG_MANAGED']}=true (the listeners and the rule too),\n"
              "# so the wizard's `plan` and `verify` find the stack's balancer as this setup's and never build a second "
              "one.\n"
              "# The Confluence nodes themselves (server.xml, setenv.sh, the rolling restart) are in the Ansible "
              "export.\n")
    return {template_name(answers): header + yaml.safe_dump(data, sort_keys=False, width=110)}
