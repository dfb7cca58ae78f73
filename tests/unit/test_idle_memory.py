"""What keeps `newswatch run` small at idle (docs/load.md, "Memory at idle"): its one-off
steps run in a forked child, and processes do not import what they never use."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from worker.service.supervisor import run_in_child


def _exits_with(code: int) -> None:
    raise SystemExit(code)


def _fails() -> None:
    raise RuntimeError("migration went wrong")


def test_run_in_child_returns_the_childs_exit_status(capfd: pytest.CaptureFixture[str]) -> None:
    assert run_in_child(lambda: None) == 0
    assert run_in_child(lambda: _exits_with(3)) == 3
    assert run_in_child(_fails) == 1
    assert "RuntimeError: migration went wrong" in capfd.readouterr().err


def test_what_the_child_imports_stays_in_the_child() -> None:
    # in a fresh interpreter: this test process may have loaded the module already
    code = textwrap.dedent(
        """
        import sys
        from worker.service.supervisor import run_in_child
        assert "xml.dom.minidom" not in sys.modules
        assert run_in_child(lambda: __import__("xml.dom.minidom")) == 0
        assert "xml.dom.minidom" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _loaded_after(imports: str, watched: tuple[str, ...]) -> list[str]:
    code = f"import sys\n{imports}\nprint(' '.join(m for m in {watched!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.split()


def test_the_supervisor_keeps_no_store_no_http_client_and_no_schema() -> None:
    # what `newswatch run` imports for its own life (the one-off steps run in a child)
    imports = (
        "import worker.cli, worker.cli.service, worker.service.supervisor, "
        "worker.service.embedded_redis, worker.service.diskspace, worker.service.observability\n"
        # what it asks at run time: its arguments parsed, the SQLite file for the disk watch
        "import worker.settings; worker.cli.build_parser().parse_known_args(['run']); "
        "worker.settings.Settings.from_env({'NEWSWATCH_DATA_DIR': '/tmp/x'}).sqlite_path"
    )
    watched = (
        *("sqlalchemy", "celery", "requests", "pydantic", "psycopg", "alembic", "trafilatura"),
        *("redis", "jinja2", "regex", "importlib.metadata"),
    )
    assert _loaded_after(imports, watched) == []


def test_a_worker_loads_no_extractor_until_it_parses() -> None:
    # the threads worker (fetch, alerts) imports the tasks module and never parses
    watched = ("trafilatura", "dateparser", "htmldate", "justext", "psycopg")
    assert _loaded_after("import worker.cli, worker.app, worker.tasks", watched) == []


def test_a_worker_loads_no_click_repl_and_celery_keeps_its_repl_command() -> None:
    # Celery's command line imports click_repl for `celery amqp repl` alone; the stand-in
    # of cli/service.py adds the same command and loads the real module when asked
    code = textwrap.dedent(
        """
        import sys
        from worker.cli.service import without_click_repl
        without_click_repl()
        import celery.bin.celery
        assert "repl" in celery.bin.celery.amqp.commands
        print(' '.join(m for m in ('click_repl', 'prompt_toolkit', 'wcwidth')
                       if getattr(sys.modules.get(m), '__file__', None)))
        import click_repl
        assert click_repl.repl.__module__.startswith("click_repl")  # the real one, on demand
        assert "prompt_toolkit" in sys.modules
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == []


def test_the_prefork_main_builds_the_c_parser_its_children_would_each_build() -> None:
    # billiard declares prctl with cffi in every pool child: the parser is built before fork
    code = textwrap.dedent(
        """
        import sys
        import worker.app
        if "cffi" in sys.modules:
            import cffi.cparser
            assert cffi.cparser._parser_cache is None
            worker.app._parse_pdeathsig_declaration()
            assert cffi.cparser._parser_cache is not None
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
