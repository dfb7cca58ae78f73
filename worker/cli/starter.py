"""`newswatch init [DIR]`: a starter config and a data folder, so that `newswatch run`
works after `pip install newswatch`, outside a checkout.

Two layouts, each one the config discovery finds (worker/settings.py):
- `init DIR`: DIR/config/newswatch.yaml and DIR/data, the layout of a checkout; found
  by a command run in DIR;
- `init`: the per-user config ($XDG_CONFIG_HOME/newswatch/newswatch.yaml) and data
  folder ($XDG_DATA_HOME/newswatch); found from any folder.

The files written are the package's templates (worker/config/templates/), which are the
repository's config/newswatch.yaml and config/example.yaml (a test keeps them equal).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from importlib.resources import files
from pathlib import Path

from worker.cli.context import Context
from worker.settings import user_config_path, user_data_dir

STARTER = "newswatch.yaml"  # the config `run` reads
REFERENCE = "example.yaml"  # every option, documented


def template(name: str) -> str:
    return (files("worker.config") / "templates" / name).read_text(encoding="utf-8")


def _layout(args: argparse.Namespace, ctx: Context) -> tuple[Path, Path] | None:
    """(config file, data folder) that `init` makes; None without a home to put them in."""
    if args.dir is not None:
        root = Path(args.dir).expanduser().absolute()
        return root / "config" / STARTER, root / "data"
    config, data = user_config_path(ctx.env), user_data_dir(ctx.env)
    return (config, data) if config and data else None


def cmd_init(args: argparse.Namespace, ctx: Context) -> int:
    layout = _layout(args, ctx)
    if layout is None:
        print("newswatch init: HOME is not set; name a folder: newswatch init DIR", file=sys.stderr)
        return 1
    config, data = layout
    if config.exists():
        print(
            f"newswatch init: {config} already exists; nothing written (edit it, or remove it "
            "to start again from the starter config)",
            file=sys.stderr,
        )
        return 1
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(template(STARTER), encoding="utf-8")
    print(f"wrote {config} (the starter config: edit its sources and watchlists)")
    reference = config.parent / REFERENCE
    if reference.exists():
        print(f"kept {reference} (already there)")
    else:
        reference.write_text(template(REFERENCE), encoding="utf-8")
        print(f"wrote {reference} (every option, documented)")
    data.mkdir(parents=True, exist_ok=True)
    print(f"data folder {data}")
    print(f"next: {_next_command(args)}")
    return 0


def _next_command(args: argparse.Namespace) -> str:
    if args.dir is None:
        return "newswatch check-config && newswatch run   (from any folder)"
    root = Path(args.dir).expanduser().absolute()
    if root == Path.cwd():
        return "newswatch check-config && newswatch run"
    return f"cd {shlex.quote(str(root))} && newswatch check-config && newswatch run"
