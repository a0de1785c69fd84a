"""The model catalog and ModelService: which model a transcript id is, and what it costs.

Layers: the bundled `data/models.json`, then the user's own file (`$CMAT_MODELS`, else
`~/.config/cmat/models.json`), merged field by field; a layer's new id must be complete.
Then a project's `.claude/data/models.json` (CMAT's catalog lives there, in its own format),
which comes with a repository and so may only *add*: models nobody else knows, and the
project's default model. Where it prices a model the layers above already price, it is
ignored and said so (`Catalog.notes`), unless that entry says `"force": true`. The ledger is
user-wide: a request must cost the same whichever folder a scan ran from.

Every layer is validated with pydantic, and errors name the file, the model and the field.
Validation is the slow part of start-up (pydantic's import alone costs ~100 ms), so the merged,
validated catalog is cached keyed on each layer's path, size and mtime: the hooks pay for
validation only after a catalog file changed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Iterable

import orjson

from cmat import __version__, paths
from cmat.errors import CatalogError, NotFound, UsageError
from cmat.fileio import atomic_write_bytes, file_lock



class _Bound:
    """A numeric bound pydantic enforces when it validates a catalog.

    Plain `Annotated` metadata instead of `annotated_types`, whose import (with
    typing_extensions) would add 14 ms to every command's start-up.
    """

    def __init__(self, **bound: float):
        self.bound = bound

    def __get_pydantic_core_schema__(self, source, handler):
        return {**handler(source), **self.bound}


NonNegative = Annotated[float, _Bound(ge=0)]
Positive = Annotated[int, _Bound(gt=0)]
PositiveFloat = Annotated[float, _Bound(gt=0)]
# Fields older CMAT catalogs carry that cmat has no use for; accepted so such files still load.
_LEGACY_FIELDS = {"api_id", "currency", "per_tokens"}


PRICE_FIELDS = ("input", "output", "cache_write", "cache_write_1h", "cache_read")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Prices:
    """USD per million tokens of each kind."""

    __pydantic_config__ = {"extra": "forbid"}

    input: NonNegative
    output: NonNegative
    cache_write: NonNegative
    cache_write_1h: NonNegative
    cache_read: NonNegative


@dataclass(frozen=True)
class Tier:
    """Prices of every token of a request whose prompt (input + cache writes + cache reads)
    exceeds `above_prompt_tokens`: the whole request moves, output included."""

    __pydantic_config__ = {"extra": "forbid"}

    above_prompt_tokens: Positive
    prices: Prices


@dataclass(frozen=True)
class Pricing(Prices):
    """A model's prices from `effective_from` on (a date; None: from the beginning), and what
    changes them for one request: its prompt's length (`tiers`), fast mode (`fast_multiplier`
    times whichever prices apply; `fast`, explicit prices, in older catalogs), where inference
    ran (`geo_multipliers`, by `usage.inference_geo`), and web searches."""

    effective_from: str | None = None
    web_search_per_1k: NonNegative = 10.0
    tiers: tuple[Tier, ...] = ()
    fast_multiplier: PositiveFloat | None = None
    fast: Prices | None = None
    geo_multipliers: dict[str, PositiveFloat] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.effective_from is not None and not _DATE.match(self.effective_from):
            raise ValueError(f"effective_from must be a date such as 2026-10-07, "
                             f"not {self.effective_from!r}")
        thresholds = [tier.above_prompt_tokens for tier in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tiers must have increasing above_prompt_tokens")


@dataclass(frozen=True)
class ModelEntry:
    __pydantic_config__ = {"extra": "forbid"}

    id: str
    name: str
    pattern: str
    pricing: Pricing
    history: tuple[Pricing, ...] = ()  # earlier prices, each in force until the next one
    description: str = ""
    max_tokens: int | None = None
    context_window: int | None = None
    is_default: bool = False
    released: str = ""
    source: str = ""
    last_updated: str = ""
    force: bool = False  # in a project catalog: price known models too (see load_catalog)
    origin: str = "built-in"  # the layer that brought the model in: built-in, user, project

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("id must not be empty")
        dates = [row.effective_from or "" for row in (*self.history, self.pricing)]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("history and pricing must be in order of effective_from, "
                             "each date once, the current pricing last")

    def pricing_on(self, day: str) -> Pricing:
        """The prices in force on `day` (YYYY-MM-DD, UTC); the earliest before them all."""
        if not self.history:
            return self.pricing
        found = self.history[0]
        for row in (*self.history, self.pricing):
            if (row.effective_from or "") <= day:
                found = row
        return found


@dataclass(frozen=True)
class Catalog:
    version: str
    models: tuple[ModelEntry, ...]
    sources: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what a project's catalog said that was not followed

    def unannounced_notes(self) -> list[str]:
        """The notes not said before (each is said once, not on every command or hook);
        they count as said from now on."""
        if not self.notes:
            return []
        import hashlib

        record = paths.state_home() / "catalog-notes-said.json"
        try:
            said = set(orjson.loads(record.read_bytes()))
        except (OSError, ValueError, TypeError):
            said = set()
        fresh = [note for note in self.notes
                 if hashlib.sha1(note.encode()).hexdigest() not in said]
        if fresh:
            said |= {hashlib.sha1(note.encode()).hexdigest() for note in fresh}
            try:
                atomic_write_bytes(record, orjson.dumps(sorted(said)))
            except OSError:
                pass  # said again next time: better than never
        return fresh


# --- loading --------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFound(f"model catalog {path} does not exist") from None
    except OSError as exc:
        raise CatalogError(f"cannot read model catalog {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise CatalogError(f"model catalog {path} is not valid JSON: {exc}") from None


def _glob_to_regex(glob: str) -> str:
    # CMAT's own catalogs use `a*|b*` globs matched from the start of the id.
    alternatives = [re.escape(part).replace(r"\*", ".*") for part in glob.split("|")]
    return "^(?:" + "|".join(alternatives) + ")"


def _layer_entries(path: Path, doc: Any) -> tuple[list[dict], str | None, str | None]:
    """The raw entries of one catalog file, its default model and its version."""
    if isinstance(doc, list):
        return doc, None, None
    if not isinstance(doc, dict) or "models" not in doc:
        raise CatalogError(f"model catalog {path}: expected an object with a 'models' list")
    models = doc["models"]
    default = doc.get("default_model")
    version = doc.get("catalog_version")
    if isinstance(models, dict):  # CMAT's format: {"models": {id: {...}}} with glob patterns
        entries = []
        for model_id, body in models.items():
            if not isinstance(body, dict):
                raise CatalogError(f"model catalog {path}: model {model_id}: expected an object")
            entry = {"id": model_id, **body}
            if isinstance(entry.get("pattern"), str):
                entry["pattern"] = _glob_to_regex(entry["pattern"])
            entries.append(entry)
        return entries, default, version
    if not isinstance(models, list):
        raise CatalogError(f"model catalog {path}: 'models' must be a list")
    return models, default, version


def _normalise_legacy(entry: dict) -> dict:
    entry = {k: v for k, v in entry.items() if k not in _LEGACY_FIELDS}
    pricing = entry.get("pricing")
    if isinstance(pricing, dict):
        pricing = dict(pricing)
        scale = pricing.pop("per_tokens", 1_000_000)
        pricing.pop("currency", None)
        if isinstance(scale, (int, float)) and scale and scale != 1_000_000:
            for key in ("input", "output", "cache_write", "cache_write_1h", "cache_read"):
                if isinstance(pricing.get(key), (int, float)):
                    pricing[key] = pricing[key] * 1_000_000 / scale
        # A catalog without 1-hour prices gets the standard 2x-input rate, never the 5-minute one.
        if "cache_write_1h" not in pricing and isinstance(pricing.get("input"), (int, float)):
            pricing["cache_write_1h"] = pricing["input"] * 2
        # Older cmat catalogs: one long-context tier, with its threshold inside.
        long_context = pricing.pop("long_context", None)
        if isinstance(long_context, dict):
            tier = dict(long_context)
            pricing["tiers"] = [{"above_prompt_tokens": tier.pop("threshold_tokens", None),
                                 "prices": tier}]
        entry["pricing"] = pricing
    return entry


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_pattern(path: Path, model_id: str, pattern: str) -> None:
    # Here, not in ModelEntry: entries built from the validation cache skip the compile.
    try:
        re.compile(pattern)
    except re.error as exc:
        raise CatalogError(f"model catalog {path}: model {model_id}: field pattern: "
                           f"{pattern!r} does not compile: {exc}") from None


def _format_validation_error(path: Path, model_id: str, exc: Exception) -> CatalogError:
    first = exc.errors()[0]  # type: ignore[attr-defined]
    field = ".".join(str(part) for part in first["loc"]) or "(entry)"
    message = first["msg"].removeprefix("Value error, ")
    return CatalogError(f"model catalog {path}: model {model_id}: field {field}: {message}")


@dataclass(frozen=True)
class Layer:
    path: Path
    origin: str  # "built-in", "user" or "project"

    @property
    def trusted(self) -> bool:
        return self.origin != "project"


def catalog_layers(project: Path) -> list[Layer]:
    """The catalog files in force for `project`, lowest precedence first."""
    layers = [Layer(paths.bundled_catalog(), "built-in")]
    user = paths.user_catalog()
    if user.is_file():
        layers.append(Layer(user, "user"))
    elif os.environ.get("CMAT_MODELS"):
        raise NotFound(f"CMAT_MODELS names {user}, which does not exist")
    project_file = paths.project_catalog(project)
    if project_file.is_file():
        layers.append(Layer(project_file, "project"))
    return layers


def _prices_of(entry: dict) -> dict:
    """What a price comparison looks at: the five prices of an entry's current pricing."""
    pricing = entry.get("pricing") if isinstance(entry.get("pricing"), dict) else {}
    return {key: pricing.get(key) for key in PRICE_FIELDS}


@dataclass
class _Merge:
    merged: dict[str, dict] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    version: str = "unknown"

    def known_model(self, raw: dict) -> dict | None:
        """The trusted entry a project entry is about: same id, or the model its `api_id`
        (CMAT's catalogs name one) or its id resolves to."""
        for candidate in (raw.get("id"), raw.get("api_id")):
            if not isinstance(candidate, str):
                continue
            entry = self.merged.get(candidate)
            if entry is not None and entry.get("origin") != "project":
                return entry
            for other in self.merged.values():
                if other.get("origin") != "project" and re.search(other["pattern"], candidate):
                    return other
        return None


def _apply_layer(state: _Merge, layer: Layer, adapter, ValidationError) -> None:
    path = layer.path
    entries, default, layer_version = _layer_entries(path, _read_json(path))
    if layer_version and layer.origin == "built-in":
        state.version = str(layer_version)
    elif layer.origin != "built-in":  # the version says which content priced a request
        import hashlib

        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
        state.version = f"{state.version}+{layer.origin}.{digest}"
    touched = []
    same_as: dict[str, str] = {}  # a project's id -> the known model it stands for
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise CatalogError(f"model catalog {path}: entry {index}: needs a string 'id'")
        known = state.known_model(raw) if not layer.trusted else None
        raw = _normalise_legacy(raw)
        model_id = raw["id"]
        if known is not None and not raw.get("force"):
            same_as[model_id] = known["id"]
            if _prices_of(raw) != _prices_of(known):
                state.notes.append(
                    f"{path} prices {model_id} differently from the {known['origin']} catalog "
                    f"({known['id']}); the {known['origin']} price is used (add \"force\": true "
                    "to that entry to use yours)")
            continue
        if raw.get("is_default") is True:
            for other in state.merged.values():
                other["is_default"] = False
        current = state.merged.get(model_id)
        raw["origin"] = "project (forced)" if known is not None else layer.origin
        state.merged[model_id] = _merge(current, raw) if current is not None else raw
        touched.append(model_id)
    if default is not None:
        default = same_as.get(default, default)
        if default not in state.merged:
            raise CatalogError(f"model catalog {path}: default_model {default!r} is not a model")
        for model_id, entry in state.merged.items():
            entry["is_default"] = model_id == default
    for model_id in touched:
        try:
            adapter.validate_python(state.merged[model_id])
        except ValidationError as exc:
            raise _format_validation_error(path, model_id, exc) from None
        _check_pattern(path, model_id, state.merged[model_id]["pattern"])


def _merge_layers(layers: list[Layer]) -> tuple[list[dict], str, list[str], list[str]]:
    """Merge the raw layers and validate each entry a layer touched, naming that layer.
    A project layer that does not load is left out, and said so."""
    import copy

    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(ModelEntry)
    state = _Merge()
    for layer in layers:
        if layer.trusted:
            _apply_layer(state, layer, adapter, ValidationError)
            continue
        before = copy.deepcopy(state)
        try:
            _apply_layer(state, layer, adapter, ValidationError)
        except (CatalogError, NotFound) as exc:
            state = before
            state.notes.append(f"{exc}; the project's catalog is ignored")
    return (list(state.merged.values()), state.version, [str(layer.path) for layer in layers],
            state.notes)


def _pricing_from_validated(data: dict) -> Pricing:
    row = dict(data)
    row["tiers"] = tuple(Tier(tier["above_prompt_tokens"], Prices(**tier["prices"]))
                         for tier in row.get("tiers") or ())
    if row.get("fast"):
        row["fast"] = Prices(**row["fast"])
    return Pricing(**row)


def _entry_from_validated(data: dict) -> ModelEntry:
    """A ModelEntry from data pydantic already validated (no second validation)."""
    return ModelEntry(**{**data, "pricing": _pricing_from_validated(data["pricing"]),
                         "history": tuple(_pricing_from_validated(row)
                                          for row in data.get("history") or ())})


def _cache_key(layers: list[Layer]) -> list:
    key: list = [__version__]
    for layer in layers:
        st = layer.path.stat()
        key.append([str(layer.path), layer.origin, st.st_size, st.st_mtime_ns])
    return key


def load_catalog(project: Path | None = None) -> Catalog:
    """The merged catalog for `project`, validated (or taken from the validation cache)."""
    project = project if project is not None else paths.project_dir()
    layers = catalog_layers(project)
    try:
        key = _cache_key(layers)
    except FileNotFoundError:
        raise NotFound(f"bundled model catalog {layers[0].path} is missing; reinstall cmat"
                       ) from None
    cache = paths.cache_home() / "catalog.json"
    try:
        cached = orjson.loads(cache.read_bytes())
        if cached.get("key") == key:
            models = tuple(_entry_from_validated(m) for m in cached["models"])
            return Catalog(cached["version"], models, tuple(cached["sources"]),
                           tuple(cached["notes"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache, or a stale or damaged one: validate afresh
    raw_models, version, sources, notes = _merge_layers(layers)
    models = tuple(_entry_from_validated(m) for m in raw_models)
    payload = {"key": key, "version": version, "sources": sources, "notes": notes,
               "models": [dataclasses.asdict(m) for m in models]}
    try:
        atomic_write_bytes(cache, orjson.dumps(payload))
    except OSError:
        pass  # a read-only cache directory only costs speed
    return Catalog(version, models, tuple(sources), tuple(notes))


# --- matching ---------------------------------------------------------------------------------

_REGEX_SYNTAX = re.compile(r"\\[a-zA-Z]|\\.|\{\d+(?:,\d*)?\}|\(\?[:=!]|[\^$.|?*+()\[\]{}]")


def pattern_specificity(pattern: str) -> int:
    """How many literal characters a pattern holds: the more, the more specific it is."""
    return len(_REGEX_SYNTAX.sub("", pattern))


@dataclass(frozen=True)
class Match:
    entry: ModelEntry
    exact: bool
    specificity: int

    @property
    def rank(self) -> tuple[bool, int]:
        return (self.exact, self.specificity)


class ModelService:
    """Looks models up in the catalog and prices token counts with them."""

    def __init__(self, project: Path | str | None = None, catalog: Catalog | None = None):
        self.project = paths.project_dir(project) if project is None or isinstance(project, str) \
            else project
        self._catalog = catalog
        self._resolved: dict[str, ModelEntry | None] = {}

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog(self.project)
        return self._catalog

    @cached_property
    def _compiled(self) -> list[tuple[ModelEntry, re.Pattern, int]]:
        return [(m, re.compile(m.pattern), pattern_specificity(m.pattern))
                for m in self.catalog.models]

    def matches(self, model_id: str) -> list[Match]:
        """Every entry claiming `model_id`, the one that prices it first: entries of the
        built-in and user catalogs before those a project added, then an exact id before
        a pattern, then the most specific pattern."""
        found = [Match(entry, entry.id == model_id, spec)
                 for entry, regex, spec in self._compiled
                 if entry.id == model_id or regex.search(model_id)]
        found.sort(key=lambda m: (m.entry.origin != "project", *m.rank), reverse=True)
        return found

    @cached_property
    def _by_id(self) -> dict[str, ModelEntry]:
        return {entry.id: entry for entry in self.catalog.models if entry.origin != "project"}

    def get_by_pattern(self, model_id: str) -> ModelEntry | None:
        """The entry for a transcript's model id (see `matches`; a trusted exact id is found
        without compiling a single pattern)."""
        if model_id not in self._resolved:
            exact = self._by_id.get(model_id)
            if exact is not None:
                self._resolved[model_id] = exact
            else:
                found = self.matches(model_id)
                self._resolved[model_id] = found[0].entry if found else None
        return self._resolved[model_id]

    def get(self, model_id: str) -> ModelEntry:
        entry = self.get_by_pattern(model_id)
        if entry is None:
            raise NotFound(f"unknown model {model_id!r}", "see 'cmat models list'")
        return entry

    def get_default(self) -> ModelEntry:
        for entry in self.catalog.models:
            if entry.is_default:
                return entry
        return self.catalog.models[0]

    def set_default(self, model_id: str) -> Path:
        """Mark `model_id` as the default in the user's catalog file (never the bundled one)."""
        entry = self.get(model_id)
        target = paths.user_catalog()
        with file_lock(target):
            doc: dict = {"models": []}
            if target.is_file():
                doc = _read_json(target)
                if not isinstance(doc, dict) or not isinstance(doc.get("models"), (list, dict)):
                    raise CatalogError(f"model catalog {target}: expected an object with 'models'")
            doc.pop("default_model", None)
            doc["default_model"] = entry.id
            models = doc["models"]
            known = {m.get("id") for m in models} if isinstance(models, list) else set(models)
            if entry.id not in known:
                stub = {"id": entry.id} if isinstance(models, list) else None
                if stub is None:
                    raise UsageError(
                        f"{target} uses CMAT's catalog format and has no model {entry.id!r}",
                        "add the model to that file first")
                models.append(stub)
            for model in (models if isinstance(models, list) else models.values()):
                model.pop("is_default", None)
            atomic_write_bytes(target, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        self._catalog = None
        self.__dict__.pop("_compiled", None)
        self.__dict__.pop("_by_id", None)
        self._resolved.clear()
        return target

    def problems(self) -> list[str]:
        """Ids that two models claim equally, and ids that resolve to another entry.

        Each entry is probed with its id and the forms a transcript may carry: undated,
        dated, and with a provider prefix.
        """
        found = []
        for entry, regex, _ in self._compiled:
            # A project's ids may be names of its own (CMAT writes claude-haiku-4.5).
            if not regex.search(entry.id) and entry.origin != "project":
                found.append(f"{entry.id}: its pattern does not match its own id")
            undated = re.sub(r"-\d{8}$", "", entry.id)
            probes = dict.fromkeys([entry.id, undated, f"{undated}-20990101",
                                    f"anthropic/{entry.id}"])
            for probe in probes:
                ranked = self.matches(probe)
                if not ranked:
                    continue
                tied = sorted(m.entry.id for m in ranked if m.rank == ranked[0].rank)
                if len(tied) > 1:
                    found.append(f"{probe!r} is claimed equally by {', '.join(tied)}")
        return sorted(set(found))


def iter_layer_errors(project: Path) -> Iterable[str]:
    """Load every layer in turn and report what stops it loading, and what a project layer
    says that is not followed (for `cmat models validate`)."""
    layers = catalog_layers(project)
    for count in range(1, len(layers) + 1):
        try:
            notes = _merge_layers(layers[:count])[3]
        except (CatalogError, NotFound) as exc:
            yield str(exc)
            return
    yield from (note for note in notes if note.endswith("the project's catalog is ignored"))


def default_pattern(model_id: str) -> str:
    """The pattern `cmat models add` gives a model: its id, dated or not, any provider prefix."""
    return (r"(?:^|[/.])" + re.escape(model_id)
            + r"(?:[-@]\d{8})?(?:-v\d+(?::\d+)?)?(?:\[1m\])?$")


def add_model(model_id: str, *, name: str | None, pattern: str | None,
              input_price: float, output_price: float, cache_write: float | None = None,
              cache_write_1h: float | None = None, cache_read: float | None = None) -> Path:
    """Add (or replace the prices of) a model in the user's catalog file, validated first."""
    return save_user_entries([_entry_of(model_id, name, pattern, input_price, output_price,
                                        cache_write, cache_write_1h, cache_read)])


def _entry_of(model_id: str, name: str | None, pattern: str | None, input_price: float,
              output_price: float, cache_write: float | None, cache_write_1h: float | None,
              cache_read: float | None, source: str = "added with cmat models add") -> dict:
    """A complete catalog entry; unnamed cache prices follow the standard multipliers."""
    return {
        "id": model_id, "name": name or model_id, "pattern": pattern or default_pattern(model_id),
        "source": source, "last_updated": _today(),
        "pricing": {
            "input": input_price, "output": output_price,
            "cache_write": input_price * 1.25 if cache_write is None else cache_write,
            "cache_write_1h": input_price * 2 if cache_write_1h is None else cache_write_1h,
            "cache_read": input_price * 0.1 if cache_read is None else cache_read,
        },
    }


def save_user_entries(entries: list[dict]) -> Path:
    """Add or replace these entries in the user's catalog file, each validated first."""
    from pydantic import TypeAdapter, ValidationError

    target = paths.user_catalog()
    adapter = TypeAdapter(ModelEntry)
    for entry in entries:
        try:
            adapter.validate_python(entry)
        except ValidationError as exc:
            raise _format_validation_error(target, entry["id"], exc) from None
        _check_pattern(target, entry["id"], entry["pattern"])
    with file_lock(target):
        doc: dict = {"models": []}
        if target.is_file():
            doc = _read_json(target)
        models = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(models, list):
            raise CatalogError(f"model catalog {target}: expected an object with a 'models' list",
                               "cmat writes cmat's format only; move that file away")
        replaced = {entry["id"] for entry in entries}
        doc["models"] = [m for m in models
                         if not (isinstance(m, dict) and m.get("id") in replaced)] + entries
        atomic_write_bytes(target, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return target


def _today() -> str:
    from datetime import date

    return date.today().isoformat()
