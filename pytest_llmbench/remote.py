"""Benchmarking a llama-server someone else started (``--llm-server-url``): a GPU box, a shared CI server.

Nothing is started or stopped; the model's identity comes from the server's ``/props`` and
``/v1/models``, and load-time metrics are marked as not measured.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from pytest_llmbench.config import Catalog, ConfigError, Model
from pytest_llmbench.matrix import Cell
from pytest_llmbench.server import ServerError, get_json


class ExternalServer:
    """Quacks like :class:`~pytest_llmbench.server.LlamaServer`, minus the process it does not own."""

    external = True
    pid = None
    load_seconds = None

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.command: list[str] = []

    def start(self) -> None:
        health = get_json(self.url, "/health")
        if health.get("status") != "ok":
            raise ServerError(f"{self.url}/health says {health}")

    def stop(self, grace: float = 0.0) -> None:
        """Never stops a server it did not start."""

    def is_running(self) -> bool:
        try:
            return get_json(self.url, "/health", timeout=5).get("status") == "ok"
        except (ServerError, OSError, ValueError):
            return False

    def rss_bytes(self) -> None:
        return None  # another machine's process

    def get_json(self, path: str, timeout: float = 10.0) -> Any:
        return get_json(self.url, path, timeout, self.api_key)


def identify(url: str, api_key: str | None = None) -> dict[str, Any]:
    """What the server says it serves: model path, quantization, size, parameters, context."""
    if not re.match(r"^http://[^/\s]+(:\d+)?/?$", url):
        raise ConfigError("--llm-server-url", "url", url, "expected http://HOST:PORT")
    try:
        props = get_json(url, "/props", api_key=api_key)
        models = get_json(url, "/v1/models", api_key=api_key)
    except (ServerError, OSError, ValueError) as exc:
        why = f"no llama-server answers there ({exc})"
        if "HTTP 401" in str(exc):
            why = "the server refused the API key" if api_key else "the server wants an API key"
            why += ": pass its key with --llm-api-key or LLMBENCH_API_KEY"
        raise ConfigError("--llm-server-url", "url", url, why) from None
    data = (models.get("data") or [{}])[0]
    meta = data.get("meta") or {}
    path = props.get("model_path") or data.get("id") or "unknown"
    slots = props.get("total_slots")
    n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or meta.get("n_ctx")
    return {
        "url": url.rstrip("/"),
        "model_path": path,
        "filename": PurePath(path).name,
        "quant": props.get("model_ftype") or meta.get("ftype") or "unknown",
        "n_params": meta.get("n_params"),
        "size_bytes": meta.get("size"),
        "n_ctx": n_ctx,  # per slot: what one request can use
        "slots": slots,
        "ctx_size": n_ctx * slots if isinstance(n_ctx, int) and isinstance(slots, int) else None,
        "n_ctx_train": meta.get("n_ctx_train"),
        "build": props.get("build_info"),
    }


def server_facts(identity: dict[str, Any]) -> dict[str, Any]:
    """The report's ``llama_server`` for a remote run: what the measured server said of itself,
    not the local binary (which this run never used)."""
    return {
        "url": identity["url"],
        "version": identity.get("build") or "unknown",
        "model_path": identity["model_path"],
        "n_ctx": identity.get("n_ctx"),
        "slots": identity.get("slots"),
    }


def external_cell(identity: dict[str, Any], catalog: Catalog | None) -> Cell:
    """The catalog's cell when its filename matches the served file, else a cell named after it."""
    for model in catalog.models if catalog else ():
        for quant, filename in model.files.items():
            if filename == identity["filename"]:
                return Cell(model, quant)
    stem = PurePath(identity["filename"]).stem
    model_id = re.sub(r"[^A-Za-z0-9._]+", "-", stem).strip("-").lower() or "external"
    quant = identity["quant"] if identity["quant"] != "unknown" else "F16"
    params = identity.get("n_params") or 0
    model = Model(
        id=model_id,
        name=stem,
        size="external",
        params_b=round(params / 1e9, 3),
        files={quant: identity["filename"]},
    )
    return Cell(model, quant)
