"""The pages' HTTP side without a browser: security headers, caching, packaged static files and
the dashboard's cookie sign-in (rotation on refresh, revocation on sign-out)."""

from __future__ import annotations

import httpx

from tests.bots.test_public_chat import make_bot
from tests.conftest import AuthedUser


async def test_pages_carry_a_strict_csp_and_only_the_chat_page_may_be_framed(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    bot = await make_bot(
        client, user, allowed_origins=["https://shop.example.com", "https://b.example.org"]
    )
    for path in ("/", "/admin"):
        r = await client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert b"<script>" not in r.content and b" style=" not in r.content
    chat = await client.get(f"/chat/{bot['id']}")
    assert (
        "frame-ancestors 'self' https://b.example.org https://shop.example.com"
        in chat.headers["content-security-policy"]
    )
    assert "x-frame-options" not in chat.headers
    unknown = await client.get("/chat/no-such-bot")
    assert "frame-ancestors 'self';" in unknown.headers["content-security-policy"] + ";"
    api = await client.get("/api/v1/users/me", headers=user.headers)
    assert api.headers["x-frame-options"] == "DENY"


async def test_static_files_are_cached_compressed_and_confined(client: httpx.AsyncClient) -> None:
    r = await client.get("/widget.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert "max-age=86400" in r.headers["cache-control"] and b"BotGPTWidget" in r.content
    again = await client.get("/widget.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    css = await client.get("/static/style.css")
    assert css.headers["content-type"].startswith("text/css") and b"--accent" in css.content
    for bad in ("/static/..%2frouter.py", "/static/chat.html", "/static/nope.js", "/static/.x"):
        assert (await client.get(bad)).status_code == 404, bad


async def test_cookie_sign_in_rotates_and_sign_out_revokes(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    assert (await client.post("/api/v1/auth/web/refresh")).status_code == 401
    r = await client.post(
        "/api/v1/auth/web/login", json={"email": user.email, "password": user.password}
    )
    assert r.status_code == 200 and "refresh_token" not in r.json()
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/api/v1/auth/web" in cookie
    first = client.cookies.get("botgpt_refresh")
    r = await client.post("/api/v1/auth/web/refresh")
    assert r.status_code == 200 and client.cookies.get("botgpt_refresh") != first
    access = r.json()["access_token"]
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access}"})
    assert me.json()["email"] == user.email
    r = await client.post("/api/v1/auth/web/logout", headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 204
    assert client.cookies.get("botgpt_refresh") is None
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 401
