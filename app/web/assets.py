"""Assets served from installed packages rather than copied into static/."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter
from fastapi.responses import FileResponse

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
router = APIRouter()


@router.get("/vendor/plotly.min.js", name="plotly_js")
def plotly_js() -> FileResponse:
    # Served from the installed plotly package, so the repository carries no 4 MB copy and no CDN is needed.
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})
