"""The catalog's layers, merged, checked and cached.

Layers: the bundled `data/models.json`, then the user's own file (`$CMAT_MODELS`, else
`~/.config/cmat/models.json`), merged field by field; a layer's new id must be complete.
Then a project's `.claude/data/models.json` (CMAT's catalog lives there, in its own format),
which comes with a repository and so may only *add*: models nobody else knows, and the
project's default model. Where it prices a model the layers above already price, it is
ignored and said so (`Catalog.notes`): a repository never changes a price the user's catalogs
set (an old `"force": true` is ignored). The ledger is user-wide: a request must
cost the same whichever folder a scan ran from. Every non-built-in pattern is checked for
catastrophic backtracking (`backtracking_risk`) before it is ever matched.

The user's and a project's layers are validated with pydantic, and errors name the file, the
model and the field; the bundled layer is trusted as shipped (the test suite and `cmat models
validate` validate it). Validation is the slow part of start-up (pydantic's import alone costs
~100 ms), so the merged catalog is also cached, keyed on each layer's path, size and mtime: the
hooks and the status line import pydantic only after a user's or project's catalog changed.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from cmat import paths
from cmat.catalog.schema import PRICE_FIELDS, Catalog, ModelEntry, Prices, Pricing, Tier
from cmat.errors import CatalogError, NotFound
from cmat.fileio import atomic_write_bytes
from cmat.version import __version__

# Fields older CMAT catalogs carry that cmat has no use for; accepted so such files still load.
# "force" let a project reprice known models once; no layer may now (see the docstring).
_LEGACY_FIELDS = {"api_id", "currency", "per_tokens", "force"}
CATALOG_LIMIT = 16 * 2**20


def read_json(path: Path) -> Any:
    """A catalog file, through the one safe reader (a project's comes with a repository)."""
    return _parsed(path, _read_catalog(path))


def _read_catalog(path: Path) -> bytes:
    from cmat.untrusted import Unreadable, read_untrusted

    try:
        data = read_untrusted(path, CATALOG_LIMIT)
    except Unreadable as exc:
        raise CatalogError(f"cannot read model catalog {exc.message}", exc.hint) from None
    if data is None:
        raise NotFound(f"model catalog {path} does not exist")
    return data


def _parsed(path: Path, data: bytes) -> Any:
    try:
        return orjson.loads(data)
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


def check_pattern(path: Path, model_id: str, pattern: str) -> None:
    """Refuse a pattern that does not compile or could backtrack for ever on a hostile model
    id (a project's catalog comes with a repository; docs/security.md). Here, not in
    ModelEntry: entries built from the validation cache skip it."""
    try:
        re.compile(pattern)
        problem = backtracking_risk(pattern)
    except re.error as exc:
        problem = f"does not compile: {exc}"
    if problem:
        raise CatalogError(f"model catalog {path}: model {model_id}: field pattern: "
                           f"{pattern!r} {problem}")


def backtracking_risk(pattern: str) -> str | None:
    """Why matching `pattern` may take exponential time, or None. A quantifier that repeats
    more than once may hold only single characters (literals, classes, `.`): no quantifier
    inside it, no alternation, no back-reference. Model-id patterns never need more, and what
    they then match costs time linear in the id."""
    from re import _constants as c
    from re import _parser

    repeats = (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT))

    def walk(items, repeated: bool) -> str | None:
        for op, arg in items:
            if op in repeats:
                _, high, body = arg
                many = high > 1
                if repeated and many:
                    return "nests one quantifier in another (catastrophic backtracking)"
                found = walk(body, repeated or many)
            elif op is c.SUBPATTERN:
                found = walk(arg[-1], repeated)
            elif op is c.BRANCH:
                if repeated:
                    return "repeats an alternation (catastrophic backtracking)"
                found = next((p for p in (walk(b, repeated) for b in arg[1]) if p), None)
            elif op in (c.ASSERT, c.ASSERT_NOT):
                found = walk(arg[1], repeated)
            elif op in (c.GROUPREF, c.GROUPREF_EXISTS):
                return "uses a back-reference, which a model id never needs"
            else:
                found = None
            if found:
                return found
        return None

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": re's own note
        return walk(_parser.parse(pattern), False)


def validation_error(path: Path, model_id: str, exc: Exception) -> CatalogError:
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


class _Validator:
    """Checks merged entries against the schema with pydantic, imported on first use: a
    catalog of the built-in layer alone (the common case) never needs it."""

    def __init__(self) -> None:
        self.adapter = None

    def check(self, path: Path, model_id: str, entry: dict) -> None:
        from pydantic import TypeAdapter, ValidationError

        if self.adapter is None:
            self.adapter = TypeAdapter(ModelEntry)
        try:
            self.adapter.validate_python(entry)
        except ValidationError as exc:
            raise validation_error(path, model_id, exc) from None


def _apply_layer(state: _Merge, layer: Layer, validator: _Validator | None) -> None:
    """Merge one layer into `state`; each entry it touched is checked by `validator`, its
    pattern by check_pattern (None: the layer is the bundled catalog, which the test suite
    validates, patterns included: 10-20 ms of a first run, before its catalog is cached)."""
    path = layer.path
    data = _read_catalog(path)  # once: what is parsed is what the version names
    entries, default, layer_version = _layer_entries(path, _parsed(path, data))
    if layer_version and layer.origin == "built-in":
        state.version = str(layer_version)
    elif layer.origin != "built-in":  # the version says which content priced a request
        import hashlib  # a user's or project's layer only: the hooks' common case skips it

        digest = hashlib.sha1(data).hexdigest()[:8]
        state.version = f"{state.version}+{layer.origin}.{digest}"
    touched = []
    same_as: dict[str, str] = {}  # a project's id -> the known model it stands for
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise CatalogError(f"model catalog {path}: entry {index}: needs a string 'id'")
        known = state.known_model(raw) if not layer.trusted else None
        raw = _normalise_legacy(raw)
        model_id = raw["id"]
        if known is not None:
            same_as[model_id] = known["id"]
            if _prices_of(raw) != _prices_of(known):
                state.notes.append(
                    f"{path} prices {model_id} differently from the {known['origin']} catalog "
                    f"({known['id']}); the {known['origin']} price is used (a project's "
                    "catalog may add models, never reprice them: change your own catalog "
                    "with 'cmat models add' if the price is right)")
            continue
        if raw.get("is_default") is True:
            for other in state.merged.values():
                other["is_default"] = False
        current = state.merged.get(model_id)
        raw["origin"] = layer.origin
        state.merged[model_id] = _merge(current, raw) if current is not None else raw
        touched.append(model_id)
    if default is not None:
        default = same_as.get(default, default)
        if default not in state.merged:
            raise CatalogError(f"model catalog {path}: default_model {default!r} is not a model")
        for model_id, entry in state.merged.items():
            entry["is_default"] = model_id == default
    for model_id in touched if validator is not None else ():
        validator.check(path, model_id, state.merged[model_id])
        check_pattern(path, model_id, state.merged[model_id]["pattern"])


def _merge_layers(layers: list[Layer], check_builtin: bool = False
                  ) -> tuple[list[dict], str, list[str], list[str]]:
    """Merge the raw layers and validate each entry a layer touched, naming that layer (the
    built-in layer only when `check_builtin`). A project layer that does not load is left
    out, and said so."""
    validator = _Validator()
    state = _Merge()
    for layer in layers:
        checked = validator if check_builtin or layer.origin != "built-in" else None
        if layer.trusted:
            _apply_layer(state, layer, checked)
            continue
        before = copy.deepcopy(state)
        try:
            _apply_layer(state, layer, checked)
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
    """A ModelEntry from a checked catalog entry (no second validation)."""
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
    catalog = merged_catalog(layers)
    payload = {"key": key, "version": catalog.version, "sources": catalog.sources,
               "notes": catalog.notes, "models": [dataclasses.asdict(m) for m in catalog.models]}
    try:
        atomic_write_bytes(cache, orjson.dumps(payload))
    except OSError:
        pass  # a read-only cache directory only costs speed
    return catalog


def merged_catalog(layers: list[Layer]) -> Catalog:
    """The catalog these layers make, validated afresh (no cache)."""
    raw_models, version, sources, notes = _merge_layers(layers)
    return Catalog(version, tuple(_entry_from_validated(m) for m in raw_models), tuple(sources),
                   tuple(notes))


def file_entries(path: Path, doc: Any) -> list[dict]:
    """The entries of a catalog file in today's form (older cmat and CMAT files included),
    not yet validated."""
    raw, _, _ = _layer_entries(path, doc)
    return [_normalise_legacy(e) for e in raw if isinstance(e, dict) and "id" in e]


def iter_layer_errors(project: Path) -> Iterable[str]:
    """Load every layer in turn and report what stops it loading, and what a project layer
    says that is not followed (for `cmat models validate`)."""
    layers = catalog_layers(project)
    for count in range(1, len(layers) + 1):
        try:
            notes = _merge_layers(layers[:count], check_builtin=True)[3]
        except (CatalogError, NotFound) as exc:
            yield str(exc)
            return
    yield from (note for note in notes if note.endswith("the project's catalog is ignored"))


def unannounced_notes(catalog: Catalog) -> list[str]:
    """The notes not said before (each is said once, not on every command or hook);
    they count as said from now on."""
    if not catalog.notes:
        return []
    import hashlib

    record = paths.state_home() / "catalog-notes-said.json"
    try:
        said = set(orjson.loads(record.read_bytes()))
    except (OSError, ValueError, TypeError):
        said = set()
    fresh = [note for note in catalog.notes
             if hashlib.sha1(note.encode()).hexdigest() not in said]
    if fresh:
        said |= {hashlib.sha1(note.encode()).hexdigest() for note in fresh}
        try:
            atomic_write_bytes(record, orjson.dumps(sorted(said)))
        except OSError:
            pass  # said again next time: better than never
    return fresh
