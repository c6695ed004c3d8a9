"""The OpenAPI document of the HTTP API, as committed in ``openapi/openapi.json``.

Written by ``digital-id openapi export`` after a route changes (``python -m digital_id.openapi``
does the same); a test fails while the committed document differs from the application's, and
the fuzz test (tests/web/test_fuzz.py) drives the running server from the committed file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from digital_id.app import create_app
from digital_id.config import load_settings

DOCUMENT_PATH = Path("openapi/openapi.json")
EXPORT_COMMAND = "digital-id openapi export"


def document() -> dict[str, Any]:
    """The application's OpenAPI document. Settings do not shape it, so development ones do."""
    app = create_app(load_settings(database_url="sqlite:///:memory:", env="development"))
    schema: dict[str, Any] = app.openapi()
    return schema


def render() -> str:
    """The document as committed: sorted keys and a final newline, so a diff shows only what
    changed in the API."""
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def is_current(path: Path, rendered: str | None = None) -> bool:
    """Whether ``path`` holds exactly the document the application describes now."""
    try:
        committed = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return committed == (rendered if rendered is not None else render())


def export(path: Path, rendered: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered if rendered is not None else render(), encoding="utf-8")


if __name__ == "__main__":
    export(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENT_PATH)
