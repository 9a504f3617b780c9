"""Field types of the request models: each declares its bound once, for validation and for /openapi.json, and
how a request breaking it is answered (status, error code, message)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Mapping

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
)
from pydantic_core import CoreSchema, ErrorDetails, core_schema

from . import limits
from .errors import ApiError, bad_parameter, too_long

# ASCII digits only: int() and float() also take "5_0", "+5", " 5", "٥" and "inf", which no client means.
_DIGITS = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")


@dataclass(frozen=True)
class Refusal:
    """How a field failing the checks declared before it in Annotated[...] is answered.

    Over a length bound: 422 too_long ("'who' is longer than 100 characters"), unless `bound` words the field's
    own message (article fields answer as the corpus format does, with `code`). Any other failure: status, code
    and message. Messages may name {field} and the validation context ({max_k}); `bound` also {limit}, {length}.
    """

    status: int
    code: str
    message: str
    label: str = ""  # how messages name the field; its name by default
    bound: str = ""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_wrap_validator_function(self._check, handler(source))

    def _check(self, value: Any, handler: Any, info: core_schema.ValidationInfo) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            # The first problem only, and at once: the request is refused, nothing else is worth checking.
            raise self.refuse(exc.errors()[0], info.field_name or "", info.context or {}) from None

    def refuse(self, problem: ErrorDetails, field: str, context: Mapping[str, Any]) -> ApiError:
        """The answer to a request whose field `field` failed with `problem` (a pydantic error)."""
        name = self.label or field
        if problem["type"] == "string_unicode":  # JSON's "\ud800" escapes decode to half characters
            where = f"a value of {name}" if problem["loc"] else name
            return ApiError(self.status, self.code,
                            f"{where} holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape), not text")
        if problem["type"] in ("string_too_long", "too_long"):
            limit = problem.get("ctx", {})["max_length"]
            if self.bound:
                message = self.bound.format(field=name, limit=limit, length=len(problem["input"]))
                return ApiError(self.status, self.code, message)
            if problem["loc"]:  # one value of a list
                return too_long(f"a value of {name}", limit)
            return too_long(name, limit, "characters" if problem["type"] == "string_too_long" else "values")
        return ApiError(self.status, self.code, self.message.format(field=name, **context))


@dataclass(frozen=True)
class Count:
    """A whole number from `minimum` to `maximum`, in ASCII digits when it is a string (a query parameter).

    maximum None: at most the max_k setting (from the validation context; openapi.py writes it into the
    description); missing is None then: the placement's k, else the default_k setting, decides.
    """

    maximum: int | None = None
    minimum: int = 1

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_plain_validator_function(self._parse)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: Any) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, **({"maximum": self.maximum} if self.maximum else {})}

    def _parse(self, raw: Any, info: core_schema.ValidationInfo) -> int | None:
        context, name = info.context or {}, info.field_name
        top, low = self.maximum or context["max_k"], self.minimum
        if raw is None and self.maximum is None:
            return None
        if isinstance(raw, str):
            if not _DIGITS.fullmatch(raw):
                raise bad_parameter(f"{name} must be an integer between {low} and {top}, in digits only")
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool) or not low <= raw <= top:
            raise bad_parameter(f"{name} must be an integer between {low} and {top}")
        return raw


@dataclass(frozen=True)
class Fraction:
    """A number from 0 (or above 0, when `above_zero`) to 1; as a string only digits with an optional decimal
    part. None stays None: not given."""

    above_zero: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_plain_validator_function(self._parse)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: Any) -> dict[str, Any]:
        low = {"exclusiveMinimum": 0} if self.above_zero else {"minimum": 0}
        return {"type": "number", **low, "maximum": 1}

    def _parse(self, raw: Any, info: core_schema.ValidationInfo) -> float | None:
        if raw is None:
            return None
        if isinstance(raw, str) and _DECIMAL.fullmatch(raw):
            raw = float(raw)
        if not isinstance(raw, (int, float)) or isinstance(raw, bool) or not math.isfinite(raw) \
                or not 0 <= raw <= 1 or (self.above_zero and raw == 0):
            bound = "above 0, at most 1" if self.above_zero else "from 0 to 1"
            raise bad_parameter(f"{info.field_name} must be a number {bound}")
        return float(raw)


@dataclass(frozen=True)
class Flag:
    """true or false: a JSON boolean, or the words in a query string. None stays None: not given."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_plain_validator_function(self._parse)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: Any) -> dict[str, Any]:
        return {"type": "boolean"}

    @staticmethod
    def _parse(raw: Any, info: core_schema.ValidationInfo) -> bool | None:
        if raw is None or isinstance(raw, bool):
            return raw
        if raw in ("true", "false"):
            return raw == "true"
        raise bad_parameter(f"{info.field_name} must be true or false")


@dataclass(frozen=True)
class Days:
    """A positive number of days, at most limits.MAX_AGE_DAYS; as a string only digits with an optional
    decimal part ("inf", "1e3", "+1" are refused). None stays None: no bound."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_plain_validator_function(self._parse)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: Any) -> dict[str, Any]:
        return {"type": "number", "exclusiveMinimum": 0, "maximum": limits.MAX_AGE_DAYS}

    @staticmethod
    def _parse(raw: Any, info: core_schema.ValidationInfo) -> float | None:
        if raw is None:
            return None
        if isinstance(raw, str) and _DECIMAL.fullmatch(raw):
            raw = float(raw)
        if not isinstance(raw, (int, float)) or isinstance(raw, bool) or not math.isfinite(raw) \
                or not 0 < raw <= limits.MAX_AGE_DAYS:
            raise bad_parameter(f"{info.field_name} must be a positive number of days, at most "
                                f"{limits.MAX_AGE_DAYS:,}")
        return float(raw)


def _as_list(value: Any) -> Any:
    # A filter may be one string or a list; anything false (null, "", []) is no filter at all.
    return [value] if isinstance(value, str) else (value or [])


def values(item_limit: int, description: str) -> Any:
    """A repeatable filter: a string or a list of at most limits.MAX_FILTER_VALUES strings of item_limit."""
    return Annotated[list[Annotated[str, Field(max_length=item_limit)]],
                     Field(max_length=limits.MAX_FILTER_VALUES, description=description),
                     BeforeValidator(_as_list),
                     Refusal(400, "bad_parameter", "{field} must be a string or a list of strings")]


def _text_or(default: str) -> AfterValidator:
    return AfterValidator(lambda value: value.strip() or default)


# Who made a change and why, for the audit trail (overrides, takedowns, article PUTs).
Who = Annotated[str, Field(max_length=limits.MAX_WHO_CHARS), _text_or("api"),
                Refusal(422, "invalid_override", f"'who' must be a string of at most {limits.MAX_WHO_CHARS} characters",
                        label="'who'")]
Why = Annotated[str, Field(max_length=limits.MAX_WHY_CHARS), _text_or(""),
                Refusal(422, "invalid_override", f"'why' must be a string of at most {limits.MAX_WHY_CHARS} characters",
                        label="'why'")]
