"""A small stand-in for the Hugging Face Hub: what huggingface_hub needs to find and fetch files.

Speaks the endpoints the installed huggingface_hub calls (point ``HF_ENDPOINT`` or
``endpoint=`` at :attr:`FakeHub.url`):

* ``HEAD``/``GET /{repo}/resolve/{revision}/{filename}`` with ``ETag``, ``X-Repo-Commit``,
  ``X-Linked-Etag``/``X-Linked-Size`` (LFS files), ``Content-Length`` and ``Range`` (206);
  errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound) as the hub does;
* ``GET /api/models/{repo}[/revision/{revision}]`` (model info with ``cardData``);
* ``POST /api/models/{repo}/paths-info/{revision}`` (``lfs.oid`` is the sha256).

Faults, to test what a real network does: :meth:`FakeHub.drop_once` closes the connection
half-way through the next full GET of a file; ``add(..., served=...)`` serves other bytes than
the ones whose sha256 and size are advertised.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_MODEL = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_PATHS = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class HubFile:
    data: bytes  # what the hub advertises (size, sha256)
    lfs: bool = True
    served: bytes | None = None  # what GET sends instead, when set
    hash_in_head: bool = True  # False: HEAD sends only the pointer's git sha1 (paths-info has it)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_sha1(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs and self.hash_in_head else self.git_sha1


@dataclass
class HubRepo:
    commit: str
    files: dict[str, HubFile] = field(default_factory=dict)
    card: dict[str, Any] | None = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 with an in-memory set of repositories."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[Request] = []
        self._drops: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(
        self,
        repo: str,
        filename: str,
        data: bytes,
        *,
        lfs: bool = True,
        served: bytes | None = None,
        card: dict[str, Any] | None = None,
    ) -> HubFile:
        commit = hashlib.sha1(repo.encode()).hexdigest()
        entry = self.repos.setdefault(repo, HubRepo(commit))
        if card is not None:
            entry.card = card
        entry.files[filename] = HubFile(data, lfs, served)
        return entry.files[filename]

    def drop_once(self, repo: str, filename: str) -> None:
        """The next GET of the whole file sends half of it, then closes the connection."""
        self._drops.add((repo, filename))

    def take_drop(self, repo: str, filename: str) -> bool:
        with self._lock:
            if (repo, filename) in self._drops:
                self._drops.discard((repo, filename))
                return True
            return False

    def log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def gets(self, filename: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + filename)]

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        # ---------------------------------------------------------- routing

        def _dispatch(self, method: str) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.log(Request(method, path, self.headers.get("Range")))
            if method in ("HEAD", "GET") and (m := _RESOLVE.match(path)):
                self._resolve(method, m["repo"], m["rev"], m["file"])
            elif method == "GET" and (m := _MODEL.match(path)):
                self._model_info(m["repo"], m["rev"])
            elif method == "POST" and (m := _PATHS.match(path)):
                self._paths_info(m["repo"], m["rev"])
            else:
                self._error(404, "RepoNotFound", "no such endpoint")

        def _repo(self, name: str, rev: str | None) -> HubRepo | None:
            repo = hub.repos.get(name)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}")
                return None
            if rev not in (None, "main", repo.commit):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", repo.commit)
                return None
            return repo

        # ---------------------------------------------------------- endpoints

        def _resolve(self, method: str, name: str, rev: str, filename: str) -> None:
            repo = self._repo(name, rev)
            if repo is None:
                return
            entry = repo.files.get(filename)
            if entry is None:
                self._error(404, "EntryNotFound", f"{filename} does not exist", repo.commit)
                return
            body = entry.served if entry.served is not None else entry.data
            start, end = 0, len(body) - 1
            status = 200
            wanted = self.headers.get("Range")
            if wanted and (m := _RANGE.match(wanted)):
                start = int(m[1])
                end = int(m[2]) if m[2] else len(body) - 1
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{entry.etag}"')
            if entry.lfs and entry.hash_in_head:
                self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
                self.send_header("X-Linked-Size", str(len(entry.data)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if method == "HEAD":
                return
            chunk = body[start : end + 1]
            if start == 0 and hub.take_drop(name, filename):
                self.wfile.write(chunk[: len(chunk) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the peer sees the body end early
                return
            self.wfile.write(chunk)

        def _model_info(self, name: str, rev: str | None) -> None:
            repo = self._repo(name, rev)
            if repo is None:
                return
            self._json(
                {
                    "_id": repo.commit[:24],
                    "id": name,
                    "modelId": name,
                    "sha": repo.commit,
                    "private": False,
                    "tags": list((repo.card or {}).get("tags", [])),
                    "cardData": repo.card,
                    "siblings": [{"rfilename": f} for f in repo.files],
                }
            )

        def _paths_info(self, name: str, rev: str) -> None:
            repo = self._repo(name, rev)
            if repo is None:
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            infos = []
            for path in form.get("paths", []):
                entry = repo.files.get(path)
                if entry is None:
                    continue
                info: dict[str, Any] = {
                    "type": "file",
                    "path": path,
                    "size": len(entry.data),
                    "oid": entry.git_sha1,
                }
                if entry.lfs:
                    info["lfs"] = {"oid": entry.sha256, "size": len(entry.data), "pointerSize": 134}
                infos.append(info)
            self._json(infos)

        # ---------------------------------------------------------- responses

        def _json(self, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


def tiny_gguf(
    path: Any,
    *,
    context_length: int = 2048,
    license: str | None = "apache-2.0",
    n_tokens: int = 300,
    weight_values: int = 1 << 18,
) -> bytes:
    """Write a small but valid GGUF (llama header, a tokenizer, one f32 tensor); return its bytes.

    The default is about 1 MB: big enough for a download to be cut half-way, quick to hash.
    """
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("Tiny Test Model")
    writer.add_context_length(context_length)
    writer.add_block_count(2)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(0)  # ALL_F32
    if license is not None:
        writer.add_license(license)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(n_tokens)])
    rng = np.random.default_rng(7)
    writer.add_tensor("token_embd.weight", rng.random(weight_values, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(path, "rb") as fh:
        return fh.read()
