"""The commands that run the service: `run` (beat and two workers), `worker`, `beat`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from worker.cli.context import Context, log, paths, redact, setup_logging
from worker.settings import Settings
from worker.tracking.metrics import multiprocess_dir

# `newswatch run`: fetching and delivering wait on the network, parsing and matching use
# the CPU, so each gets the pool that suits it (docs/load.md)
RUN_IO_QUEUES = "fetch,alerts"
RUN_CPU_QUEUES = "control,parse,rules"


def exit_without_broker(command: str) -> None:
    from worker.service.startup import exit_without_broker as refuse

    refuse(f"newswatch {command}")


def prepare(ctx: Context) -> None:
    """Before the service starts: a valid config, the data folder, a migrated database."""
    ctx.check_config_or_exit()
    ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
    ctx.store().upgrade()
    ctx.close_store()  # the service's processes open their own


def warn_unreachable(ctx: Context) -> None:
    from worker.service.startup import warn_unreachable as warn

    warn(ctx.settings, ctx.compiled())


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    """Beat and two workers in one process tree, on the embedded defaults unless told
    otherwise: a threads pool for fetch and alerts, a prefork pool for the rest."""
    from worker.service.supervisor import AlreadyRunning, InstanceLock, run_in_child

    settings = ctx.settings
    setup_logging(settings.log_level, settings.log_format)
    # before anything is created in a wrong folder; in a child, as every one-off step
    # of `run`, so that the supervisor does not keep what it loads (run_in_child)
    if code := run_in_child(ctx.check_config_or_exit):
        return code
    # one `run` per data folder, held until this process ends (however it ends)
    lock = InstanceLock(settings.data_dir / "newswatch.lock")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(
            f"newswatch run is already running here (pid {exc.pid or 'unknown'}, "
            f"data folder {settings.data_dir})",
            file=sys.stderr,
        )
        return 1
    try:
        return _run_locked(args, ctx)
    finally:
        lock.release()


def _run_locked(args: argparse.Namespace, ctx: Context) -> int:
    from worker.service.embedded_redis import EmbeddedRedis, EmbeddedRedisError
    from worker.service.supervisor import Supervisor, child_environment, run_in_child

    def once() -> None:  # run's one-off steps, in a child (docs/load.md, "Memory at idle")
        prepare(ctx)
        warn_unreachable(ctx)

    if code := run_in_child(once):
        return code
    settings, embedded = ctx.settings, None
    if settings.embedded_broker:
        # may stop a stale one: we hold the lock
        embedded = EmbeddedRedis(settings.data_dir, ctx.env)
        try:
            settings = replace(settings, broker_url=embedded.start())
        except EmbeddedRedisError as exc:
            print(f"newswatch run: {exc}", file=sys.stderr)
            return 1
    log.info("newswatch run: %s, broker %s", paths(settings), redact(settings.broker_url or ""))
    env = child_environment(
        ctx.env,
        config=settings.config_path if args.config else None,
        broker_url=settings.broker_url if embedded else None,
        metrics_dir=multiprocess_dir(settings.data_dir),
    )
    try:
        supervisor = Supervisor(_run_children(args), on_tick=_disk_notices(settings), env=env)
        return supervisor.run()
    finally:
        if embedded is not None:
            embedded.stop()


def _run_children(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command lines of `run`'s two workers (`newswatch worker`, in a new interpreter)."""
    name = args.hostname or f"newswatch-run-{os.getpid()}@%h"
    common = ["worker", "--skip-checks", f"--supervisor-pid={os.getpid()}"]
    children = {
        "io": [
            *common,
            "--pool=threads",
            f"--concurrency={args.fetch_concurrency}",
            f"--queues={RUN_IO_QUEUES}",
            f"--hostname=io.{name}",
        ],
        "cpu": [
            *common,
            "--pool=prefork",
            f"--concurrency={args.concurrency}",
            f"--queues={RUN_CPU_QUEUES}",
            f"--hostname=cpu.{name}",
            "--beat",
        ],
    }
    return {kind: [sys.executable, "-m", "worker.cli", *argv] for kind, argv in children.items()}


def _disk_notices(settings: Settings) -> Callable[[], None]:
    """The supervisor's disk watch; its notices' deliveries go out through an app built
    for `settings` (the broker `run` started)."""
    from worker.service.diskspace import DiskNotices, DiskWatch

    db = settings.sqlite_path
    watch = DiskWatch([settings.data_dir, *([db.parent] if db else [])], settings.min_free_bytes)
    return DiskNotices(settings, watch, _deliveries_sender(settings))


def _deliveries_sender(settings: Settings) -> Callable[[list[str]], None]:
    """Sends deliveries on their way through an app built on the first notice: the
    supervisor does not load Celery, the store and the fetcher for a disk that may never
    fill (docs/load.md, "Memory at idle")."""
    app: Any = None

    def send(ids: list[str]) -> None:
        nonlocal app
        from worker.app import create_app, enqueue

        if app is None:
            app = create_app(settings)
        enqueue(app, "newswatch.deliver", ids)

    return send


def cmd_worker(args: argparse.Namespace, ctx: Context) -> int:
    """A Celery worker; what it sets up before its pool starts (metrics folder, logging,
    config check, migrations) is done in Celery's `celeryd_init` (worker/app.py), as for
    `celery -A worker worker`. Flags this command does not know go to Celery."""
    from worker.app import QUEUES, create_app

    settings = ctx.settings
    if settings.embedded_broker:
        exit_without_broker("worker")
    setup_logging(settings.log_level, settings.log_format)
    if args.supervisor_pid:  # started by `run`: end with it, even if it is SIGKILLed
        import signal

        from worker.service.supervisor import ensure_dies_with_parent

        ensure_dies_with_parent(signal.SIGTERM, args.supervisor_pid)
    argv = [
        "worker",
        f"--loglevel={settings.log_level}",
        f"--pool={args.pool}",
        f"--concurrency={args.concurrency}",
        f"--queues={args.queues or ','.join(QUEUES)}",
        f"--hostname={args.hostname}",
        "--without-gossip",
        "--without-mingle",
    ]
    if args.beat:
        argv += ["--beat", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
    without_click_repl()  # before worker_main imports Celery's command line
    app = create_app(settings)
    app.startup_checks = not args.skip_checks  # `run` did them once for both of its workers
    app.command = "newswatch worker"
    app.worker_main(argv=[*argv, *args.celery_args])  # Celery's own flags last: they win
    return 0


def without_click_repl() -> None:
    """Keep click_repl (and prompt_toolkit, pygments, wcwidth: about 11 MB per process)
    out of a worker. `worker_main` runs Celery's command line, whose module imports every
    subcommand, and `celery amqp` imports click_repl only to add its `repl` subcommand
    (`register_repl(amqp)`), which a worker never runs. So a stand-in module takes its
    place in `sys.modules` first: its `register_repl` adds the same `repl` command, which
    loads the real click_repl when it is run, and any other name asked of it loads the
    real module too. Nothing is lost, and a process that loaded the real one keeps it.
    (`celery -A worker worker` imports Celery's command line before newswatch: there the
    real module is loaded.) docs/load.md, "Memory at idle"."""
    import types

    if "click_repl" in sys.modules:
        return
    shim = types.ModuleType("click_repl", without_click_repl.__doc__)

    def real() -> Any:
        import importlib

        if sys.modules.get("click_repl") is shim:
            del sys.modules["click_repl"]
        return importlib.import_module("click_repl")

    def register_repl(group: Any, name: str = "repl") -> None:
        import click

        @click.pass_context
        def repl(ctx: Any, *rest: Any, **options: Any) -> Any:
            return real().repl(ctx, *rest, **options)

        group.command(name=name)(repl)

    def other(name: str) -> Any:
        if name.startswith("__"):  # what the import system asks (__path__, __spec__)
            raise AttributeError(name)
        return getattr(real(), name)

    shim.register_repl = register_repl  # type: ignore[attr-defined]
    setattr(shim, "__getattr__", other)  # noqa: B010 - the module's own (PEP 562)
    sys.modules["click_repl"] = shim


def cmd_beat(args: argparse.Namespace, ctx: Context) -> int:
    settings = ctx.settings
    if settings.embedded_broker:
        exit_without_broker("beat")
    setup_logging(settings.log_level, settings.log_format)
    log.info("newswatch beat: %s", paths(settings))
    from worker.service.supervisor import run_in_child

    # in a child: beat only sends the dispatch tick, and would otherwise keep the
    # compiled config and alembic it loaded to check and migrate for its whole life
    # (at 100,000 sources, most of a GB)
    if code := run_in_child(lambda: prepare(ctx)):
        return code
    from worker.app import create_app

    create_app(settings).Beat(
        loglevel=settings.log_level,
        schedule=str(settings.data_dir / f"celerybeat-schedule-{os.getpid()}"),
        quiet=settings.log_format == "json",  # the banner is not JSON
    ).run()
    return 0
