"""Making the planned changes in AWS, each undo recorded before its call.

A resource is created with its tags in the same call (nothing untagged ever
exists, even for a moment), then set up (attributes, targets), and only then
recorded with its ARN. A resource is deleted (what direct Synchrony routing left
once the mode is internal-proxy) only after an undo that makes it again as it
was is recorded. If anything fails, the runner performs the recorded undos,
which find the resources by name (see ``wizard.balancers.alb.undo``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from wizard.balancers.alb import undo
from wizard.balancers.alb.desired import (
    IDLE_TIMEOUT_KEY,
    Desired,
    ListenerSpec,
)
from wizard.balancers.alb.facts import AlbFacts
from wizard.balancers.alb.names import (
    ROLE_CONFLUENCE_TG,
    ROLE_HTTP_LISTENER,
    ROLE_HTTPS_LISTENER,
    ROLE_LOAD_BALANCER,
    ROLE_SECURITY_GROUP,
    ROLE_SYNCHRONY_RULE,
    ROLE_SYNCHRONY_TG,
)
from wizard.balancers.alb.plan import Action
from wizard.engine.model import Change
from wizard.engine.step import Journal
from wizard.transport.aws import Aws, AwsError

Report = Callable[[str, float | None], None]


class Executor:
    """Runs a plan's ALB changes in order, keeping the ids of what exists or was just made."""

    def __init__(self, aws: Aws, desired: Desired, facts: AlbFacts, journal: Journal, report: Report,
                 check_cancelled: Callable[[], None] = lambda: None) -> None:
        self.aws = aws
        self.desired = desired
        self.journal = journal
        self.report = report
        self.check_cancelled = check_cancelled
        self.names = desired.names
        balancer = facts.load_balancer
        self.security_group: str | None = facts.security_group.id if facts.security_group else None
        self.target_groups: dict[str, str] = {key: tg.arn for key, tg in facts.target_groups.items() if tg}
        self.load_balancer: str | None = balancer.arn if balancer else None
        self.listeners: dict[int, str] = {item.port: item.arn for item in balancer.listeners} if balancer else {}

    def run(self, changes: list[Change]) -> None:
        for index, change in enumerate(changes):
            self.check_cancelled()
            self.report(change.summary, index / max(len(changes), 1))
            action: Action = change.payload
            self._handler(action)(action)

    def _handler(self, action: Action) -> Callable[[Action], None]:
        if action.verb == "authorize":
            return self._authorize_ingress
        if action.verb == "register":
            return self._register_targets
        if action.verb == "revoke":
            return self._revoke_ingress
        handlers: dict[tuple[str, str], Callable[[Action], None]] = {
            ("create", "security-group"): self._create_security_group,
            ("create", "target-group"): self._create_target_group,
            ("modify", "target-group"): self._modify_target_group,
            ("create", "load-balancer"): self._create_load_balancer,
            ("modify", "load-balancer"): self._modify_load_balancer,
            ("create", "listener"): self._create_listener,
            ("modify", "listener"): self._modify_listener,
            ("create", "rule"): self._create_rule,
            ("modify", "rule"): self._modify_rule,
            ("delete", "target-group"): self._delete_target_group,
            ("delete", "rule"): self._delete_rule,
        }
        return handlers[(action.verb, _FAMILY[action.resource])]

    def _record(self, action: Action, verb: str, **what: Any) -> None:
        self.journal.changed(resource=action.resource, action=verb, name=action.name, region=self.desired.region,
                             **what)

    # --- Security groups -------------------------------------------------------------

    def _create_security_group(self, action: Action) -> None:
        desired = self.desired
        self.journal.undo(undo.delete_security_group(desired))
        created = self.aws.call(
            "ec2", "create_security_group", GroupName=self.names.security_group, VpcId=desired.vpc_id,
            Description=f"Confluence load balancer {self.names.load_balancer} (confluence-lb-wizard, setup "
                        f"{self.names.setup})",
            TagSpecifications=self.names.tag_specification("security-group", ROLE_SECURITY_GROUP,
                                                           self.names.security_group))
        self.security_group = created["GroupId"]
        self._record(action, "created", id=self.security_group, vpc_id=desired.vpc_id)
        if desired.balancer_ingress:
            # Part of the group's creation: deleting the group takes these rules with it.
            self.aws.call("ec2", "authorize_security_group_ingress", GroupId=self.security_group,
                          IpPermissions=_merged(rule.permission() for rule in desired.balancer_ingress),
                          TagSpecifications=self.names.tag_specification(
                              "security-group-rule", ROLE_SECURITY_GROUP, self.names.security_group))

    def _authorize_ingress(self, action: Action) -> None:
        if action.resource == ROLE_SECURITY_GROUP:
            self._authorize_networks(action)
            return
        rule = action.spec
        source = self._require(self.security_group, "the balancer's security group")
        group_id = action.name
        self.journal.undo(undo.revoke_ingress(self.desired, group_id, rule.port, rule.description,
                                              source_group=source))
        permission = {"IpProtocol": "tcp", "FromPort": rule.port, "ToPort": rule.port,
                      "UserIdGroupPairs": [{"GroupId": source, "Description": rule.description}]}
        try:
            self.aws.call("ec2", "authorize_security_group_ingress", GroupId=group_id, IpPermissions=[permission],
                          TagSpecifications=self.names.tag_specification(
                              "security-group-rule", action.resource,
                              f"{self.names.load_balancer} {rule.purpose} {rule.port}"))
        except AwsError as exc:
            # Added by someone else since the plan: it is there, which is what was wanted. The
            # recorded undo leaves it alone, because it lacks the wizard's description.
            if exc.code != "InvalidPermission.Duplicate":
                raise
        self._record(action, "authorized", group_id=group_id, port=rule.port)

    def _authorize_networks(self, action: Action) -> None:
        """Let a listener port in from each network, one rule at a time, each undo recorded first."""
        group_id = action.name
        for rule in action.spec:
            self.journal.undo(undo.revoke_ingress(self.desired, group_id, rule.port, rule.description,
                                                  cidr=rule.cidr))
            try:
                self.aws.call("ec2", "authorize_security_group_ingress", GroupId=group_id,
                              IpPermissions=[rule.permission()],
                              TagSpecifications=self.names.tag_specification(
                                  "security-group-rule", ROLE_SECURITY_GROUP, self.names.security_group))
            except AwsError as exc:
                # Added by someone else since the plan: admitted, as wanted; the recorded undo leaves
                # that rule alone, because it lacks the wizard's description.
                if exc.code != "InvalidPermission.Duplicate":
                    raise
        self._record(action, "authorized", group_id=group_id, port=action.spec[0].port,
                     cidrs=[rule.cidr for rule in action.spec])

    def _revoke_networks(self, action: Action) -> None:
        """Take back rules this setup made on a listener port, each re-authorization recorded first."""
        group_id = action.name
        for rule in action.spec:
            self.journal.undo(undo.authorize_ingress(
                self.desired, group_id, rule.port, rule.description, None,
                self.names.tags(ROLE_SECURITY_GROUP, self.names.security_group), cidr=rule.cidr))
            try:
                self.aws.call("ec2", "revoke_security_group_ingress", GroupId=group_id,
                              IpPermissions=[rule.permission()])
            except AwsError as exc:
                # Removed by someone else since the plan: gone, which is what was wanted.
                if exc.code != "InvalidPermission.NotFound":
                    raise
        self._record(action, "revoked", group_id=group_id, port=action.spec[0].port,
                     cidrs=[rule.cidr for rule in action.spec])

    def _revoke_ingress(self, action: Action) -> None:
        if action.resource == ROLE_SECURITY_GROUP:
            self._revoke_networks(action)
            return
        rule, group_id, source = action.spec, action.name, action.previous["source_group"]
        self.journal.undo(undo.authorize_ingress(
            self.desired, group_id, rule.port, rule.description, source,
            self.names.tags(action.resource, f"{self.names.load_balancer} {rule.purpose} {rule.port}")))
        try:
            # The description goes along: AWS ignores it when matching, moto needs it.
            self.aws.call("ec2", "revoke_security_group_ingress", GroupId=group_id, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": rule.port, "ToPort": rule.port,
                 "UserIdGroupPairs": [{"GroupId": source, "Description": rule.description}]}])
        except AwsError as exc:
            # Removed by someone else since the plan: gone, which is what was wanted.
            if exc.code != "InvalidPermission.NotFound":
                raise
        self._record(action, "revoked", group_id=group_id, port=rule.port, source_group=source)

    # --- Target groups ---------------------------------------------------------------

    def _create_target_group(self, action: Action) -> None:
        spec = action.spec
        self.journal.undo(undo.delete_target_group(self.desired, spec))
        created = self.aws.call(
            "elbv2", "create_target_group", Name=spec.name, Protocol=spec.protocol, Port=spec.port,
            VpcId=spec.vpc_id, TargetType=spec.target_type, HealthCheckEnabled=True, **spec.health_settings(),
            Tags=self.names.tags(spec.role, spec.name))
        arn = created["TargetGroups"][0]["TargetGroupArn"]
        self.target_groups[spec.key] = arn
        self._record(action, "created", arn=arn)
        self.aws.call("elbv2", "modify_target_group_attributes", TargetGroupArn=arn,
                      Attributes=[{"Key": k, "Value": v} for k, v in spec.attributes.items()])
        self.aws.call("elbv2", "register_targets", TargetGroupArn=arn, Targets=[t.api() for t in spec.targets])

    def _modify_target_group(self, action: Action) -> None:
        spec = action.spec
        arn = self.target_groups[spec.key]
        # By hand the attributes go back too (stickiness, the deregistration delay a drain relies on).
        attributes = [{"Key": k, "Value": v} for k, v in action.previous.get("attributes", {}).items() if v != ""]
        self.journal.undo(undo.restore(
            self.desired, "target-group", spec.name, action.previous,
            manual=(f"aws elbv2 modify-target-group --region {self.desired.region} --target-group-arn {arn} "
                    f"--cli-input-json '{_json(action.previous['health'])}'"
                    + (f" && aws elbv2 modify-target-group-attributes --region {self.desired.region} "
                       f"--target-group-arn {arn} --cli-input-json '{_json({'Attributes': attributes})}'"
                       if attributes else "")), arn=arn))
        fields = {d.field for d in action.differences}
        if any("." not in f for f in fields):
            self.aws.call("elbv2", "modify_target_group", TargetGroupArn=arn, **spec.health_settings())
        if any("." in f for f in fields):
            self.aws.call("elbv2", "modify_target_group_attributes", TargetGroupArn=arn,
                          Attributes=[{"Key": k, "Value": v} for k, v in spec.attributes.items()])
        self._record(action, "modified", arn=arn, differences=[d.describe() for d in action.differences])

    def _delete_target_group(self, action: Action) -> None:
        arn = self._require(action.arn, f"the target group {action.name}")
        self.journal.undo(undo.recreate_target_group(self.desired, action.name, action.previous))
        self.aws.call("elbv2", "delete_target_group", TargetGroupArn=arn)
        self.target_groups = {key: value for key, value in self.target_groups.items() if value != arn}
        self._record(action, "deleted", arn=arn)

    def _register_targets(self, action: Action) -> None:
        spec = action.spec
        arn = self.target_groups[spec.key]
        adding = [t.api() for t in action.register]
        removing = [{"Id": t.id, "Port": t.port} for t in action.deregister]
        self.journal.undo(undo.undo_targets(self.desired, spec, adding, removing))
        if adding:
            self.aws.call("elbv2", "register_targets", TargetGroupArn=arn, Targets=adding)
        if removing:
            self.aws.call("elbv2", "deregister_targets", TargetGroupArn=arn, Targets=removing)
        self._record(action, "registered", arn=arn, registered=[f"{t['Id']}:{t['Port']}" for t in adding],
                     deregistered=[f"{t['Id']}:{t['Port']}" for t in removing])

    # --- The load balancer -----------------------------------------------------------

    def _create_load_balancer(self, action: Action) -> None:
        desired = self.desired
        group = self._require(self.security_group, "the balancer's security group")
        self.journal.undo(undo.delete_load_balancer(desired))
        created = self.aws.call(
            "elbv2", "create_load_balancer", Name=self.names.load_balancer, Subnets=list(desired.subnets),
            SecurityGroups=[group], Scheme=desired.scheme, Type="application", IpAddressType="ipv4",
            Tags=self.names.tags(ROLE_LOAD_BALANCER, self.names.load_balancer))
        balancer = created["LoadBalancers"][0]
        self.load_balancer = balancer["LoadBalancerArn"]
        self._record(action, "created", arn=self.load_balancer, dns_name=balancer.get("DNSName", ""))
        self.aws.call("elbv2", "modify_load_balancer_attributes", LoadBalancerArn=self.load_balancer,
                      Attributes=[{"Key": IDLE_TIMEOUT_KEY, "Value": str(desired.idle_timeout)}])

    def _modify_load_balancer(self, action: Action) -> None:
        desired = self.desired
        arn = self._require(self.load_balancer, "the load balancer")
        previous = action.previous
        self.journal.undo(undo.restore(
            desired, "load-balancer", self.names.load_balancer, previous,
            manual=(f"aws elbv2 modify-load-balancer-attributes --region {desired.region} --load-balancer-arn {arn} "
                    f"--attributes Key={IDLE_TIMEOUT_KEY},Value={previous['idle_timeout']} && aws elbv2 set-subnets "
                    f"--region {desired.region} --load-balancer-arn {arn} --subnets {' '.join(previous['subnets'])} "
                    f"&& aws elbv2 set-security-groups --region {desired.region} --load-balancer-arn {arn} "
                    f"--security-groups {' '.join(previous['security_groups'])}"), arn=arn))
        fields = {d.field for d in action.differences}
        if "subnets" in fields:
            self.aws.call("elbv2", "set_subnets", LoadBalancerArn=arn, Subnets=list(desired.subnets))
        if "security groups" in fields:
            group = self._require(self.security_group, "the balancer's security group")
            self.aws.call("elbv2", "set_security_groups", LoadBalancerArn=arn, SecurityGroups=[group])
        if "idle timeout" in fields:
            self.aws.call("elbv2", "modify_load_balancer_attributes", LoadBalancerArn=arn,
                          Attributes=[{"Key": IDLE_TIMEOUT_KEY, "Value": str(desired.idle_timeout)}])
        self._record(action, "modified", arn=arn, differences=[d.describe() for d in action.differences])

    # --- Listeners and the rule ------------------------------------------------------

    def _listener_settings(self, spec: ListenerSpec) -> dict[str, Any]:
        confluence = self.target_groups.get("confluence")
        settings: dict[str, Any] = {"Protocol": spec.protocol, "Port": spec.port,
                                    "DefaultActions": spec.default_actions(confluence)}
        if spec.protocol == "HTTPS":
            settings["Certificates"] = [{"CertificateArn": spec.certificate_arn}]
            settings["SslPolicy"] = spec.ssl_policy
        if spec.action == "forward":
            self._require(confluence, "the Confluence target group")
        return settings

    def _create_listener(self, action: Action) -> None:
        spec: ListenerSpec = action.spec
        arn = self._require(self.load_balancer, "the load balancer")
        settings = self._listener_settings(spec)
        self.journal.undo(undo.delete_listener(self.desired, spec))
        created = self.aws.call("elbv2", "create_listener", LoadBalancerArn=arn, **settings,
                                Tags=self.names.tags(spec.role, f"{self.names.load_balancer}-{spec.port}"))
        self.listeners[spec.port] = created["Listeners"][0]["ListenerArn"]
        self._record(action, "created", arn=self.listeners[spec.port], port=spec.port)

    def _modify_listener(self, action: Action) -> None:
        spec: ListenerSpec = action.spec
        arn = self.listeners[spec.port]
        settings = self._listener_settings(spec)
        self.journal.undo(undo.restore(
            self.desired, "listener", f"{spec.protocol} {spec.port}", action.previous,
            manual=(f"aws elbv2 modify-listener --region {self.desired.region} --listener-arn {arn} "
                    f"--cli-input-json '{_json(action.previous)}'"),
            load_balancer=self.names.load_balancer, port=spec.port))
        self.aws.call("elbv2", "modify_listener", ListenerArn=arn, **settings)
        self._record(action, "modified", arn=arn, differences=[d.describe() for d in action.differences])

    def _rule_actions(self) -> list[dict[str, Any]]:
        synchrony = self._require(self.target_groups.get("synchrony"), "the Synchrony target group")
        return [{"Type": "forward", "TargetGroupArn": synchrony}]

    def _create_rule(self, action: Action) -> None:
        spec = action.spec
        listener = self._require(self.listeners.get(spec.listener_port), f"the listener on port {spec.listener_port}")
        actions = self._rule_actions()
        self.journal.undo(undo.delete_rule(self.desired, spec))
        created = self.aws.call("elbv2", "create_rule", ListenerArn=listener, Priority=action.priority,
                                Conditions=spec.conditions(), Actions=actions,
                                Tags=self.names.tags(ROLE_SYNCHRONY_RULE, f"{self.names.load_balancer}-synchrony"))
        self._record(action, "created", arn=created["Rules"][0]["RuleArn"], priority=action.priority)

    def _modify_rule(self, action: Action) -> None:
        spec = action.spec
        arn = self._require(action.arn, f"the rule {spec.path}")
        actions = self._rule_actions()
        self.journal.undo(undo.restore(
            self.desired, "rule", spec.path, action.previous,
            manual=(f"aws elbv2 modify-rule --region {self.desired.region} --rule-arn {arn} "
                    f"--cli-input-json '{_json(action.previous)}'"),
            load_balancer=self.names.load_balancer, port=spec.listener_port, path=spec.path))
        self.aws.call("elbv2", "modify_rule", RuleArn=arn, Conditions=spec.conditions(), Actions=actions)
        self._record(action, "modified", arn=arn, differences=[d.describe() for d in action.differences])

    def _delete_rule(self, action: Action) -> None:
        arn = self._require(action.arn, f"the rule {action.name}")
        self.journal.undo(undo.recreate_rule(self.desired, action.previous))
        self.aws.call("elbv2", "delete_rule", RuleArn=arn)
        self._record(action, "deleted", arn=arn, port=action.previous["port"], priority=action.previous["priority"])

    @staticmethod
    def _require(value: str | None, what: str) -> str:
        if not value:
            # The plan orders changes so this cannot happen; saying so beats a KeyError.
            raise AwsError(f"{what} does not exist yet, so the wizard cannot go on.",
                           "Run the same command again to plan from what is there now.")
        return value


#: What kind of resource each role is.
_FAMILY = {ROLE_SECURITY_GROUP: "security-group", ROLE_CONFLUENCE_TG: "target-group",
           ROLE_SYNCHRONY_TG: "target-group", ROLE_LOAD_BALANCER: "load-balancer",
           ROLE_HTTPS_LISTENER: "listener", ROLE_HTTP_LISTENER: "listener", ROLE_SYNCHRONY_RULE: "rule"}


def _merged(permissions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One permission per port holding all its networks (one call makes every rule of a new group)."""
    by_port: dict[int, dict[str, Any]] = {}
    for permission in permissions:
        merged = by_port.setdefault(permission["FromPort"], {
            "IpProtocol": "tcp", "FromPort": permission["FromPort"], "ToPort": permission["ToPort"]})
        for key in ("IpRanges", "Ipv6Ranges"):
            if permission.get(key):
                merged.setdefault(key, []).extend(permission[key])
    return list(by_port.values())


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True).replace("'", "'\\''")
