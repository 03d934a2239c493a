"""The FastAPI application: OpenAI-compatible routes over one EngineLoop.

    app = create_app(engine, tok, ServeSettings(model_name="demo"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Every POST goes through the same steps, each able to stop it with an OpenAI-shaped error:
key (401) -> rate limit (429) -> body size (413) -> JSON + fields (400) -> model name (404)
-> prompt + max_tokens vs the context (400 context_length_exceeded) -> queue (503) -> generate,
with a deadline (504, or an error event once a stream has started).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import sse
from .access import KeyCheck, RateLimiter
from .engine_loop import EngineLoop
from .errors import APIError, invalid
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .prompts import chat_prompt, completion_prompt
from .protocol import parse_chat, parse_completion, parse_json_body

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/")


@dataclass
class ServeSettings:
    model_name: str = "scratchgpt"
    api_keys: list = field(default_factory=list)
    rate_limit: float = 0.0          # requests per minute per key (per client address without keys); 0 = off
    rate_burst: int | None = None
    max_body_bytes: int = 1 << 20
    max_queue: int = 64              # requests waiting for a slot beyond the running batch
    request_timeout: float = 600.0   # seconds from accepted body to last byte


def load_page() -> str:
    return resources.files("scratchgpt.serve").joinpath("static/index.html").read_text(encoding="utf-8")


class _StatusRecorder:
    """Pure ASGI middleware counting answers by endpoint and status (works with streaming)."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else ("/v1/models" if path.startswith("/v1/models/") else "other")

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(endpoint, str(message["status"])).inc()
            await send(message)
        await self.app(scope, receive, send_wrapper)


def create_app(engine, tok, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    metrics = ServerMetrics()
    loop_ = EngineLoop(engine, max_queue=settings.max_queue, on_change=metrics.set_load)
    keys = KeyCheck(settings.api_keys)
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
    block_size = engine.block_size
    vocab_size = tok.vocab_size
    page = load_page()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        loop_.start()
        try:
            yield
        finally:
            loop_.shutdown()

    app = FastAPI(title="scratchgpt", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine_loop, app.state.metrics, app.state.settings = loop_, metrics, settings
    app.add_middleware(_StatusRecorder, metrics=metrics)

    @app.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e):
        msg = {404: f"Unknown URL: {request.method} {request.url.path}",
               405: f"Method {request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        err = APIError(e.status_code, msg, code="unknown_url" if e.status_code == 404 else None)
        return JSONResponse(err.body(), status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, e):
        return JSONResponse(invalid(f"invalid request: {e.errors()[:1]}").body(), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request, e):
        err = APIError(500, f"internal error: {type(e).__name__}", type="server_error")
        return JSONResponse(err.body(), status_code=500)

    # ---- helpers -------------------------------------------------------------------------
    def identity(request: Request) -> str:
        who = keys.check(request.headers.get("authorization"))
        return who or (request.client.host if request.client else "?")

    async def read_body(request: Request) -> dict:
        limit = settings.max_body_bytes
        too_big = APIError(413, f"Request body is larger than the server's limit of {limit} bytes",
                           code="request_too_large")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_big
        buf = bytearray()
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise too_big
        return parse_json_body(bytes(buf))

    def check_model(name: str) -> None:
        if name != settings.model_name:
            raise APIError(404, f"The model '{name}' does not exist; this server serves "
                                f"'{settings.model_name}'", param="model", code="model_not_found")

    def check_context(n_prompt: int, max_tokens: int | None, where: str) -> int:
        if max_tokens is None:
            max_tokens = block_size - n_prompt
            if max_tokens >= 1:
                return max_tokens
            max_tokens = 1
        if n_prompt + max_tokens > block_size:
            raise APIError(400, f"This model's maximum context length is {block_size} tokens. However, you "
                                f"requested {n_prompt + max_tokens} tokens ({n_prompt} in the {where}, "
                                f"{max_tokens} in the completion). Please reduce the length of the {where} "
                                "or the completion.", param="messages" if where == "messages" else "prompt",
                           code="context_length_exceeded")
        return max_tokens

    def sampling_params(s, max_tokens: int, stop: tuple):
        from ..infer import SamplingParams
        return SamplingParams(max_new_tokens=max_tokens, temperature=s.temperature, top_k=s.top_k,
                              top_p=s.top_p, min_p=s.min_p, repetition_penalty=s.repetition_penalty,
                              frequency_penalty=s.frequency_penalty, presence_penalty=s.presence_penalty,
                              seed=s.seed, stop=tuple(stop), ignore_eos=s.ignore_eos)

    async def output_batches(h, deadline: float, request: Request | None = None):
        """The request's StepOutputs until finished, in lists of whatever has arrived (one write
        per list when the client side is behind); APIError on timeout or engine failure.

        No task per token: the deadline and a hang-up (non-streaming requests; a streaming
        response notices it on its own) put a marker into the same queue the engine writes to."""
        aloop = asyncio.get_running_loop()
        timer = aloop.call_at(deadline, h.queue.put_nowait, _TIMED_OUT)
        watcher = asyncio.ensure_future(_mark_disconnect(request, h.queue)) if request is not None else None
        try:
            while True:
                batch = [await h.queue.get()]
                while not h.queue.empty():
                    batch.append(h.queue.get_nowait())
                outs = []
                for item in batch:
                    if item is _TIMED_OUT:
                        loop_.cancel(h)
                        raise APIError(504, f"Request timed out after {settings.request_timeout:g} s",
                                       code="timeout")
                    if item is _GONE:
                        loop_.cancel(h)
                        raise asyncio.CancelledError()
                    if isinstance(item, APIError):
                        raise item
                    outs.append(item)
                    if item.finished:
                        yield outs
                        return
                yield outs
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()

    async def generate(request: Request, prompt_ids: list[int], params, chat: bool, stream: bool,
                       include_usage: bool):
        t0 = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + settings.request_timeout
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        maker = sse.ChunkMaker(rid, int(time.time()), settings.model_name, chat, include_usage)
        h = loop_.submit(prompt_ids, params, rid)
        metrics.prompt_tokens.inc(len(prompt_ids))

        def observe(out, last):
            now = time.perf_counter()
            (metrics.ttft if last is None else metrics.itl).observe(now - (t0 if last is None else last))
            metrics.generation_tokens.inc()
            return now

        if not stream:
            pieces, last, out = [], None, None
            try:
                async for outs in output_batches(h, deadline, request):
                    for out in outs:
                        last = observe(out, last)
                        pieces.append(out.text)
            finally:
                loop_.cancel(h)          # no-op when finished; frees the slot after a disconnect
            metrics.e2e.observe(time.perf_counter() - t0)
            reason = "length" if out.finish_reason == "length" else "stop"
            return JSONResponse(maker.full("".join(pieces), reason, out.prompt_tokens, out.completion_tokens))

        async def events():
            last, out = None, None
            try:
                if chat:
                    yield sse.event(maker.chunk("", role=True))
                async for outs in output_batches(h, deadline):
                    for out in outs:
                        last = observe(out, last)
                    # tokens that arrived together (this side is behind) go out in one write,
                    # one event per token; the last ones ride along with the closing chunks
                    data = b"".join(maker.content_event(o.text) for o in outs if o.text)
                    if data and not out.finished:
                        yield data
                reason = "length" if out.finish_reason == "length" else "stop"
                data += sse.event(maker.chunk(None if chat else "", finish_reason=reason))
                if include_usage:
                    data += sse.event(maker.usage_chunk(out.prompt_tokens, out.completion_tokens))
                metrics.e2e.observe(time.perf_counter() - t0)
                yield data + sse.DONE
                return
            except APIError as e:
                yield sse.event(e.body())
            finally:
                loop_.cancel(h)          # client gone (CancelledError here) or done: free the slot
            yield sse.DONE

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ---- routes --------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    @app.get("/health")
    async def health():
        running, waiting = loop_.counts()
        return {"status": "ok", "model": settings.model_name, "running": running, "waiting": waiting,
                "auth_required": keys.required, "context_length": block_size}

    @app.get("/metrics")
    async def metrics_route():
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def model_card() -> dict:
        return {"id": settings.model_name, "object": "model", "created": 0, "owned_by": "scratchgpt",
                "context_length": block_size}

    @app.get("/v1/models")
    async def list_models(request: Request):
        identity(request)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str, request: Request):
        identity(request)
        check_model(name)
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        limiter.acquire(identity(request))
        req = parse_chat(await read_body(request))
        check_model(req.model)
        ids, extra_stop = chat_prompt(tok, req.messages)
        max_tokens = check_context(len(ids), req.sampling.max_tokens, "messages")
        params = sampling_params(req.sampling, max_tokens, req.sampling.stop + extra_stop)
        return await generate(request, ids, params, True, req.stream, req.include_usage)

    @app.post("/v1/completions")
    async def completions(request: Request):
        limiter.acquire(identity(request))
        req = parse_completion(await read_body(request))
        check_model(req.model)
        ids = completion_prompt(tok, req.prompt, vocab_size)
        max_tokens = check_context(len(ids), req.sampling.max_tokens, "prompt")
        params = sampling_params(req.sampling, max_tokens, req.sampling.stop)
        return await generate(request, ids, params, False, req.stream, req.include_usage)

    return app


_TIMED_OUT = object()       # queue markers: the request's deadline passed / its client hung up
_GONE = object()


async def _mark_disconnect(request: Request, queue: asyncio.Queue) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            queue.put_nowait(_GONE)
            return
