"""moto's request dispatcher for a server that only serves S3: the service found once.

moto's server (``DomainDispatcherApplication``) works out the service of every request anew:
it reads the signature's scope or the path, then looks the host up in a directory listing of
moto's ~200 modules (an ``isdir`` each) and in its URL patterns. On the emulator's data plane
that was half the CPU of a small GET (py-spy, 2,000 10 KB GETs), for every client alike. The
data plane serves S3 alone, so this dispatcher hands every request to moto's S3 app, made with it;
moto's own paths (``/moto-api``) and S3 Control's still go the long way.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

LONG_WAY = ("/moto-api", "/latest/", "/v20180820/", "/favicon.ico")
"""Paths moto routes elsewhere than S3 (its own API, instance metadata, S3 Control)."""


class S3OnlyDispatcher(DomainDispatcherApplication):
    """Every request to moto's S3 app, except the paths in ``LONG_WAY``."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._s3 = self.app_instances["s3"] = create_backend_app("s3")

    def get_application(self, environ: dict[str, Any]) -> Flask:
        if environ.get("PATH_INFO", "").startswith(LONG_WAY):
            return super().get_application(environ)
        return self._s3
