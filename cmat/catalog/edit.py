"""Writing the user's catalog layer: `cmat models add`, `set-default` and `update`; never the
bundled catalog, never a project's."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from cmat import clock, paths
from cmat.catalog.load import check_pattern, read_json, validation_error
from cmat.catalog.resolve import ModelService
from cmat.catalog.schema import ModelEntry
from cmat.errors import CatalogError, UsageError
from cmat.fileio import atomic_write_bytes, file_lock


def default_pattern(model_id: str) -> str:
    """The pattern `cmat models add` gives a model: its id, dated or not, any provider prefix."""
    return (r"(?:^|[/.])" + re.escape(model_id)
            + r"(?:[-@]\d{8})?(?:-v\d+(?::\d+)?)?(?:\[1m\])?$")


def add_model(model_id: str, *, name: str | None, pattern: str | None,
              input_price: float, output_price: float, cache_write: float | None = None,
              cache_write_1h: float | None = None, cache_read: float | None = None) -> Path:
    """Add (or replace the prices of) a model in the user's catalog file, validated first."""
    return save_user_entries([catalog_entry(model_id, name, pattern, input_price, output_price,
                                            cache_write, cache_write_1h, cache_read)])


def catalog_entry(model_id: str, name: str | None, pattern: str | None, input_price: float,
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
            raise validation_error(target, entry["id"], exc) from None
        check_pattern(target, entry["id"], entry["pattern"])
    with file_lock(target):
        doc: dict = {"models": []}
        if target.is_file():
            doc = read_json(target)
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
    from datetime import datetime

    return datetime.fromtimestamp(clock.now()).date().isoformat()


def set_default(service: ModelService, model_id: str) -> Path:
    """Mark `model_id` as the default in the user's catalog file (never the bundled one)."""
    entry = service.get(model_id)
    target = paths.user_catalog()
    with file_lock(target):
        doc: dict = {"models": []}
        if target.is_file():
            doc = read_json(target)
            if not isinstance(doc, dict) or not isinstance(doc.get("models"), (list, dict)):
                raise CatalogError(f"model catalog {target}: expected an object with 'models'")
        doc.pop("default_model", None)
        doc["default_model"] = entry.id
        models = doc["models"]
        known = {m.get("id") for m in models} if isinstance(models, list) else set(models)
        if entry.id not in known:
            if not isinstance(models, list):
                raise UsageError(
                    f"{target} uses CMAT's catalog format and has no model {entry.id!r}",
                    "add the model to that file first")
            models.append({"id": entry.id})
        for model in (models if isinstance(models, list) else models.values()):
            model.pop("is_default", None)
        atomic_write_bytes(target, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    service.reload()
    return target
