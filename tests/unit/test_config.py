import os

import pytest

from tasklogs.config import SETTINGS, ConfigError, database_url, load_config, markdown_table


def test_defaults():
    config = load_config({})
    assert config["TASKLOGS_NAMESPACE"] == "argo"
    assert config["TASKLOGS_CONTAINER"] == "main"
    assert config["SQLALCHEMY_DATABASE_URI"] == ""
    assert config["TASKLOGS_AUTO_MIGRATE"] is True


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
        ("TASKLOGS_PROXY_FIX", "x_forwarded=1"),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})


def test_proxy_fix_forms():
    assert load_config({"TASKLOGS_PROXY_FIX": "1"})["TASKLOGS_PROXY_FIX"]["x_for"] == 1
    assert load_config({"TASKLOGS_PROXY_FIX": "x_for=2,x_proto=1"})["TASKLOGS_PROXY_FIX"] == {
        "x_for": 2,
        "x_proto": 1,
    }


def test_the_readme_configuration_table_is_the_generated_one():
    readme = open("README.md").read()
    assert markdown_table() in readme, "run `python -m tasklogs.config` and paste the table into the README"
    assert all(f"`{setting.env}`" in readme for setting in SETTINGS)


def test_without_database_url_the_app_uses_an_sqlite_file_in_its_instance_folder(monkeypatch):
    from tasklogs import create_app

    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app({"TASKLOGS_AUTO_MIGRATE": False})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + os.path.join(
        app.instance_path, "tasklogs.sqlite"
    )
