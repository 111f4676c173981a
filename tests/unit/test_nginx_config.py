"""deploy/nginx.conf: the README shows exactly it, and its placeholders are filled as envsubst would."""

import os
import re

import pytest

from testkit import ROOT
from testkit.nginx import SITE, fill


def read(path):
    with open(os.path.join(ROOT, path)) as file:
        return file.read()


def test_the_readme_nginx_snippet_is_deploy_nginx_conf():
    snippets = re.findall(r"```nginx\n(.*?)```", read("README.md"), re.S)
    assert snippets == [read(SITE)], (
        "the README's nginx snippet is deploy/nginx.conf, byte for byte"
    )


def test_the_configuration_proxies_websockets_and_forwards_the_client():
    server = re.search(r"^server \{\n.*?^\}", read(SITE), re.S | re.M).group(0)
    for directive in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_read_timeout ${PROXY_READ_TIMEOUT};",
    ):
        assert directive in server


def test_fill_replaces_the_placeholders_and_keeps_nginx_variables():
    values = {
        "TASKLOGS_UPSTREAM": "10.0.0.7:8000",
        "NGINX_LISTEN": "80",
        "PROXY_READ_TIMEOUT": "75s",
    }
    filled = fill(read(SITE), values)
    assert "${" not in filled
    assert "server 10.0.0.7:8000;" in filled and "listen 80;" in filled
    assert "proxy_read_timeout 75s;" in filled and "$proxy_add_x_forwarded_for" in filled


def test_fill_names_a_placeholder_without_a_value():
    with pytest.raises(KeyError, match="PROXY_READ_TIMEOUT"):
        fill(read(SITE), {"TASKLOGS_UPSTREAM": "127.0.0.1:8000", "NGINX_LISTEN": "80"})
