"""The reference web front end: the guide's screens, server-rendered, in Japanese.

``/site/…`` is the monitoring site (管理・登録サイト, pages 4–8), ``/points/…`` the
スマイルeポイント 登録受付サイト (pages 9–16), ``/dev/mail`` the development inbox. They
drive the workflows through ``api.services`` (never through our own HTTP API).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.web import dev, holder, monitoring, points
from api.web.pages import STATIC


def install(app: FastAPI) -> None:
    app.include_router(monitoring.router)
    app.include_router(points.router)
    app.include_router(holder.router)
    app.include_router(dev.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/site/login", status_code=303)
