"""`botgpt ingest` and `botgpt eval retrieval` on a throwaway SQLite data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botgpt.cli import main
from tests.documents import samples
from tests.documents.conftest import write_beir


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BOTGPT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BOTGPT_DATABASE_URL", "")
    monkeypatch.setenv("BOTGPT_ENVIRONMENT", "test")
    monkeypatch.chdir(tmp_path)  # no stray .env
    return tmp_path / "data"


def test_ingest_folder_reports_each_file(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "volcano.md").write_bytes(samples.MARKDOWN)
    (folder / "shore.pdf").write_bytes(samples.make_pdf(["Tide pools.", "Crabs."]))
    (folder / "ignored.png").write_bytes(samples.PNG)  # not a supported name: skipped
    with pytest.raises(SystemExit) as ok:
        main(["ingest", str(folder)])
    assert ok.value.code == 0
    out = capsys.readouterr().out
    assert "volcano.md" in out and "shore.pdf" in out and "ignored.png" not in out
    assert "2 chunks" in out or "chunks" in out
    # Again: duplicates; and a named unsupported file fails the command.
    with pytest.raises(SystemExit) as again:
        main(["ingest", str(folder / "volcano.md"), str(folder / "ignored.png")])
    assert again.value.code == 1
    out = capsys.readouterr().out
    assert "already uploaded" in out and "not supported" in out
    with pytest.raises(SystemExit) as unknown:
        main(["ingest", str(folder), "--user", "nobody@example.com"])
    assert unknown.value.code == 2


def test_eval_retrieval_prints_metrics(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = [("q1", "what causes ocean tides"), ("q2", "how does lava form")]
    beir = write_beir(tmp_path / "beir", queries, {"q1": "d2", "q2": "d1"})
    main(["eval", "retrieval", "--dataset", str(beir), "--mode", "hybrid"])
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["queries"] == 2 and report["documents"] == 3
    assert report["ndcg_at_10"] == 1.0 and report["recall_at_100"] == 1.0
    assert lines[-2].startswith("nDCG@10 1.0000")
