"""`botgpt keys`: make an encryption key, and re-encrypt stored secrets with the newest one.

Rotation: set `BOTGPT_ENCRYPTION_KEY=NEW,OLD` (the new key first), run `botgpt keys rotate`
(every bot's provider key and signing secret is re-encrypted with NEW), then drop OLD.
"""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy import select

from botgpt.bots.models import Bot
from botgpt.bots.secrets import SecretBox, new_key
from botgpt.config import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register `botgpt keys new|rotate`."""
    keys = sub.add_parser("keys", help="encryption keys of secrets at rest")
    keys.add_argument("action", choices=["new", "rotate"])
    return keys


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Print a new key, or re-encrypt every stored secret with the first configured key."""
    if args.action == "new":
        print(new_key())
        return 0
    count = asyncio.run(rotate(settings))
    print(f"re-encrypted {count} secrets with the first key of BOTGPT_ENCRYPTION_KEY")
    return 0


async def rotate(settings: Settings) -> int:
    """Re-encrypt the secrets of every bot; returns how many were rewritten."""
    from botgpt import migrate
    from botgpt.db import make_engine, make_sessionmaker

    box = SecretBox(settings.encryption_keys())
    engine = make_engine(settings.effective_database_url)
    count = 0
    try:
        await migrate.upgrade(engine)
        async with make_sessionmaker(engine)() as db:
            for bot in (await db.execute(select(Bot))).scalars():
                bot.signing_secret_encrypted = box.rotate(bot.signing_secret_encrypted)
                count += 1
                if bot.api_key_encrypted is not None:
                    bot.api_key_encrypted = box.rotate(bot.api_key_encrypted)
                    count += 1
            await db.commit()
    finally:
        await engine.dispose()
    return count
