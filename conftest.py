"""Repository-level pytest settings only; the plugin itself is installed via its entry point."""

pytest_plugins = ["pytester"]
