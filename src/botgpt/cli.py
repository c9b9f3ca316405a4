"""Command line: botgpt serve | worker | migrate | users | chat | ingest | eval."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from pydantic import ValidationError

from botgpt import cli_chat, cli_keys, cli_users
from botgpt.config import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        for err in e.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            var = f"BOTGPT_{field.upper()}" if err["loc"] else "BOTGPT_*"
            print(f"configuration error: {var}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


async def _prepare(settings: Settings) -> str | None:
    """Apply migrations and make sure an admin exists; returns a new admin key, once."""
    from botgpt import migrate
    from botgpt.auth.security import TokenCodec
    from botgpt.auth.service import AuthService
    from botgpt.db import make_engine, make_sessionmaker

    engine = make_engine(settings.effective_database_url)
    try:
        await migrate.upgrade(engine)
        auth = AuthService(TokenCodec(settings.jwt_key(), 1), 1, 0)
        async with make_sessionmaker(engine)() as db:
            return await auth.ensure_admin(db, settings.admin_email)
    finally:
        await engine.dispose()


def workers_problem(settings: Settings) -> str | None:
    """Why `settings` cannot be served by more than one process, or None when it can."""
    if settings.workers < 1:
        return "botgpt serve --workers must be at least 1"
    if settings.workers == 1:
        return None
    if settings.effective_database_url.startswith("sqlite"):
        return (
            f"botgpt serve --workers {settings.workers} needs PostgreSQL: a SQLite database is"
            " served by one process only (set BOTGPT_DATABASE_URL=postgresql+asyncpg://..."
            " or use --workers 1)"
        )
    if not settings.redis_url:
        return (
            f"botgpt serve --workers {settings.workers} needs BOTGPT_REDIS_URL: rate limits,"
            " live replies, revocations and the job queue are shared through Redis"
        )
    return None


def _metrics_folder() -> None:
    """A fresh folder for the worker processes' metric files (prometheus_client multiprocess)."""
    import atexit
    import os
    import shutil
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.mkdtemp(prefix="botgpt-metrics-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def serve_app() -> Any:
    """The application of one worker process of `botgpt serve --workers N` (a uvicorn factory)."""
    from botgpt.main import create_app
    from botgpt.observability.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings, run_migrations=False)


def cmd_serve(args: argparse.Namespace) -> None:
    """Migrate, bootstrap the admin, and serve HTTP (in one or `--workers` processes)."""
    import uvicorn

    from botgpt.main import create_app
    from botgpt.observability.logging import configure_logging

    settings = _settings()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.workers is not None:
        settings.workers = args.workers
    problem = workers_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    configure_logging(settings.log_level, settings.log_json)
    key = asyncio.run(_prepare(settings))
    url = f"http://{settings.host}:{settings.port}"
    if key:
        print("=" * 72)
        print(f"Created admin user {settings.admin_email} with a service API key.")
        print(f"Admin API key (shown once, keep it safe): {key}")
        print("=" * 72)
    print(f"BOT GPT is starting at {url}  (API docs: {url}/docs)", flush=True)
    if settings.workers > 1:
        # Each worker process builds its own app from the same environment; migrations and
        # the admin were done once above. Their metrics are summed through a shared folder.
        _metrics_folder()
        uvicorn.run(
            "botgpt.cli:serve_app",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
        return
    app = create_app(settings, run_migrations=False)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def cmd_worker(_: argparse.Namespace) -> None:
    """Run background jobs (document ingestion, re-embedding) from the Redis queue."""
    settings = _settings()
    if not settings.redis_url:
        print(
            "botgpt worker needs BOTGPT_REDIS_URL (without Redis, `botgpt serve` runs jobs)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    asyncio.run(_prepare(settings))
    asyncio.run(_work(settings))


async def _work(settings: Settings) -> None:
    import signal

    from botgpt.db import make_engine, make_sessionmaker
    from botgpt.documents.service import build_document_services
    from botgpt.jobs.queue import make_queue
    from botgpt.observability.logging import configure_logging
    from botgpt.webhooks.service import Dispatcher

    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    queue = make_queue(settings, consume=True)
    services = build_document_services(settings, engine, sessions, queue)
    # Ingestion outcomes (document.ready / document.failed) reach webhooks from here too.
    webhooks = Dispatcher(settings, sessions)
    services.ingestor.on_event = webhooks.emit
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await webhooks.start()
        await queue.start()
        print(f"BOT GPT worker running {settings.ingest_workers} job(s) at a time", flush=True)
        await stop.wait()
    finally:
        await services.close()
        await webhooks.stop()
        await engine.dispose()


def cmd_migrate(_: argparse.Namespace) -> None:
    """Apply database migrations."""
    settings = _settings()
    key = asyncio.run(_prepare(settings))
    print("database is up to date")
    if key:
        print(f"Admin API key (shown once, keep it safe): {key}")


def cmd_users(args: argparse.Namespace) -> None:
    """List accounts, create one, or issue an API key."""
    raise SystemExit(cli_users.cmd_users(args, _settings()))


def cmd_chat(args: argparse.Namespace) -> None:
    """Chat with the configured model in the terminal."""
    settings = _settings()
    key = asyncio.run(_prepare(settings))
    if key:
        print(f"Admin API key (shown once, keep it safe): {key}")
    code = asyncio.run(
        cli_chat.chat_loop(
            settings, args.user, args.conversation, args.documents, sys.stdin, sys.stdout
        )
    )
    raise SystemExit(code)


# --- documents: ingest and retrieval evaluation ---------------------------------------
def _progress_bars() -> Any:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
    from rich.table import Column

    return Progress(
        TextColumn("{task.description}", table_column=Column(min_width=16, no_wrap=True)),
        BarColumn(bar_width=24),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}", table_column=Column(overflow="fold")),
    )


async def _ingest(settings: Settings, paths: list[str], user: str | None) -> int:
    from botgpt.db import make_engine, make_sessionmaker
    from botgpt.documents import service as documents
    from botgpt.exceptions import DomainError

    engine = make_engine(settings.effective_database_url)
    services = documents.build_document_services(settings, engine, make_sessionmaker(engine))
    service: documents.DocumentService = services.documents
    failures = 0
    try:
        owner = await cli_users.resolve_user(service.sessions, user or settings.admin_email)
        with _progress_bars() as bars:
            for path in documents.expand_paths(paths):
                task = bars.add_task(path.name[:40], total=1.0, status="queued")

                def report(status: str, progress: float, task: Any = task) -> None:
                    bars.update(task, completed=progress, status=status)

                try:
                    result = await service.ingest_file(owner, path, report)
                except (DomainError, OSError) as exc:
                    failures += 1
                    bars.update(task, status=f"[red]{getattr(exc, 'message', None) or exc}")
                    continue
                doc = result.document
                if result.duplicate:
                    note = f"already uploaded as {doc.id} ({doc.status})"
                elif doc.status != "ready":
                    failures += 1
                    note = f"[red]{doc.status}: {doc.error_message}"
                else:
                    note = f"{doc.id}: {doc.pages} pages, {doc.chunk_count} chunks"
                bars.update(task, completed=1.0, status=note)
    except DomainError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    finally:
        await services.close()
        await engine.dispose()
    return 1 if failures else 0


def cmd_ingest(args: argparse.Namespace) -> None:
    """Upload files (or folders) for a user and ingest them now, with progress bars."""
    settings = _settings()
    key = asyncio.run(_prepare(settings))
    if key:
        print(f"Admin API key (shown once, keep it safe): {key}")
    raise SystemExit(asyncio.run(_ingest(settings, args.paths, args.user)))


def cmd_eval_retrieval(args: argparse.Namespace) -> None:
    """Index a BEIR dataset in a throwaway database and print nDCG@10 and Recall@100."""
    import dataclasses
    import json
    import tempfile

    from botgpt.documents.evaluation import evaluate_retrieval

    settings = _settings()
    with _progress_bars() as bars, tempfile.TemporaryDirectory(prefix="botgpt-eval-") as tmp:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total, status="")
            bars.update(tasks[stage], completed=done, status=f"{done}/{total}")

        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/eval.db"
        report = asyncio.run(
            evaluate_retrieval(
                settings,
                args.dataset,
                split=args.split,
                mode=args.mode,
                database_url=url,
                progress=progress,
            )
        )
    print(f"nDCG@10 {report.ndcg_at_10:.4f}  Recall@100 {report.recall_at_100:.4f}")
    print(json.dumps(dataclasses.asdict(report)))


def cmd_eval_answers(args: argparse.Namespace) -> None:
    """Ask a grounded QA set through the configured model; print correctness and support JSON."""
    import dataclasses
    import json
    from pathlib import Path

    from botgpt.conversations.answer_eval import calibrate_only, evaluate_answers
    from botgpt.documents.embedding import build_embedder
    from botgpt.llm.factory import build_base_provider

    settings = _settings()

    async def run() -> dict[str, Any]:
        embedder = build_embedder(settings)
        try:
            if args.calibrate_only:
                return await calibrate_only(args.dataset, embedder, args.passages)
            provider = build_base_provider(settings)
            try:
                with _progress_bars() as bars:
                    task = bars.add_task("answers", total=1.0, status="")

                    def progress(done: int, total: int) -> None:
                        bars.update(task, completed=done / total, status=f"{done}/{total}")

                    report = await evaluate_answers(
                        settings,
                        provider,
                        embedder,
                        args.dataset,
                        passages=args.passages,
                        limit=args.limit,
                        max_tokens=args.max_tokens,
                        policies=tuple(args.policy or ("off", "annotate", "strict")),
                        answers=saved,
                        progress=progress,
                    )
                return dataclasses.asdict(report)
            finally:
                await provider.aclose()
        finally:
            await embedder.aclose()

    saved = json.loads(Path(args.answers).read_text())["raw_answers"] if args.answers else None
    result = asyncio.run(run())
    if args.save:
        Path(args.save).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    result.pop("raw_answers", None)
    print(json.dumps(result, indent=2, ensure_ascii=False))


# --- end documents ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `botgpt` command."""
    parser = argparse.ArgumentParser(prog="botgpt", description="BOT GPT server and tools")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        help="serving processes (default BOTGPT_WORKERS or 1; >1 needs PostgreSQL and Redis)",
    )
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("worker", help="run background jobs from the Redis queue").set_defaults(
        func=cmd_worker
    )
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    cli_users.add_parser(sub).set_defaults(func=cmd_users)
    cli_chat.add_parser(sub).set_defaults(func=cmd_chat)
    cli_keys.add_parser(sub).set_defaults(func=lambda a: sys.exit(cli_keys.run(_settings(), a)))
    ingest = sub.add_parser("ingest", help="upload and ingest documents now")
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    ingest.add_argument("--user", help="owner email or id (default: the admin)")
    ingest.set_defaults(func=cmd_ingest)
    evaluate = sub.add_parser("eval", help="measure quality").add_subparsers(
        dest="target", required=True
    )
    retrieval = evaluate.add_parser("retrieval", help="nDCG@10 / Recall@100 on a BEIR dataset")
    retrieval.add_argument("--dataset", required=True, help="folder with corpus/queries/qrels")
    retrieval.add_argument("--split", default="test")
    retrieval.add_argument("--mode", choices=["hybrid", "keyword", "vector"], default="hybrid")
    retrieval.add_argument("--database-url", help="an empty database (default: temporary SQLite)")
    retrieval.set_defaults(func=cmd_eval_retrieval)
    answers = evaluate.add_parser(
        "answers", help="grounded answers: correctness, citations, support check per policy"
    )
    answers.add_argument(
        "--dataset", required=True, help="folder with documents.json, questions.jsonl"
    )
    answers.add_argument("--policy", action="append", choices=["off", "annotate", "strict"])
    answers.add_argument("--limit", type=int, help="only the first N questions")
    answers.add_argument("--passages", type=int, default=3, help="sources per question")
    answers.add_argument("--max-tokens", type=int, default=160, help="reply length cap")
    answers.add_argument("--save", help="also write the report with every raw answer here")
    answers.add_argument("--answers", help="score the raw answers of a saved report again")
    answers.add_argument(
        "--calibrate-only", action="store_true", help="threshold calibration only, no model"
    )
    answers.set_defaults(func=cmd_eval_answers)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
