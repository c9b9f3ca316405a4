"""The child process that parses one document (``python -m botgpt.documents.parse_worker``).

It reads a JSON header line (file name, limits, memory ceiling) and then the document's bytes
from stdin, caps its own address space, parses, and writes one JSON object to stdout:
``{"ok": {...}}`` or ``{"error": {"code": ..., "message": ...}}``. Anything else (a crash, a
kill) is judged by the parent from the exit status.
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict
from typing import Any

from botgpt.documents.errors import ParseError
from botgpt.documents.limits import ParseLimits
from botgpt.documents.parsing import ParsedDocument, parse_document

OUT_OF_MEMORY = "parse_out_of_memory"
NEAR_CAP = 0.75


def encode(doc: ParsedDocument) -> dict[str, Any]:
    """A parsed document as JSON-able data (the parent rebuilds it with `decode`)."""
    return {
        "pages": [[p.number, p.text, p.start_offset] for p in doc.pages],
        "detected_type": doc.detected_type,
        "title": doc.title,
        "headings": [[h.level, h.text, h.start, h.end] for h in doc.headings],
    }


def _cap_memory(megabytes: int) -> int:
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def _peak_address_space() -> int:
    """This process's peak virtual memory in bytes (what RLIMIT_AS caps); 0 if unknown."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def main() -> int:
    """Parse the document on stdin; the answer goes to stdout as one JSON object."""
    header = json.loads(sys.stdin.buffer.readline())
    data = sys.stdin.buffer.read()
    cap = _cap_memory(int(header["memory_mb"]))
    limits = ParseLimits(**header["limits"])
    try:
        answer: dict[str, Any] = {"ok": encode(parse_document(data, header["filename"], limits))}
    except ParseError as exc:
        answer = {"error": {"code": exc.code, "message": exc.message}}
        if exc.code == "corrupt_file" and _peak_address_space() >= NEAR_CAP * cap:
            # lxml reports a failed allocation as an "unknown" syntax error: judged by how
            # close this process came to its memory cap, it ran out of memory.
            answer = {"error": {"code": OUT_OF_MEMORY, "message": ""}}
    except MemoryError:
        answer = {"error": {"code": OUT_OF_MEMORY, "message": ""}}
    del data
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


def header_for(filename: str, limits: ParseLimits, memory_mb: int) -> bytes:
    """The first line the parent writes to the child's stdin."""
    payload = {"filename": filename, "limits": asdict(limits), "memory_mb": memory_mb}
    return json.dumps(payload).encode() + b"\n"


if __name__ == "__main__":
    sys.exit(main())
