"""Streaming requests to llama-server, timed on the client.

Definitions (other tools use the same words for different things; these are ours):

* **TTFT** (time to first token): from just before the request is written to the socket to the
  arrival of the first streamed chunk whose content is non-empty.  A chunk that carries only the
  assistant role does not count.  The server's own ``timings.prompt_ms`` is kept beside it.
* **Token arrival times**: the arrival offset of every chunk with content.
* **ITL** (inter-token latency): each gap between consecutive content chunks.
* **End-to-end** (``e2e_s``): from sending to the end of the stream (the final chunk).
* **TPOT** (time per output token): ``(e2e − TTFT) / (output_tokens − 1)``; the decode speed in
  tokens/s is ``1 / TPOT``.  Output tokens are the server's count (``timings.predicted_n``,
  ``usage.completion_tokens``), never the number of chunks, since a chunk may hold several tokens.
* Measured requests send ``cache_prompt: false`` where a prompt cache would flatter the number,
  a fixed ``seed``, and ``ignore_eos`` when a fixed output length is measured.
"""

from __future__ import annotations

import http.client
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_llmbench.errors import LlmbenchError


class RequestFailed(LlmbenchError):
    """The server answered with an error, or the stream broke off before it finished."""


@dataclass(frozen=True)
class RequestResult:
    """One streamed request, timed on the client, with the server's own timings beside it."""

    text: str
    prompt_tokens: int
    output_tokens: int
    ttft_s: float
    e2e_s: float
    token_times_s: tuple[float, ...]
    server_timings: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first (None with fewer than two tokens)."""
        if self.output_tokens < 2 or self.e2e_s <= self.ttft_s:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    @property
    def decode_tps(self) -> float | None:
        tpot = self.tpot_s
        return None if tpot is None else 1.0 / tpot

    @property
    def itl_s(self) -> tuple[float, ...]:
        times = self.token_times_s
        return tuple(b - a for a, b in itertools.pairwise(times))

    @property
    def server_decode_tps(self) -> float | None:
        return self.server_timings.get("predicted_per_second")

    @property
    def server_prompt_ms(self) -> float | None:
        return self.server_timings.get("prompt_ms")


def json_headers(api_key: str | None = None) -> dict[str, str]:
    """Request headers; with a key, the bearer token llama-server's ``--api-key`` asks for."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class LlamaClient:
    """A small client for one llama-server (stdlib ``http.client``: little overhead per chunk)."""

    def __init__(self, url: str, timeout: float = 600.0, api_key: str | None = None) -> None:
        hostport = url.removeprefix("http://").rstrip("/")
        host, _, port = hostport.partition(":")
        self.host, self.port, self.timeout = host, int(port or 80), timeout
        self.headers = json_headers(api_key)

    # -------------------------------------------------------------- plain JSON calls

    def post_json(self, path: str, payload: dict[str, Any]) -> Any:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("POST", path, body=json.dumps(payload), headers=self.headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RequestFailed(f"POST {path} failed: {exc}") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise RequestFailed(f"POST {path} returned HTTP {resp.status}: {_error_text(body)}")
        return json.loads(body)

    def tokenize(self, text: str) -> list[int]:
        """Token ids as the server's tokenizer sees ``text`` (the count we trust)."""
        return self.post_json("/tokenize", {"content": text, "add_special": False})["tokens"]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    # -------------------------------------------------------------- streaming

    def complete(
        self,
        prompt: str,
        n_predict: int,
        *,
        seed: int = 42,
        temperature: float = 0.0,
        cache_prompt: bool = False,
        ignore_eos: bool = False,
        **extra: Any,
    ) -> RequestResult:
        """Raw completion (``/completion``): the prompt is used as written, no chat template."""
        payload = {
            "prompt": prompt,
            "n_predict": n_predict,
            "stream": True,
            "seed": seed,
            "temperature": temperature,
            "cache_prompt": cache_prompt,
            "ignore_eos": ignore_eos,
            **extra,
        }
        return self._stream("/completion", payload, _completion_chunk)

    def chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        *,
        seed: int = 42,
        temperature: float = 0.0,
        cache_prompt: bool = False,
        **extra: Any,
    ) -> RequestResult:
        """Chat completion (``/v1/chat/completions``): the server applies the model's template."""
        payload = {
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "seed": seed,
            "temperature": temperature,
            "cache_prompt": cache_prompt,
            **extra,
        }
        return self._stream("/v1/chat/completions", payload, _chat_chunk)

    def _stream(self, path: str, payload: dict[str, Any], parse: Any) -> RequestResult:
        body = json.dumps(payload).encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        pieces: list[str] = []
        times: list[float] = []
        final: dict[str, Any] = {}
        stop_reason = None
        try:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=self.headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise RequestFailed(
                    f"POST {path} returned HTTP {resp.status}: {_error_text(resp.read())}"
                )
            finished = False
            for event in _sse_events(resp):
                now = time.perf_counter() - t0
                if event == "[DONE]":
                    finished = True
                    break
                chunk = json.loads(event)
                if "error" in chunk:
                    raise RequestFailed(
                        f"server error during {path}: {_error_text(json.dumps(chunk))}"
                    )
                content, done, reason = parse(chunk)
                if content:
                    pieces.append(content)
                    times.append(now)
                if reason:
                    stop_reason = reason
                if "timings" in chunk or "usage" in chunk:
                    final.update(chunk)
                if done and path == "/completion":
                    finished = True
                    break
            end = time.perf_counter() - t0
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise RequestFailed(f"stream from {path} broke off: {exc}") from None
        finally:
            conn.close()
        if not finished:
            raise RequestFailed(
                f"stream from {path} ended before the server finished ({len(times)} chunks received)"
            )
        timings = final.get("timings", {})
        usage = final.get("usage", {})
        output_tokens = timings.get(
            "predicted_n", usage.get("completion_tokens", final.get("tokens_predicted", 0))
        )
        prompt_tokens = timings.get(
            "prompt_n", usage.get("prompt_tokens", final.get("tokens_evaluated", 0))
        )
        return RequestResult(
            text="".join(pieces),
            prompt_tokens=int(prompt_tokens),
            output_tokens=int(output_tokens),
            ttft_s=times[0] if times else end,
            e2e_s=end,
            token_times_s=tuple(times),
            server_timings=timings,
            stop_reason=stop_reason,
        )


def _completion_chunk(chunk: dict[str, Any]) -> tuple[str, bool, str | None]:
    done = bool(chunk.get("stop"))
    return chunk.get("content") or "", done, chunk.get("stop_type") if done else None


def _chat_chunk(chunk: dict[str, Any]) -> tuple[str, bool, str | None]:
    choices = chunk.get("choices") or []
    if not choices:
        return "", False, None
    choice = choices[0]
    delta = choice.get("delta") or {}
    return delta.get("content") or "", False, choice.get("finish_reason")


def _sse_events(resp: http.client.HTTPResponse) -> Iterator[str]:
    """Yield the ``data:`` payloads of a server-sent-events stream as they arrive."""
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.strip()
        if line.startswith(b"data:"):
            yield line[5:].strip().decode("utf-8")
        elif line.startswith(b"error:"):
            raise RequestFailed(f"server error: {line[6:].strip().decode('utf-8', 'replace')}")


def _error_text(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message", err))
        return str(err)
    except (json.JSONDecodeError, AttributeError):
        return text[:300]
