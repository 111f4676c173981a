"""RBAC: does a list of PolicyRules allow a request (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac)."""

import yaml


def _has(values, wanted):
    return "*" in values or wanted in values


def rule_allows(rule, verb, group, resource, name):
    """resource may carry a subresource ("pods/log"), which "*/log" matches too (rbac ResourceMatches)."""
    resources = rule.get("resources") or []
    _, _, subresource = resource.partition("/")
    resource_ok = _has(resources, resource) or (subresource and f"*/{subresource}" in resources)
    if not (
        _has(rule.get("verbs") or [], verb)
        and _has(rule.get("apiGroups") or [], group)
        and resource_ok
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or name in names


def allows(rules, verb, group, resource, name) -> bool:
    return any(rule_allows(rule, verb, group, resource, name) for rule in rules)


def scoped(rules, namespace):
    """The rules that apply to a request in `namespace` (None: a cluster-scoped request, which only a
    ClusterRole's rules allow; a Role's rules apply in its own namespace only)."""
    return [
        rule
        for rule in rules
        if rule.get(SCOPE) is None or (namespace is not None and rule[SCOPE] in ("*", namespace))
    ]


SCOPE = (
    "_namespace"  # added by load_rules: a Role's namespace ("*": unknown), absent for ClusterRoles
)


def load_rules(path) -> list:
    """The rules of every Role and ClusterRole in a multi-document YAML file (List items included),
    each Role rule tagged with the Role's namespace."""
    rules = []
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            for obj in (doc or {}).get("items", [doc or {}]):
                if obj.get("kind") in ("Role", "ClusterRole"):
                    scope = (
                        {SCOPE: (obj.get("metadata") or {}).get("namespace") or "*"}
                        if obj["kind"] == "Role"
                        else {}
                    )
                    rules.extend({**rule, **scope} for rule in obj.get("rules") or [])
    return rules
