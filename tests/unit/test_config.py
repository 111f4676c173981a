import dataclasses
import os

import pytest

from tasklogs.config import (
    SETTINGS,
    ConfigError,
    Settings,
    database_url,
    load_config,
    markdown_table,
)


def test_defaults():
    settings = load_config({})
    assert settings == Settings()
    assert settings.cluster.namespace == "argo" and settings.cluster.containers == ("main",)
    assert settings.database.url == "" and settings.database.auto_migrate is True


def test_every_setting_fills_a_field_of_its_group():
    fields_of = {
        group.name: {f.name for f in dataclasses.fields(group.type)}
        for group in dataclasses.fields(Settings)
    }
    assert sorted(s.env for s in SETTINGS) == sorted({s.env for s in SETTINGS})
    assert all(s.field in fields_of[s.group] for s in SETTINGS)
    assert sum(len(names) for names in fields_of.values()) == len(SETTINGS)


def test_settings_are_frozen_and_overrides_parse_strings_or_take_values():
    settings = load_config(
        {"TASKLOGS_CONTAINERS": "init,wait"},
        {"TASKLOGS_POLL_INTERVAL": "0.5", "TASKLOGS_MAX_TAILS": 7},
    )
    assert settings.cluster.containers == ("main", "init", "wait")
    assert settings.capture.poll_interval == 0.5 and settings.tails.max_tails == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.tails.max_tails = 8  # type: ignore[misc]
    with pytest.raises(ConfigError, match="TASKLOGS_POLL_INTERVAL"):
        load_config({}, {"TASKLOGS_POLL_INTERVAL": "-1"})


def test_tail_coalescing_and_hurried_commits_are_two_settings():
    settings = load_config({"TASKLOGS_TAIL_COALESCE": "0", "TASKLOGS_JOURNAL_HURRY_GAP": "0.05"})
    assert settings.tails.coalesce == 0 and settings.capture.hurry_gap == 0.05


def test_seed_database_url_uses_psycopg2():
    """SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3, which is not installed."""
    assert (
        database_url("postgresql://postgres:password@postgres:5432/postgres")
        == "postgresql+psycopg2://postgres:password@postgres:5432/postgres"
    )
    assert database_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(
    "name,value",
    [
        ("TASKLOGS_NAMESPACE", "Argo"),
        ("TASKLOGS_KUBE_READ_TIMEOUT", "0"),
        ("TASKLOGS_KUBE_READ_TIMEOUT", "soon"),
        ("TASKLOGS_AUTO_MIGRATE", "maybe"),
        ("TASKLOGS_DB_POOL_SIZE", "0"),
        ("DATABASE_URL", "localhost:5432"),
        ("TASKLOGS_PROXY_FIX", "1"),
        ("TASKLOGS_AUTH", "oidc"),
        ("TASKLOGS_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local"),
        ("TASKLOGS_AUTH_CACHE_SECONDS", "-1"),
        ("TASKLOGS_AUTH_GROUPS_HEADER", "X Groups"),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})


def test_proxy_fix_is_gone_and_says_what_replaced_it():
    with pytest.raises(ConfigError, match="TASKLOGS_PROXY_FIX.*TASKLOGS_TRUSTED_PROXIES"):
        load_config({}, {"TASKLOGS_PROXY_FIX": "1"})


def test_trusted_proxies_take_addresses_and_networks():
    access = load_config({"TASKLOGS_TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,::1"}).access
    assert [str(network) for network in access.trusted_proxies] == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "::1/128",
    ]


@pytest.mark.parametrize(
    "environ,named",
    [
        ({"TASKLOGS_AUTH": "token"}, "TASKLOGS_API_TOKEN"),
        ({"TASKLOGS_AUTH": "proxy"}, "TASKLOGS_TRUSTED_PROXIES"),
        ({"TASKLOGS_AUTH": "kubernetes", "TASKLOGS_API_TOKEN": "t"}, "TASKLOGS_API_TOKEN"),
        ({"TASKLOGS_AUTH": "none", "TASKLOGS_API_TOKEN": "t"}, "TASKLOGS_API_TOKEN"),
    ],
)
def test_combinations_a_mode_cannot_run_with_stop_start_up(environ, named):
    with pytest.raises(ConfigError, match=named):
        load_config(environ)


def test_auth_modes_and_their_defaults():
    assert load_config({}).access.mode == "", "unset: loopback clients only"
    assert load_config({"TASKLOGS_API_TOKEN": "t"}).access.mode == "token", "a token means token"
    proxy = load_config({"TASKLOGS_AUTH": "Proxy", "TASKLOGS_TRUSTED_PROXIES": "10.1.2.3"}).access
    assert (proxy.mode, proxy.user_header, proxy.groups_header) == (
        "proxy",
        "X-Forwarded-User",
        "X-Forwarded-Groups",
    )
    kubernetes = load_config({"TASKLOGS_AUTH": "kubernetes"}).access
    assert (kubernetes.cache_seconds, kubernetes.denial_seconds) == (60.0, 5.0)
    short = load_config({"TASKLOGS_AUTH_CACHE_SECONDS": "2"}).access
    assert short.denial_seconds == 0.5, "denials are remembered for less time than grants"


def test_the_readme_configuration_table_is_the_generated_one():
    readme = open("README.md").read()
    assert markdown_table() in readme, (
        "run `python -m tasklogs.config` and paste the tables into the README"
    )
    assert markdown_table(advanced=True) in readme, (
        "run `python -m tasklogs.config` and paste the tables"
    )
    assert all(f"`{setting.env}`" in readme for setting in SETTINGS)


def test_without_database_url_the_app_uses_an_sqlite_file_in_its_instance_folder(monkeypatch):
    from tasklogs import create_app

    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app({"TASKLOGS_AUTO_MIGRATE": False})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + os.path.join(
        app.instance_path, "tasklogs.sqlite"
    )
