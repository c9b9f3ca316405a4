"""Text fields of the API: one string type that refuses NUL characters.

PostgreSQL cannot store U+0000 in a text column, and no person types it: every text field
of a request (messages, titles, names, FAQ text, ids, query and path parameters) refuses it
with a 422, on every backend alike.
"""

from __future__ import annotations

from typing import Annotated

from fastapi.exceptions import RequestValidationError
from pydantic import StringConstraints
from starlette.requests import HTTPConnection

NUL = "\x00"
NUL_MESSAGE = "must not contain NUL characters (\\u0000)"


# A pattern rather than a validator: it combines with other string constraints (strip,
# lengths) and is published in the OpenAPI document, so clients see the rule too.
NO_NUL_PATTERN = r"^[^\x00]*$"

# A request string: `Annotated[Text, StringConstraints(...)]` or `Field(...)` add lengths.
Text = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]


async def refuse_nul_parameters(connection: HTTPConnection) -> None:
    """App-wide dependency: a NUL in any path or query parameter is a 422."""
    errors = [
        _nul_error("path", name)
        for name, value in connection.path_params.items()
        if isinstance(value, str) and NUL in value
    ]
    errors += [
        _nul_error("query", name)
        for name, value in connection.query_params.multi_items()
        if NUL in value or NUL in name
    ]
    if errors:
        raise RequestValidationError(errors)


def _nul_error(where: str, name: str) -> dict[str, object]:
    return {
        "type": "string_nul",
        "loc": (where, name.replace(NUL, "")),
        "msg": NUL_MESSAGE,
        "input": None,
    }
