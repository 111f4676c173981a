"""Commands: `flask --app wsgi collect` (the collector) and `flask --app wsgi prune --older-than 30d`."""

import logging
import re
from datetime import UTC, datetime, timedelta

import click

from . import metrics
from .bootstrap import services
from .errors import TasklogsError

log = logging.getLogger(__name__)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(value: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` as a timedelta."""
    match = re.fullmatch(r"(\d+)([smhdw])", value.strip())
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter("use a positive number and a unit: s, m, h, d or w (e.g. 30d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


COLLECT_ENVIRONMENT = """\b
Environment:
  DATABASE_URL          postgresql://user:password@host:5432/db (the store the web service reads)
  KUBECONFIG            the cluster's configuration; in a pod, its service account instead
  TASKLOGS_NAMESPACE    the default namespace (argo)
  TASKLOGS_NAMESPACES   every namespace to capture, comma-separated, or * (one cluster-wide watch)
  TASKLOGS_CONTAINERS   more containers than TASKLOGS_CONTAINER (main) to capture, e.g. init,wait
Every setting: python -m tasklogs.config. The collector needs list and watch on workflows and pods and
get on pods/log in those namespaces (deploy/overlays/namespaces, or deploy/overlays/all-namespaces
for *). It stops
at once, with one line and status 1, when the database or the cluster cannot be used at start-up."""


def register(app) -> None:
    @app.cli.command("collect", epilog=COLLECT_ENVIRONMENT)
    def collect():
        """Capture every workflow's logs as they are written, whether or not anyone watches."""
        from .bootstrap import build_collector, check_stores
        from .collector import run_collector

        serve_metrics(services().settings.observability.metrics_port)
        try:
            check_stores(services(), collector=True)
            run_collector(build_collector(services()))
        except TasklogsError as error:
            raise click.ClickException(error.message) from None

    @app.cli.command("prune")
    @click.option(
        "--older-than",
        "age",
        required=True,
        callback=lambda ctx, param, value: parse_age(value),
        help="Age such as 30d, 12h, 2w.",
    )
    @click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10000))
    @click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
    def prune(age, batch_size, dry_run):
        """Remove the logs of tasks not updated for longer than --older-than, in batches."""
        cutoff = datetime.now(UTC) - age
        try:
            removed = prune_tasks(cutoff, batch_size, dry_run)
        except TasklogsError as error:
            raise click.ClickException(error.message) from None
        if dry_run:
            click.echo(
                f"{removed} task(s) last updated before {cutoff:%Y-%m-%d %H:%M} UTC would be removed"
            )
        else:
            click.echo(
                f"removed the logs of {removed} task(s) last updated before {cutoff:%Y-%m-%d %H:%M} UTC"
            )


def serve_metrics(port: int) -> None:
    """The collector's `/metrics` on `port` (0: none); a port that cannot be bound stops it."""
    if not port:
        return
    try:
        metrics.serve(port)
    except OSError as error:
        raise click.ClickException(
            f"TASKLOGS_METRICS_PORT={port}: cannot serve metrics there: {error.strerror or error}"
        ) from None
    log.info("collector metrics on :%d/metrics", port)


def prune_tasks(cutoff: datetime, batch_size: int, dry_run: bool) -> int:
    """Remove (with `dry_run`: count) the tasks last updated before `cutoff`, a batch per unit of work."""
    from .store import repository

    units = services().units
    if dry_run:
        with units() as uow:
            return len(repository.tasks_older_than(uow.session, cutoff, limit=None))
    removed = 0
    while True:
        with units() as uow:
            batch = repository.tasks_older_than(uow.session, cutoff, limit=batch_size)
            repository.delete_tasks(uow.session, batch)
            uow.commit()
        if not batch:
            return removed
        removed += len(batch)
        metrics.PRUNED_TASKS.inc(len(batch))
