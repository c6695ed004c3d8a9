"""Write the OpenAPI document of the HTTP API to ``openapi/openapi.json``.

Run ``python -m digital_id.openapi`` after changing a route; a test fails until the committed
document matches the application.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from digital_id.app import create_app
from digital_id.config import load_settings


def render() -> str:
    app = create_app(load_settings(database_url="sqlite:///:memory:"))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("openapi/openapi.json")
    target.write_text(render(), encoding="utf-8")
