"""The deployment files name only settings and metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from botgpt.config import Settings
from botgpt.observability import metrics

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {f"BOTGPT_{name.upper()}" for name in Settings.model_fields}


def _exposed_metric_names() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def test_env_example_sets_only_real_settings() -> None:
    names = set(re.findall(r"^#? ?(BOTGPT_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert "BOTGPT_JWT_SECRET" in names
    compose_only = {"BOTGPT_IMAGE", "BOTGPT_PUBLISH_PORT"}
    assert names - compose_only <= SETTINGS, names - compose_only - SETTINGS


def test_k8s_and_compose_environment_are_real_settings() -> None:
    found: set[str] = set()
    for path in [ROOT / "docker-compose.yml", ROOT / "docker-compose.dev.yml"]:
        found.update(re.findall(r"^\s+(BOTGPT_[A-Z0-9_]+):", path.read_text(), re.M))
    for path in (ROOT / "deploy" / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] in ("ConfigMap", "Secret"):
                found.update(doc.get("data", {}) | doc.get("stringData", {}))
    assert found, "no settings found"
    assert found <= SETTINGS, found - SETTINGS


def test_grafana_dashboard_queries_existing_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "botgpt-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:botgpt|process)_[a-z_]+)\b", e)}
    assert len(used) >= 10
    assert used <= _exposed_metric_names(), used - _exposed_metric_names()
