"""Errors as RFC 9457 problem details (`application/problem+json`): a title, the status, a detail a
person can act on, and for invalid input each failing field by name and why — never its value
(it may be a caller's phone number)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

MEDIA_TYPE = "application/problem+json"
OPEN311_PREFIX = "/open311/"


class FieldError(BaseModel):
    field: str = Field(description="dotted path of the field, e.g. `location.lat`, or `(body)`")
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = Field(default_factory=list, description="invalid input: each failing field")


class Problem(Exception):
    """Raise from a handler to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str = "", *, errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail or title)
        self.body = ProblemDetails(title=title, status=status, detail=detail, errors=errors or [])
        self.headers = headers or {}

    def response(self, path: str = "") -> JSONResponse:
        """The answer to a request for `path`: Open311's own format under its prefix, else RFC 9457."""
        if path.startswith(OPEN311_PREFIX):
            # GeoReport v2's own error format: a list of {code, description}; invalid input is a 400.
            status = 400 if self.body.status == 422 else self.body.status
            detail = self.body.detail or self.body.title
            if self.body.errors:
                detail = "; ".join(f"{e.field.removeprefix('body.').removeprefix('query.')}: {e.message}"
                                   for e in self.body.errors)
            return JSONResponse([{"code": status, "description": detail}], status_code=status, headers=self.headers)
        return JSONResponse(self.body.model_dump(mode="json"), status_code=self.body.status, headers=self.headers,
                            media_type=MEDIA_TYPE)


def field_errors(exc: ValidationError | RequestValidationError, *, drop_location: bool = False) -> list[FieldError]:
    """Pydantic's errors without their `input` (FastAPI's default 422 echoes it: a phone, a name)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if drop_location and loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        out.append(FieldError(field=".".join(loc) or "(body)", message=err["msg"]))
    return out


def invalid(errors: list[FieldError], what: str = "the request") -> Problem:
    return Problem(422, "Invalid input", f"{what} has {len(errors)} invalid field(s): "
                   + ", ".join(e.field for e in errors), errors=errors)


def install(app: FastAPI) -> None:
    """Every error the app answers, as a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid(field_errors(exc)).response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not parse the body (not JSON, not UTF-8): invalid input too
            return invalid([FieldError(field="(body)", message=str(exc.detail))]).response(request.url.path)
        return Problem(exc.status_code, HTTPStatus(exc.status_code).phrase, str(exc.detail), headers=getattr(exc, "headers", None)).response(request.url.path)


# For the OpenAPI document: what each error answer looks like.
PROBLEM = {"model": ProblemDetails, "content": {MEDIA_TYPE: {}}}
