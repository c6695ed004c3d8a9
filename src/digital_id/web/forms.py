"""Reading the pages' forms: every field as posted, repeated names kept."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

FormPairs = list[tuple[str, str]]


async def form_pairs(request: Request) -> FormPairs:
    """Every field of an urlencoded or multipart form, repeated names kept."""
    form = await request.form()
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


Form = Annotated[FormPairs, Depends(form_pairs)]


def field_value(pairs: FormPairs, name: str) -> str:
    """The first value of a form field, or an empty string."""
    return next((value for key, value in pairs if key == name), "")
