"""pytest-llmbench: local LLM inference benchmarks (llama.cpp's llama-server) as pytest tests."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pytest-llmbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
