"""Serves the web pages and their static files from the package, with caching and a strict CSP.

Pages are plain HTML with ES modules: no inline script or style, so the CSP needs no
`unsafe-inline` and no `unsafe-eval`. The chat page may be framed by the bot's allowed origins
(the widget opens it in an iframe); every other page may not be framed at all.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse

from botgpt.deps import ContainerDep

router = APIRouter(include_in_schema=False)

STATIC = resources.files("botgpt.web") / "static"
# Static files are named without a hash: an ETag makes revalidation cheap, a day of caching
# keeps repeat visits off the network, and a deploy is picked up within that day at worst.
STATIC_CACHE = "public, max-age=86400"
WIDGET_CACHE = "public, max-age=86400, stale-while-revalidate=604800"
BASE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file: its bytes, content type and entity tag."""

    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


@cache
def asset(name: str) -> Asset | None:
    """The packaged static file `name` (flat names only), else None."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    entry = STATIC / name
    if not entry.is_file():
        return None
    body = entry.read_bytes()
    suffix = name[name.rfind(".") :] if "." in name else ""
    media = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    if media == "text/html":
        media = "text/html; charset=utf-8"
    # Compressed once at first use: text assets shrink 3-4x, and nothing is compressed per request.
    packed = gzip.compress(body, 9, mtime=0) if media.startswith(("text/", "image/svg")) else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, packed if packed and len(packed) < len(body) else None, media, etag)


def _serve(request: Request, item: Asset, cache_control: str, csp: str | None = None) -> Response:
    headers = {"ETag": item.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if csp:
        headers["Content-Security-Policy"] = csp
    if request.headers.get("if-none-match") == item.etag:
        return Response(status_code=304, headers=headers)
    if item.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(item.gzipped, media_type=item.media_type, headers=headers)
    return Response(item.body, media_type=item.media_type, headers=headers)


def _page(request: Request, name: str, frame_ancestors: str = "'none'") -> Response:
    item = asset(name)
    assert item is not None, name
    csp = f"{BASE_CSP}; frame-ancestors {frame_ancestors}"
    return _serve(request, item, "no-cache", csp)


@router.get("/")
@router.get("/admin")
async def admin_page(request: Request) -> Response:
    """The admin dashboard."""
    return _page(request, "admin.html")


@router.get("/chat/{bot_id}")
async def chat_page(
    request: Request, bot_id: Annotated[str, Path(max_length=36)], c: ContainerDep
) -> Response:
    """A bot's chat page; only the bot's allowed origins (and BOT GPT itself) may frame it."""
    bot = await c.bot_directory.find(bot_id)
    origins = sorted(o for o in (bot.allowed_origins if bot else ()) if _safe_origin(o))
    return _page(request, "chat.html", " ".join(["'self'", *origins]))


@router.get("/widget.js")
async def widget(request: Request) -> Response:
    """The embeddable widget's launcher script."""
    item = asset("widget.js")
    assert item is not None
    return _serve(request, item, WIDGET_CACHE)


@router.get("/static/{name}")
async def static_file(request: Request, name: str) -> Response:
    """A packaged static file (stylesheets, modules)."""
    item = asset(name)
    if item is None or name.endswith(".html"):
        return Response(status_code=404)
    return _serve(request, item, STATIC_CACHE)


@router.get("/favicon.ico")
async def favicon() -> Response:
    """No icon file: point browsers at the SVG one."""
    return RedirectResponse("/static/icon.svg", status_code=301)


def _safe_origin(origin: str) -> bool:
    # Origins go into a header: refuse anything that could end the directive or the header.
    return origin.startswith(("http://", "https://")) and not any(
        ch in origin for ch in " ;,'\"\r\n"
    )
