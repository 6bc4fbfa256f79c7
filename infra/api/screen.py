"""The operations-centre screen: one static page (`web/index.html`), the ECharts build it uses
(pinned in `web/package.json`, installed by `make demo` / `make test` with npm, never a CDN), and the
registry's grid polygons for its map. No citizens' data: the page reads the figures routes
(infra/api/figures.py). `queue.html` is the operators' page: it sends an operator key with every call;
`unit.html` a department's workbench (a department key); `status.html` a reporter's lookup (no key:
the ticket number and the caller's phone). `words.js` holds what the pages share."""

from __future__ import annotations

from pathlib import Path as FilePath

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse

from infra.api.auth import public_client
from infra.api.problems import PROBLEM, Problem

WEB = FilePath(__file__).with_name("web")
ECHARTS = WEB / "node_modules" / "echarts" / "dist" / "echarts.min.js"


def screen_router(grids_file: FilePath) -> APIRouter:
    router = APIRouter(prefix="/screen", tags=["screen"], responses={404: PROBLEM, 429: PROBLEM},
                       dependencies=[Depends(public_client)])

    @router.get("/", response_class=FileResponse)
    async def page() -> FileResponse:
        """The wall screen: figures, the grid map, the SLA board; refreshed every 3 s."""
        return FileResponse(WEB / "index.html", media_type="text/html")

    @router.get("/queue", response_class=FileResponse)
    async def queue_page() -> FileResponse:
        """The operator queue: paged, filtered, with the rulings (dispatch under an item, close); an
        operator key, kept in the browser tab only."""
        return FileResponse(WEB / "queue.html", media_type="text/html")

    @router.get("/unit", response_class=FileResponse)
    async def unit_page() -> FileResponse:
        """A department's workbench: its tasks, most urgent first, and the actions open to each (接单, 退单,
        延期, 办结, 挂账, 恢复); a `department:<unit>` key, kept in the browser tab only."""
        return FileResponse(WEB / "unit.html", media_type="text/html")

    @router.get("/status", response_class=FileResponse)
    async def status_page() -> FileResponse:
        """A reporter's lookup: the ticket number and the phone the call came from → its progress in plain
        words (no report text, no personal data), and the score of a closed ticket's result."""
        return FileResponse(WEB / "status.html", media_type="text/html")

    @router.get("/echarts.min.js", response_class=FileResponse)
    async def echarts() -> FileResponse:
        if not ECHARTS.exists():
            raise Problem(404, "Not Found", f"ECharts is not installed in {WEB}: run `npm ci` there "
                          "(`make demo` and `make test` do)")
        return FileResponse(ECHARTS, media_type="text/javascript")

    @router.get("/{page}.js", response_class=FileResponse)
    async def script(page: str = Path(pattern="^(screen|queue|unit|status|words)$")) -> FileResponse:
        """Each page's own script, served apart so that the pages' CSP allows scripts from here only."""
        return FileResponse(WEB / f"{page}.js", media_type="text/javascript")

    @router.get("/grids.geojson", response_class=FileResponse)
    async def grids() -> FileResponse:
        return FileResponse(grids_file, media_type="application/geo+json")

    return router
