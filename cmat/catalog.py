"""The model catalog and ModelService: which model a transcript id is, and what it costs.

Layers, lowest precedence first: the bundled `data/models.json`, the project's
`.claude/data/models.json` (CMAT's location), then `$CMAT_MODELS`. A layer's entry whose id is
already known is merged field by field over it; a new id must be complete.

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
# Fields older CMAT catalogs carry that cmat has no use for; accepted so such files still load.
_LEGACY_FIELDS = {"api_id", "currency", "per_tokens"}


@dataclass(frozen=True)
class Prices:
    """USD per million tokens for one pricing tier."""

    __pydantic_config__ = {"extra": "forbid"}

    input: NonNegative
    output: NonNegative
    cache_write: NonNegative
    cache_write_1h: NonNegative
    cache_read: NonNegative


@dataclass(frozen=True)
class LongContext(Prices):
    """Premium tier applied to every token of a request whose input side exceeds the threshold."""

    threshold_tokens: Positive


@dataclass(frozen=True)
class Pricing(Prices):
    """The standard tier, and what changes it: long context, fast mode, web searches."""

    web_search_per_1k: NonNegative = 10.0
    long_context: LongContext | None = None
    fast: Prices | None = None


@dataclass(frozen=True)
class ModelEntry:
    __pydantic_config__ = {"extra": "forbid"}

    id: str
    name: str
    pattern: str
    pricing: Pricing
    description: str = ""
    max_tokens: int | None = None
    context_window: int | None = None
    is_default: bool = False
    source: str = ""
    last_updated: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("id must not be empty")


@dataclass(frozen=True)
class Catalog:
    version: str
    models: tuple[ModelEntry, ...]
    sources: tuple[str, ...]


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


def _merge_layers(layers: list[Path]) -> tuple[list[dict], str, list[str]]:
    """Merge the raw layers and validate each entry a layer touched, naming that layer."""
    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(ModelEntry)
    merged: dict[str, dict] = {}
    version = "unknown"
    for position, path in enumerate(layers):
        doc = _read_json(path)
        entries, default, layer_version = _layer_entries(path, doc)
        if layer_version and position == 0:
            version = str(layer_version)
        elif position:
            version = f"{version}+{path.name}"
        touched = []
        for index, raw in enumerate(entries):
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                raise CatalogError(f"model catalog {path}: entry {index}: needs a string 'id'")
            raw = _normalise_legacy(raw)
            model_id = raw["id"]
            if raw.get("is_default") is True:
                for other in merged.values():
                    other["is_default"] = False
            merged[model_id] = _merge(merged[model_id], raw) if model_id in merged else raw
            touched.append(model_id)
        if default is not None:
            if default not in merged:
                raise CatalogError(f"model catalog {path}: default_model {default!r} is not a model")
            for model_id, entry in merged.items():
                entry["is_default"] = model_id == default
        for model_id in touched:
            try:
                adapter.validate_python(merged[model_id])
            except ValidationError as exc:
                raise _format_validation_error(path, model_id, exc) from None
            _check_pattern(path, model_id, merged[model_id]["pattern"])
    return list(merged.values()), version, [str(p) for p in layers]


def _entry_from_validated(data: dict) -> ModelEntry:
    pricing = dict(data["pricing"])
    if pricing.get("long_context"):
        pricing["long_context"] = LongContext(**pricing["long_context"])
    if pricing.get("fast"):
        pricing["fast"] = Prices(**pricing["fast"])
    return ModelEntry(**{**data, "pricing": Pricing(**pricing)})


def _cache_key(layers: list[Path]) -> list:
    key: list = [__version__]
    for path in layers:
        st = path.stat()
        key.append([str(path), st.st_size, st.st_mtime_ns])
    return key


def load_catalog(project: Path | None = None) -> Catalog:
    """The merged catalog for `project`, validated (or taken from the validation cache)."""
    project = project if project is not None else paths.project_dir()
    layers = [paths.bundled_catalog()]
    for layer in paths.user_catalogs(project):
        if layer.is_file():
            layers.append(layer)
        elif layer == paths.writable_catalog(project) and os.environ.get("CMAT_MODELS"):
            raise NotFound(f"CMAT_MODELS names {layer}, which does not exist")
    try:
        key = _cache_key(layers)
    except FileNotFoundError:
        raise NotFound(f"bundled model catalog {layers[0]} is missing; reinstall cmat") from None
    cache = paths.cache_home() / "catalog.json"
    try:
        cached = orjson.loads(cache.read_bytes())
        if cached.get("key") == key:
            models = tuple(_entry_from_validated(m) for m in cached["models"])
            return Catalog(cached["version"], models, tuple(cached["sources"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache, or a stale or damaged one: validate afresh
    raw_models, version, sources = _merge_layers(layers)
    models = tuple(_entry_from_validated(m) for m in raw_models)
    payload = {"key": key, "version": version, "sources": sources,
               "models": [dataclasses.asdict(m) for m in models]}
    try:
        atomic_write_bytes(cache, orjson.dumps(payload))
    except OSError:
        pass  # a read-only cache directory only costs speed
    return Catalog(version, models, tuple(sources))


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

    def list_all(self) -> list[ModelEntry]:
        return list(self.catalog.models)

    def matches(self, model_id: str) -> list[Match]:
        """Every entry claiming `model_id`, most specific first."""
        found = [Match(entry, entry.id == model_id, spec)
                 for entry, regex, spec in self._compiled
                 if entry.id == model_id or regex.search(model_id)]
        found.sort(key=lambda m: m.rank, reverse=True)
        return found

    @cached_property
    def _by_id(self) -> dict[str, ModelEntry]:
        return {entry.id: entry for entry in self.catalog.models}

    def get_by_pattern(self, model_id: str) -> ModelEntry | None:
        """The entry for a transcript's model id (an exact id beats the most specific pattern,
        so exact ids are found without compiling a single pattern)."""
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
        target = paths.writable_catalog(self.project)
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

    def calculate_cost(self, model_id: str, input_tokens: int, output_tokens: int,
                       cache_creation_tokens: int = 0, cache_read_tokens: int = 0,
                       cache_creation_1h_tokens: int = 0, web_search_requests: int = 0) -> float:
        """USD for one request's token counts.

        `cache_creation_tokens` counts all cache writes, as the transcript's
        `cache_creation_input_tokens` does; `cache_creation_1h_tokens` says how many of them were
        1-hour writes. Long-context rates apply when the input side exceeds the model's threshold.
        """
        from cmat.pricing import TokenCounts, request_cost

        tokens = TokenCounts(input_tokens, output_tokens, cache_creation_tokens,
                             cache_creation_1h_tokens, cache_read_tokens)
        return request_cost(self.get(model_id).pricing, tokens, web_search_requests)

    def problems(self) -> list[str]:
        """Ids that two models claim equally, and ids that resolve to another entry.

        Each entry is probed with its id and the forms a transcript may carry: undated,
        dated, and with a provider prefix.
        """
        found = []
        for entry, regex, _ in self._compiled:
            if not regex.search(entry.id):
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
    """Load every layer in turn and report what stops it loading (for `cmat models validate`)."""
    layers = [paths.bundled_catalog()] + [p for p in paths.user_catalogs(project) if p.is_file()]
    for count in range(1, len(layers) + 1):
        try:
            _merge_layers(layers[:count])
        except (CatalogError, NotFound) as exc:
            yield str(exc)
            return


def default_pattern(model_id: str) -> str:
    """The pattern `cmat models add` gives a model: its id, dated or not, any provider prefix."""
    return r"(?:^|[/.])" + re.escape(model_id) + r"(?:[-@]\d{8})?(?:-v\d+(?::\d+)?)?$"


def add_model(project: Path, model_id: str, *, name: str | None, pattern: str | None,
              input_price: float, output_price: float, cache_write: float | None = None,
              cache_write_1h: float | None = None, cache_read: float | None = None) -> Path:
    """Add (or replace the prices of) a model in the user's catalog file, validated first."""
    from pydantic import TypeAdapter, ValidationError

    entry = {
        "id": model_id, "name": name or model_id, "pattern": pattern or default_pattern(model_id),
        "source": "added with cmat models add", "last_updated": _today(),
        "pricing": {
            "input": input_price, "output": output_price,
            "cache_write": input_price * 1.25 if cache_write is None else cache_write,
            "cache_write_1h": input_price * 2 if cache_write_1h is None else cache_write_1h,
            "cache_read": input_price * 0.1 if cache_read is None else cache_read,
        },
    }
    target = paths.writable_catalog(project)
    try:
        TypeAdapter(ModelEntry).validate_python(entry)
    except ValidationError as exc:
        raise _format_validation_error(target, model_id, exc) from None
    with file_lock(target):
        doc: dict = {"models": []}
        if target.is_file():
            doc = _read_json(target)
        models = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(models, list):
            raise CatalogError(f"model catalog {target}: expected an object with a 'models' list",
                               "cmat models add writes cmat's format only")
        doc["models"] = [m for m in models if not (isinstance(m, dict) and m.get("id") == model_id)]
        doc["models"].append(entry)
        atomic_write_bytes(target, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return target


def _today() -> str:
    from datetime import date

    return date.today().isoformat()
