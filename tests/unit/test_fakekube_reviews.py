"""The fake API server's TokenReview and SubjectAccessReview, through the real kubernetes client:
the upstream bodies, codes and RBAC semantics (bindings, namespaces, subjects)."""

import json
import os

import pytest
from kubernetes import client, config

from testkit import ROOT
from testkit.fakekube import FakeKube


@pytest.fixture
def fake(tmp_path):
    kube = FakeKube(namespace="argo")
    kube.load_rbac(os.path.join(ROOT, "deploy", "rbac.yaml"), service_account="tasklogs-web")
    api = config.new_client_from_config(config_file=kube.write_kubeconfig(str(tmp_path / "k")))
    kube.api = api
    yield kube
    api.close()
    kube.close()


def post(fake, path, body):
    """(status, JSON body) of a raw POST as the client sends it."""
    try:
        response = fake.api.call_api(
            *fake.api.param_serialize(
                "POST",
                path,
                body=body,
                header_params={"Content-Type": "application/json"},
                auth_settings=["BearerToken"],
            )
        )
        response.read()
        return response.status, json.loads(response.data)
    except client.ApiException as error:
        return error.status, json.loads(error.body)


def access_review(user, groups=(), namespace="argo", verb="get", subresource="log"):
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": "",
                "resource": "pods",
                "subresource": subresource,
            },
            "user": user,
            "groups": list(groups),
        },
    }


TOKENS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def test_token_review_answers_who_a_token_is(fake):
    fake.add_token("t1", "alice", ["devs"], uid="u-1")
    answer = client.AuthenticationV1Api(fake.api).create_token_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t1"}}
    )
    assert answer.status.authenticated is True
    assert (answer.status.user.username, answer.status.user.uid) == ("alice", "u-1")
    assert answer.status.user.groups == ["devs", "system:authenticated"]
    status, body = post(fake, TOKENS, {"spec": {"token": "nobody"}})
    assert status == 201 and body["status"] == {"user": {}}, "an unknown token: not authenticated"
    status, body = post(fake, TOKENS, {"spec": {}})
    assert (status, body["message"]) == (400, "token is required for TokenReview in authentication")


def test_access_review_decides_from_bindings(fake):
    fake.grant_log_reading("User", "alice", "argo")
    fake.grant_log_reading("Group", "ops", None)
    fake.apply_rbac(
        {
            "kind": "Role",
            "metadata": {"name": "r", "namespace": "argo"},
            "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}],
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "sa", "namespace": "argo"},
            "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "argo"}],
        },
    )
    decide = client.AuthorizationV1Api(fake.api).create_subject_access_review
    allowed = decide(access_review("alice"))
    assert allowed.status.allowed and 'RoleBinding "' in allowed.status.reason
    assert not decide(access_review("alice", namespace="other")).status.allowed, "a Role is local"
    assert decide(access_review("bob", ["ops"], namespace="other")).status.allowed, "cluster-wide"
    assert decide(access_review("system:serviceaccount:argo:ci")).status.allowed
    assert not decide(access_review("alice", verb="delete")).status.allowed
    status, body = post(fake, ACCESS, access_review("carol"))
    assert status == 201 and body["status"] == {"allowed": False}, "no opinion says nothing more"


def test_access_review_without_a_subject_is_invalid(fake):
    status, body = post(fake, ACCESS, access_review(""))
    assert status == 422 and "at least one of user or group must be specified" in body["message"]
    assert body["message"].startswith('SubjectAccessReview.authorization.k8s.io "" is invalid')


def test_reviews_need_the_service_accounts_auth_delegation(fake):
    fake.rbac_rules = [r for r in fake.rbac_rules if "subjectaccessreviews" not in r["resources"]]
    status, body = post(fake, ACCESS, access_review("alice"))
    assert status == 403 and 'cannot create resource "subjectaccessreviews"' in body["message"]
    assert fake.count("create", "subjectaccessreviews") == 1
