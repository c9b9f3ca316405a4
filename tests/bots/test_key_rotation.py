"""`botgpt keys rotate`: secrets re-encrypted with the new key still decrypt, and the old key
can then be dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import SecretStr

from botgpt import cli_keys, migrate
from botgpt.bots.secrets import SecretBox, SecretUnreadable, new_key
from botgpt.config import Settings
from botgpt.db import make_engine, make_sessionmaker


async def test_rotate_re_encrypts_with_the_new_key(tmp_path: Path) -> None:
    from botgpt.auth.models import User
    from botgpt.bots.models import Bot

    old, new = new_key(), new_key()
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    engine = make_engine(url)
    await migrate.upgrade(engine)
    box = SecretBox([old])
    async with make_sessionmaker(engine)() as db:
        owner = User(email="k@example.com")
        db.add(owner)
        await db.flush()
        db.add(
            Bot(
                owner_id=owner.id,
                name="b",
                system_prompt="p",
                api_key_encrypted=box.encrypt("sk-123"),
                signing_secret_encrypted=box.encrypt("sign"),
                starters=[],
                widget={},
                allowed_origins=[],
            )
        )
        await db.commit()
    await engine.dispose()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        data_dir=tmp_path,
        encryption_key=SecretStr(f"{new},{old}"),
    )
    assert await cli_keys.rotate(settings) == 2
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as db:
        from sqlalchemy import select

        bot = (await db.execute(select(Bot))).scalar_one()
    await engine.dispose()
    only_new = SecretBox([new])
    assert only_new.decrypt(bot.api_key_encrypted or "") == "sk-123"
    assert only_new.decrypt(bot.signing_secret_encrypted) == "sign"
    try:
        SecretBox([old]).decrypt(bot.api_key_encrypted or "")
        raise AssertionError("the old key should no longer read it")
    except SecretUnreadable:
        pass
    assert cli_keys.run(settings, argparse.Namespace(action="new")) == 0


def test_generated_key_file_is_private(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    keys = settings.encryption_keys()
    assert settings.encryption_keys() == keys  # the same key on the next start
    assert (tmp_path / "encryption_key").stat().st_mode & 0o777 == 0o600
