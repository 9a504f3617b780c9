"""Request models: what each endpoint takes, declared once for validation and for /openapi.json.

Every field that can fail carries a Refusal (fields.py): a request is refused with the first failing field's
status and error code, in the order fields are declared. Articles and drafts are checked again, for what a
schema cannot say (a real date, an ISO 639 code, no lone surrogates), by the corpus format's own
article_from_json: the API accepts exactly what the index job accepts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Mapping, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from ..ingest.corpus import (
    FIELD_LIMITS,
    ID_PATTERN,
    IMAGE_LIMITS,
    MAX_IMAGE_SIDE,
    MAX_TAG_CHARS,
    MAX_TAGS,
)
from ..rank.placements import Options
from ..rank.ranking import Filters
from . import current, limits
from .errors import ApiError, bad_parameter
from .fields import Count, Days, Flag, Fraction, Refusal, Who, Why, values

Model = TypeVar("Model", bound=BaseModel)


def validate(model: type[Model], data: Mapping[str, Any]) -> Model:
    """data as a model instance; the first refused field raises its ApiError (fields.Refusal)."""
    settings = current.settings()
    context = {"max_k": settings.max_k, "default_k": settings.default_k}
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        # Fields refuse bad values themselves; what arrives here is a required field that is missing.
        problem = exc.errors()[0]
        field = str(problem["loc"][0])
        info = model.model_fields.get(field)
        refusal = next((m for m in info.metadata if isinstance(m, Refusal)), None) if info else None
        if refusal is None:
            raise bad_parameter(f"{field}: {problem['msg']}") from None
        raise refusal.refuse(problem, field, context) from None


Lang = values(limits.MAX_LANG_CHARS, "only stories in these languages (ISO 639 codes)")
Section = values(limits.MAX_SECTION_CHARS, "only stories from these sections")
Exclude = values(limits.MAX_ID_CHARS, "never suggest these article ids")
MaxAge = Annotated[float | None, Days(), Field(description="only stories at most this many days old")]
K = Annotated[int | None, Count(), Field(description="number of related stories (at most the max_k setting; "
                                                     "default: the placement's, else the default_k setting)")]

# Ranking options (README "Relatedness, labels, placements"); None: the placement's, else the settings'.
PlacementName = Annotated[str | None, Field(max_length=50, pattern="^[a-z0-9_-]{1,50}$",
                                            description="a named set of ranking options (`recommender settings`)"),
                          Refusal(400, "bad_parameter", "placement must be a placement's name (lower-case letters, "
                                  "digits, _ and -)", label="placement")]
MinRelatedness = Annotated[float | None, Fraction(), Field(
    description="leave out stories whose calibrated relatedness is below this (0..1)")]
Fallback = Annotated[Literal["none", "recent_same_section", "recent"] | None, Field(
    description="fill a list shorter than k with the newest stories passing the filters"),
    Refusal(400, "bad_parameter", "fallback must be none, recent_same_section or recent")]
OnlyBefore = Annotated[bool | None, Flag(), Field(description="only stories published before the article")]
PreferLang = Annotated[str | None, Field(max_length=limits.MAX_LANG_CHARS, pattern="^[A-Za-z]{2,3}$",
                                         description="stories in this language (ISO 639) first, then the others"),
                       Refusal(400, "bad_parameter", "prefer_lang must be an ISO 639 code such as de or en")]
MaxPerStory = Annotated[int | None, Count(minimum=0), Field(
    description="at most this many pieces of one story (0: no cap)")]
MmrLambda = Annotated[float | None, Fraction(above_zero=True), Field(
    description="maximal marginal relevance: 1 ranks by score alone, lower values favour variety")]
RecencyWeight = Annotated[float | None, Fraction(), Field(description="share of freshness in the score (0..1)")]
HalfLife = Annotated[float | None, Days(), Field(
    description="freshness half-life in days, for every section (over section_half_life_days)")]
RANKING_OPTIONS = ("min_relatedness", "fallback", "only_before", "prefer_lang", "max_per_story", "mmr_lambda",
                   "recency_weight", "half_life_days")


class _Ranking(BaseModel):
    """How a list is ranked: a placement, and options over it (checked before the fields of a subclass)."""

    placement: PlacementName = None
    min_relatedness: MinRelatedness = None
    fallback: Fallback = None
    only_before: OnlyBefore = None
    prefer_lang: PreferLang = None
    max_per_story: MaxPerStory = None
    mmr_lambda: MmrLambda = None
    recency_weight: RecencyWeight = None
    half_life_days: HalfLife = None

    def options(self) -> Options:
        """The ranking options the request gives (checked already), over its placement's."""
        return Options(**{name: getattr(self, name) for name in RANKING_OPTIONS if getattr(self, name) is not None})


class _Filtering(BaseModel):
    if TYPE_CHECKING:  # declared by each subclass, in its own order (pydantic keeps a base's fields first)
        lang: list[str]
        section: list[str]
        max_age_days: float | None
        exclude: list[str]

    def filters(self) -> Filters:
        """The ranking's filters (languages compared in lower case)."""
        return Filters(langs=tuple(v.lower() for v in self.lang), sections=tuple(self.section),
                       max_age_days=self.max_age_days, exclude_ids=tuple(self.exclude))


class RelatedQuery(_Filtering, _Ranking):
    """The query string of a related list: how many stories, which ones may be suggested, and how it is ranked."""

    k: K = Field(None, validate_default=True)  # missing: the placement's k, else the default_k setting
    lang: Lang = []
    section: Section = []
    max_age_days: MaxAge = None
    exclude: Exclude = []


class WidgetQuery(BaseModel):
    """The query string of the widget's demo page: what its <related-stories> element asks for."""

    placement: PlacementName = None
    k: K = Field(None, validate_default=True)


class JsonFilters(_Filtering):
    """A draft's `filters`: the related list's query-string filters as a JSON object."""

    lang: Lang = []
    section: Section = []
    max_age_days: MaxAge = None
    exclude: Exclude = []

    @model_validator(mode="before")
    @classmethod
    def _an_object_of_filters(cls, data: Any) -> Any:
        data = data or {}  # null, or an empty anything: no filters
        if not isinstance(data, dict):
            raise bad_parameter("filters must be an object")
        unknown = set(data) - set(cls.model_fields)
        if unknown:
            raise bad_parameter(f"unknown filter(s): {', '.join(sorted(unknown))}")
        return data


# Draft fields follow the corpus format: over a bound the answer is invalid_article, worded as the index job's.
_CORPUS_BOUND = "{field} has {length:,} characters, more than {limit:,}"
_DRAFT = Refusal(422, "invalid_article", "give 'title' and 'body' as strings, not both empty", bound=_CORPUS_BOUND)
_DATE = {"format": "date-time"}
EPOCH = "1970-01-01T00:00:00+00:00"


class Draft(_Ranking):
    """POST /v1/related: an article that is not in the index, and how its list is ranked."""

    title: Annotated[str, Field(max_length=FIELD_LIMITS["title"]), _DRAFT]
    body: Annotated[str, Field(max_length=FIELD_LIMITS["body"]), _DRAFT]
    teaser: Annotated[str, Field(max_length=FIELD_LIMITS["teaser"]), _DRAFT] = ""
    k: K = Field(None, validate_default=True)
    lang: Annotated[str, Field(max_length=FIELD_LIMITS["lang"], description="ISO 639 code of the draft"),
                    Refusal(422, "invalid_article", "'lang' must be an ISO 639 code", bound=_CORPUS_BOUND)] = "und"
    # Not a default in the description: a draft without a date has no age, and max_age_days counts from now.
    published_at: Annotated[str, Field(max_length=FIELD_LIMITS["published_at"], json_schema_extra=_DATE,
                                       description="with a UTC offset; ages and max_age_days count from it"),
                            Refusal(422, "invalid_article", "'published_at' must be a date and time with a UTC "
                                    "offset", bound=_CORPUS_BOUND)] = Field(default_factory=lambda: EPOCH)
    filters: JsonFilters = Field(default_factory=JsonFilters)

    @model_validator(mode="after")
    def _not_empty(self) -> "Draft":
        if not (self.title.strip() or self.body.strip()):
            raise ApiError(422, "invalid_article", "give 'title' and 'body' as strings, not both empty")
        return self


def _article_text(name: str, required: bool = False, **schema: Any) -> Any:
    """An article field as the corpus format bounds it; null is no value for an optional one (as in a corpus)."""
    wrong = f"'{name}' must be a {'non-empty ' if required else ''}string"
    return Annotated[str, Field(max_length=FIELD_LIMITS[name], min_length=1 if required else None, **schema),
                     *(() if required else (BeforeValidator(lambda value: "" if value is None else value),)),
                     Refusal(422, "invalid_article", wrong, bound=_CORPUS_BOUND)]


Title = _article_text("title", required=True)
Body = _article_text("body", required=True)
Published = _article_text("published_at", required=True, json_schema_extra=_DATE,
                          description="with a UTC offset; in the future: not suggested before then")
Teaser, Url, SectionName, Author = (_article_text(name) for name in ("teaser", "url", "section", "author"))


_IMAGE = Refusal(422, "invalid_article", "image must be an object with an http or https url, and optional alt, "
                                          "width and height", bound="image {field} has {length:,} characters, more "
                                                                    "than {limit:,}")
# The corpus format's rule (ingest.corpus._IMAGE_URL), for the API description: http(s), no space, quote or <>.
_IMAGE_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f\"'<>\\]+$"
_SIDE = Annotated[int | None, Field(strict=True, ge=1, le=MAX_IMAGE_SIDE, description="pixels"), _IMAGE]


class Image(BaseModel):
    """An article's picture: an http(s) address, a text for screen readers, its size (the page reserves it)."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(max_length=IMAGE_LIMITS["url"], pattern=_IMAGE_URL_PATTERN), _IMAGE]
    alt: Annotated[str, Field(max_length=IMAGE_LIMITS["alt"]), _IMAGE] = ""
    width: _SIDE = None
    height: _SIDE = None


class Article(BaseModel):
    """PUT /v1/articles/<id>: an article in the corpus format, plus who sends it and why."""

    id: Annotated[str, Field(pattern=f"^{ID_PATTERN.pattern}$", description="optional; must equal the id in the URL"),
                  Refusal(422, "invalid_article", "'id' may hold only letters, digits and . _ : - (at most 200)")
                  ] = Field(default_factory=str)
    title: Title
    body: Body
    teaser: Teaser = ""
    published_at: Published
    lang: Annotated[str, Field(pattern="^[A-Za-z]{2,3}$", description="ISO 639 code"),
                    Refusal(422, "invalid_article", "'lang' must be an ISO 639 code such as 'de', 'en' or 'und'")]
    url: Url = ""
    section: SectionName = ""
    author: Author = ""
    tags: Annotated[list[Annotated[str, Field(max_length=MAX_TAG_CHARS)]], Field(max_length=MAX_TAGS),
                    BeforeValidator(lambda value: value or []),
                    Refusal(422, "invalid_article", "field 'tags' must be a list of strings",
                            bound=f"tags: at most {MAX_TAGS} tags of at most {MAX_TAG_CHARS} characters each")] = []
    image: Annotated[Image | None, _IMAGE] = None
    evergreen: Annotated[bool, Field(strict=True, description="exempt from the freshness decay (an explainer, "
                                                              "a guide)"),
                         Refusal(422, "invalid_article", "field 'evergreen' must be true or false")] = False
    who: Who = "api"
    why: Why = ""

    def record(self, article_id: str) -> dict[str, Any]:
        """The corpus record of this article under article_id (for ingest.corpus.article_from_json)."""
        return {**self.model_dump(exclude={"who", "why"}), "id": article_id}


class Override(BaseModel):
    """PUT and DELETE .../overrides: pin a story at a position, block it from this list, or from every list."""

    action: Annotated[Literal["pin", "block", "block_everywhere"],
                      Refusal(422, "invalid_override", "'action' must be 'pin', 'block' or 'block_everywhere'")]
    target: Annotated[str, Field(max_length=limits.MAX_ID_CHARS),
                      Refusal(422, "invalid_override", "'target' must be an article id", label="'target'")]
    # Only a pin has a position (the PUT checks it against max_k); other actions ignore whatever is sent.
    position: Annotated[Any, WithJsonSchema({"type": "integer", "minimum": 1})] = None
    who: Who = "api"
    why: Why = ""


class Reason(BaseModel):
    """DELETE /v1/articles/<id> (optional body): who takes the article down, and why."""

    who: Who = "api"
    why: Why = ""


class ArticlePath(BaseModel):
    """The article id in a path, bounded before any view looks it up."""

    article_id: Annotated[str, Field(max_length=limits.MAX_ID_CHARS),
                          Refusal(404, "unknown_article", "unknown article id", label="the article id")]


class NewArticlePath(BaseModel):
    """The id of an article sent with PUT: an id as the corpus format allows it."""

    article_id: Annotated[str, Field(max_length=limits.MAX_ID_CHARS, pattern=f"^{ID_PATTERN.pattern}$"),
                          Refusal(422, "invalid_article", "the article id may hold only letters, digits and "
                                  ". _ : - (at most 200)")]


class Search(BaseModel):
    """GET /v1/articles: the editors' search."""

    q: Annotated[str, Field(max_length=limits.MAX_SEARCH_CHARS),
                 Refusal(400, "bad_parameter", "give q: an article id or words of its title", label="q")]

    @model_validator(mode="after")
    def _words(self) -> "Search":
        if not self.q.split():
            raise bad_parameter("give q: an article id or words of its title")
        return self


class AuditQuery(BaseModel):
    """GET /v1/audit: how many entries."""

    limit: Annotated[int, Count(limits.AUDIT_LIMIT)] = 100


class Restore(BaseModel):
    """PUT /v1/articles/<id>'s query string."""

    # Anything but "true" is no restore, as before: a stray value must not turn an article PUT into a 400.
    restore: Annotated[str | None, WithJsonSchema({"type": "string", "enum": ["true"]}),
                       Field(description="publish a taken-down article again")] = None


# Reader events (POST /v1/events) and click links (GET /v1/r/<rid>/<position>): what the widget and the block send.
_RID = Annotated[str, Field(min_length=24, max_length=24, pattern="^[A-Za-z0-9_-]{24}$",
                            description="the rid of the answer the block showed"),
                 Refusal(422, "invalid_event", "rid must be the 24-character rid of a related answer", label="rid")]
_EVENT_ID = Annotated[str | None, Field(max_length=limits.MAX_ID_CHARS, pattern=f"^{ID_PATTERN.pattern}$"),
                      Refusal(422, "invalid_event", "{field} must be an article id", label="an event's {field}")]
_EVENT_PLACEMENT = Annotated[str | None, Field(max_length=50, pattern="^[a-z0-9_-]{1,50}$"),
                             Refusal(422, "invalid_event", "placement must be a placement's name")]


class Event(BaseModel):
    """One reader event: a block seen (impression: how many items it showed) or an item clicked (click: its
    position from 1 and its id). article_id is null for a draft's list, placement for a list without one."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[Literal["impression", "click"],
                    Refusal(422, "invalid_event", "an event's type must be 'impression' or 'click'")]
    rid: _RID
    article_id: _EVENT_ID = None
    placement: _EVENT_PLACEMENT = None
    shown: Annotated[int | None, Count(), Field(description="impression: how many items the block showed")] = None
    position: Annotated[int | None, Count(), Field(description="click: the item's position, from 1")] = None
    item_id: _EVENT_ID = None

    @model_validator(mode="after")
    def _complete(self) -> "Event":
        if self.type == "impression" and self.shown is None:
            raise ApiError(422, "invalid_event", "an impression needs shown: how many items the block showed")
        if self.type == "click" and (self.position is None or self.item_id is None):
            raise ApiError(422, "invalid_event", "a click needs position (from 1) and item_id")
        return self


class Events(BaseModel):
    """POST /v1/events: a batch of reader events (sent as JSON; text/plain too, as navigator.sendBeacon does)."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[Event], Field(min_length=1, max_length=limits.MAX_EVENTS),
                      Refusal(422, "invalid_event", f"events must be a list of 1 to {limits.MAX_EVENTS} events",
                              label="events")]


class ClickPath(BaseModel):
    """GET /v1/r/<rid>/<position>: the answer's rid and the item's position in it."""

    rid: Annotated[str, Field(max_length=24, pattern="^[A-Za-z0-9_-]{24}$"),
                   Refusal(404, "unknown_link", "not a click link of this service")]
    position: Annotated[str, Field(max_length=4, pattern="^[1-9][0-9]{0,3}$", description="from 1"),
                        Refusal(404, "unknown_link", "not a click link of this service")]


class ClickQuery(BaseModel):
    """The click link's query string: the item clicked, and the article and placement of its list."""

    item: Annotated[str, Field(max_length=limits.MAX_ID_CHARS),
                    Refusal(404, "unknown_link", "not a click link of this service", label="item")]
    article: Annotated[str | None, Field(max_length=limits.MAX_ID_CHARS),
                       Refusal(404, "unknown_link", "not a click link of this service")] = None
    placement: Annotated[str | None, Field(max_length=50),
                         Refusal(404, "unknown_link", "not a click link of this service")] = None


class RidPath(BaseModel):
    """GET /v1/i/<rid>: the rid of the block seen."""

    rid: Annotated[str, Field(max_length=24, pattern="^[A-Za-z0-9_-]{24}$"),
                   Refusal(404, "unknown_link", "not an impression link of this service")]


class SeenQuery(BaseModel):
    """The impression link's query string: the block's article, placement and number of items."""

    article: Annotated[str | None, Field(max_length=limits.MAX_ID_CHARS),
                       Refusal(404, "unknown_link", "not an impression link of this service")] = None
    placement: Annotated[str | None, Field(max_length=50),
                         Refusal(404, "unknown_link", "not an impression link of this service")] = None
    shown: Annotated[int, Count()]


class ClickStatsQuery(BaseModel):
    """GET /v1/stats/clicks: how many days back (today included)."""

    days: Annotated[int, Count(limits.MAX_STATS_DAYS)] = 30
