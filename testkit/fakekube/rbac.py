"""RBAC: does a list of PolicyRules allow a request (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac),
and which rules a service account's bindings give it (RoleBindings in a namespace, ClusterRoleBindings
everywhere and for cluster-scoped resources such as tokenreviews)."""

from dataclasses import dataclass, field

import yaml

# The bootstrap ClusterRoles the shipped manifests bind to (plugin/pkg/auth/authorizer/rbac/bootstrappolicy
# policy.go, ClusterRoles()): they exist in every cluster, so the manifests do not define them.
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


def load_documents(paths) -> list[dict]:
    """Every object of one or more multi-document YAML files (List items included)."""
    objects = []
    for path in [paths] if isinstance(paths, str | bytes) or hasattr(paths, "open") else paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                objects.extend((doc or {}).get("items", [doc or {}]))
    return [obj for obj in objects if obj]


def load_rules(paths) -> list:
    """The rules of every Role and ClusterRole in the files, whoever they are bound to."""
    return [
        rule
        for obj in load_documents(paths)
        if obj.get("kind") in ("Role", "ClusterRole")
        for rule in obj.get("rules") or []
    ]


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass
class Grants:
    """What one user may do: `cluster` rules (ClusterRoleBindings) apply in every namespace and to
    cluster-scoped resources; `namespaced` rules (RoleBindings) only in their namespace."""

    cluster: list = field(default_factory=list)
    namespaced: dict = field(default_factory=dict)

    def rules_in(self, namespace: str | None) -> list:
        """The rules for a request in `namespace` (None: a cluster-scoped resource)."""
        return self.cluster + (self.namespaced.get(namespace, []) if namespace else [])


def _subject_is(subject: dict, user: str, groups: tuple, binding_namespace: str | None) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user == service_account_user(namespace or "", name or "")
    if kind == "User":
        return user == name
    return kind == "Group" and name in groups


def _groups_of(user: str) -> tuple:
    """The groups the apiserver gives a service account's token (serviceaccount.MakeGroupNames)."""
    parts = user.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return (
            "system:serviceaccounts",
            f"system:serviceaccounts:{parts[2]}",
            "system:authenticated",
        )
    return ("system:authenticated",)


def grants_of(objects: list[dict], user: str) -> Grants:
    """The rules the bindings among `objects` give `user`, resolving each roleRef (a Role of the binding's
    namespace, a ClusterRole of the files, or a bootstrap ClusterRole)."""
    roles = {
        (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]): obj.get("rules")
        or []
        for obj in objects
        if obj.get("kind") in ("Role", "ClusterRole")
    }
    grants, groups = Grants(), _groups_of(user)
    for binding in objects:
        kind = binding.get("kind")
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        namespace = binding["metadata"].get("namespace") if kind == "RoleBinding" else None
        if not any(_subject_is(s, user, groups, namespace) for s in binding.get("subjects") or []):
            continue
        rules = _role_rules(roles, binding["roleRef"], namespace)
        if kind == "ClusterRoleBinding":
            grants.cluster.extend(rules)
        else:
            grants.namespaced.setdefault(namespace, []).extend(rules)
    return grants


def _role_rules(roles: dict, ref: dict, namespace: str | None) -> list:
    if ref["kind"] == "Role":
        key = ("Role", namespace, ref["name"])
    else:
        key = ("ClusterRole", None, ref["name"])
    if key not in roles and ref["kind"] == "ClusterRole" and ref["name"] in BOOTSTRAP_CLUSTER_ROLES:
        return BOOTSTRAP_CLUSTER_ROLES[ref["name"]]
    if key not in roles:
        raise ValueError(f"binding refers to {ref['kind']} {ref['name']!r}, which no file defines")
    return roles[key]


def load_grants(paths, user: str) -> Grants:
    """What the bindings of these manifest files give `user`."""
    return grants_of(load_documents(paths), user)


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
