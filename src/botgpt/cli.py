"""Command line: botgpt serve | migrate | create-admin-key."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

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


def cmd_serve(args: argparse.Namespace) -> None:
    """Migrate, bootstrap the admin, and serve HTTP."""
    import uvicorn

    from botgpt.main import create_app
    from botgpt.observability.logging import configure_logging

    settings = _settings()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    configure_logging(settings.log_level, settings.log_json)
    key = asyncio.run(_prepare(settings))
    url = f"http://{settings.host}:{settings.port}"
    if key:
        print("=" * 72)
        print(f"Created admin user {settings.admin_email} with a service API key.")
        print(f"Admin API key (shown once, keep it safe): {key}")
        print("=" * 72)
    print(f"BOT GPT is starting at {url}  (API docs: {url}/docs)", flush=True)
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


def cmd_migrate(_: argparse.Namespace) -> None:
    """Apply database migrations."""
    settings = _settings()
    key = asyncio.run(_prepare(settings))
    print("database is up to date")
    if key:
        print(f"Admin API key (shown once, keep it safe): {key}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `botgpt` command."""
    parser = argparse.ArgumentParser(prog="botgpt", description="BOT GPT server and tools")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
