"""The import rules of docs/architecture.md, checked on the source so a change that breaks
them fails here rather than in review."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "botgpt"
WEB = ("fastapi", "starlette", "botgpt.errors", "botgpt.deps", "botgpt.container", "botgpt.main")
# The web layer of a package: its routes, and what only speaks HTTP.
WEB_MODULES = ("router.py", "sse.py", "cors.py", "middleware.py")
# Packages that are web adapters through and through (the OpenAI wire format).
WEB_PACKAGES = ("openai_api",)
DOMAINS = (
    "auth",
    "bots",
    "conversations",
    "documents",
    "faqs",
    "analytics",
    "privacy",
    "webhooks",
    "moderation",
    "jobs",
)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _package_files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def _is_web(path: Path) -> bool:
    return path.name in WEB_MODULES or path.name.endswith("_router.py")


def test_domain_logic_imports_no_web_code() -> None:
    offenders = []
    for package in DOMAINS:
        for path in _package_files(package):
            if _is_web(path):
                continue
            bad = sorted(m for m in _imports(path) if m.startswith(WEB))
            if bad:
                offenders.append(f"{path.relative_to(SRC)}: {bad}")
    assert offenders == []


def test_libraries_import_no_web_and_no_domain_code() -> None:
    """llm/ and retrieval/ are libraries the services call: they know neither."""
    forbidden = WEB + tuple(f"botgpt.{d}" for d in (*DOMAINS, *WEB_PACKAGES))
    offenders = [
        f"{path.relative_to(SRC)}: {sorted(m for m in _imports(path) if m.startswith(forbidden))}"
        for package in ("llm", "retrieval")
        for path in _package_files(package)
        if any(m.startswith(forbidden) for m in _imports(path))
    ]
    assert offenders == []


def test_documents_know_nothing_of_conversations_or_accounts() -> None:
    forbidden = ("botgpt.conversations", "botgpt.auth", "botgpt.bots")
    offenders = [
        str(path.relative_to(SRC))
        for path in _package_files("documents")
        if any(m.startswith(forbidden) for m in _imports(path))
    ]
    assert offenders == []


def test_the_turn_pipeline_does_not_reach_for_routes() -> None:
    """The turn's modules never import a router (routes call the turn, not the reverse)."""
    turn_modules = [
        SRC / "conversations" / f"{name}.py"
        for name in (
            "turn",
            "admission",
            "preparation",
            "generation",
            "followups",
            "records",
            "profile",
        )
    ]
    offenders = [str(p.name) for p in turn_modules if any("router" in m for m in _imports(p))]
    assert offenders == []
