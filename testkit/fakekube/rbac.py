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


def load_rules(path) -> list:
    """The rules of every Role and ClusterRole in a multi-document YAML file (List items included),
    and of the bootstrap ClusterRoles its bindings name (system:auth-delegator)."""
    with open(path) as f:
        documents = [
            obj for doc in yaml.safe_load_all(f) for obj in (doc or {}).get("items", [doc or {}])
        ]
    rules = []
    for obj in documents:
        if obj.get("kind") in ("Role", "ClusterRole"):
            rules.extend(obj.get("rules") or [])
    return rules + bootstrap_rules(documents)


# Bootstrap ClusterRoles every cluster has (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go),
# those the shipped manifests bind to.
BOOTSTRAP_CLUSTER_ROLES = {
    "system:auth-delegator": [
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["tokenreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
            "verbs": ["create"],
        },
    ],
}


def bootstrap_rules(documents) -> list:
    """The rules of bootstrap ClusterRoles that the documents' bindings refer to."""
    rules = []
    for obj in documents:
        ref = obj.get("roleRef") or {}
        if (
            obj.get("kind") in ("RoleBinding", "ClusterRoleBinding")
            and ref.get("kind") == "ClusterRole"
        ):
            rules.extend(BOOTSTRAP_CLUSTER_ROLES.get(ref.get("name"), []))
    return rules


class Rbac:
    """Roles, ClusterRoles and their bindings, deciding SubjectAccessReviews the way the RBAC
    authorizer does: the rules of every binding whose subjects include the user or one of its groups,
    RoleBindings only in their own namespace."""

    def __init__(self):
        self.roles = {}  # (namespace, name) -> rules
        self.cluster_roles = {name: list(rules) for name, rules in BOOTSTRAP_CLUSTER_ROLES.items()}
        self.bindings = []  # (binding kind, namespace or None, name, roleRef, subjects)

    def apply(self, obj: dict):
        kind, meta = obj["kind"], obj.get("metadata") or {}
        if kind == "Role":
            self.roles[(meta.get("namespace", "default"), meta["name"])] = obj.get("rules") or []
        elif kind == "ClusterRole":
            self.cluster_roles[meta["name"]] = obj.get("rules") or []
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            namespace = meta.get("namespace", "default") if kind == "RoleBinding" else None
            self.bindings.append(
                (kind, namespace, meta["name"], obj["roleRef"], obj.get("subjects") or [])
            )
        else:
            raise ValueError(f"not an RBAC object: {kind}")

    def decide(self, user, groups, namespace, verb, group, resource, name=None):
        """(allowed, reason) as the RBAC authorizer words an allow; no opinion has no reason."""
        for kind, bound_in, binding, ref, subjects in self.bindings:
            if bound_in is not None and bound_in != namespace:
                continue
            subject = next((s for s in subjects if _applies(s, user, groups)), None)
            if subject is None:
                continue
            rules = (
                self.roles.get((bound_in, ref["name"]), [])
                if ref["kind"] == "Role"
                else self.cluster_roles.get(ref["name"], [])
            )
            if allows(rules, verb, group, resource, name):
                where = f"{binding}/{bound_in}" if bound_in else binding
                return True, (
                    f'RBAC: allowed by {kind} "{where}" of {ref["kind"]} "{ref["name"]}" '
                    f"to {_describe(subject)}"
                )
        return False, ""


def _applies(subject, user, groups) -> bool:
    """rbac.appliesToUser: a User by name, a Group by membership, a ServiceAccount by its user name."""
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user
    if kind == "Group":
        return subject.get("name") in groups
    if kind == "ServiceAccount":
        return user == f"system:serviceaccount:{subject.get('namespace')}:{subject.get('name')}"
    return False


def _describe(subject) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("namespace")}/{subject.get("name")}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'
