"""`botgpt users`: list accounts, create one, issue an API key (e.g. to replace a lost one)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from botgpt.auth.models import User
from botgpt.auth.schemas import UserCreate
from botgpt.auth.security import TokenCodec
from botgpt.auth.service import AuthService, Principal, find_user
from botgpt.config import Settings
from botgpt.exceptions import DomainError, NotFound

T = TypeVar("T")


async def resolve_user(sessions: async_sessionmaker[AsyncSession], reference: str) -> str:
    """The id of the user with this id, email or external id (for commands taking --user)."""
    async with sessions() as db:
        user = await find_user(db, reference)
    if user is None:
        raise NotFound(f"No user with id or email {reference!r}.")
    return user.id


async def _with_db(
    settings: Settings, action: Callable[[AsyncSession, AuthService], Awaitable[T]]
) -> T:
    from botgpt import migrate
    from botgpt.db import make_engine, make_sessionmaker

    engine = make_engine(settings.effective_database_url)
    try:
        await migrate.upgrade(engine)
        auth = AuthService(TokenCodec(settings.jwt_key(), 1), 1, 0)
        async with make_sessionmaker(engine)() as db:
            return await action(db, auth)
    finally:
        await engine.dispose()


async def _find(db: AsyncSession, reference: str) -> User:
    user = await find_user(db, reference)
    if user is None:
        raise NotFound(f"No user with id or email {reference!r}.")
    return user


async def list_users(db: AsyncSession, _: AuthService) -> list[User]:
    """Every account, oldest first."""
    return list((await db.execute(select(User).order_by(User.created_at))).scalars())


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("the passwords differ")
    return first


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `botgpt users` action; returns the exit code."""
    try:
        if args.action == "list":
            users = asyncio.run(_with_db(settings, list_users))
            print(f"{'id':36}  {'email or external id':40}  admin  active  created")
            for u in users:
                who = u.email or f"external:{u.external_id}"
                created = u.created_at.strftime("%Y-%m-%d %H:%M")
                print(f"{u.id:36}  {who:40}  {u.is_admin!s:5}  {u.is_active!s:6}  {created}")
            return 0
        if args.action == "create":
            try:
                # The API's own rules: a valid email, a long enough password.
                form = UserCreate(
                    email=args.email,
                    password=_read_password(args.password_stdin),
                    display_name=args.name,
                )
            except ValidationError as e:
                for err in e.errors():
                    print(f"{err['loc'][0]}: {err['msg']}", file=sys.stderr)
                return 2

            async def create(db: AsyncSession, auth: AuthService) -> User:
                user = await auth.register(db, form)
                if args.admin:
                    user.is_admin = True
                    user.role = "admin"
                    await db.commit()
                return user

            user = asyncio.run(_with_db(settings, create))
            print(f"created {user.email} ({'admin' if user.is_admin else 'user'}): {user.id}")
            return 0

        async def issue(db: AsyncSession, auth: AuthService) -> str:
            user = await _find(db, args.user)
            principal = Principal(user.id, user.is_admin, False, "cli")
            _, key = await auth.create_api_key(db, principal, args.name, args.service)
            return key

        key = asyncio.run(_with_db(settings, issue))
        print(f"API key (shown once, keep it safe): {key}")
        return 0
    except DomainError as exc:
        print(exc.message, file=sys.stderr)
        return 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """The `users` command and its actions."""
    users = sub.add_parser("users", help="manage accounts and API keys")
    actions = users.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="list every account")
    create = actions.add_parser("create", help="create an account (asks for its password)")
    create.add_argument("email")
    create.add_argument("--name", help="display name")
    create.add_argument("--admin", action="store_true", help="an administrator")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    key = actions.add_parser("key", help="issue a new API key for an account, printed once")
    key.add_argument("user", help="email, id or external id")
    key.add_argument("--name", default="cli", help="a label for the key")
    key.add_argument(
        "--service", action="store_true", help="a service key (admins only): may act for users"
    )
    return users
