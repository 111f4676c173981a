"""Commands: `flask --app wsgi collect` (the collector) and `flask --app wsgi prune --older-than 30d`
(without --older-than: TASKLOGS_RETENTION)."""

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from . import config, metrics
from .bootstrap import services
from .errors import TasklogsError

if TYPE_CHECKING:
    from .retention import Pruned

log = logging.getLogger(__name__)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(value: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` as a timedelta (a click error otherwise)."""
    try:
        return config.parse_age(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


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
        callback=lambda ctx, param, value: None if value is None else parse_age(value),
        help="Age such as 30d, 12h, 2w (default: TASKLOGS_RETENTION).",
    )
    @click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10000))
    @click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
    def prune(age, batch_size, dry_run):
        """Remove the logs of tasks not updated for longer than --older-than: whole day partitions
        where every task is that old (PostgreSQL), then the other tasks' rows, in batches."""
        age = age or services().settings.database.retention
        if age is None:
            raise click.UsageError("give --older-than (such as 30d) or set TASKLOGS_RETENTION")
        cutoff = datetime.now(UTC) - age
        try:
            pruned = prune_tasks(cutoff, batch_size, dry_run)
        except TasklogsError as error:
            raise click.ClickException(error.message) from None
        before = f"last updated before {cutoff:%Y-%m-%d %H:%M} UTC"
        dropped = f"{len(pruned.partitions)} whole partition(s)"
        if pruned.partitions:
            dropped += f" ({', '.join(pruned.partitions)})"
        if dry_run:
            click.echo(f"{pruned.tasks} task(s) {before} would be removed; {dropped} dropped")
        else:
            click.echo(f"removed the logs of {pruned.tasks} task(s) {before}; {dropped} dropped")


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


def prune_tasks(cutoff: datetime, batch_size: int, dry_run: bool) -> "Pruned":
    """Remove (with `dry_run`: count) the tasks last updated before `cutoff`: by partition, then in
    batches of rows, a unit of work each."""
    from .retention import prune, prune_preview

    units = services().units
    return prune_preview(units, cutoff) if dry_run else prune(units, cutoff, batch_size)
