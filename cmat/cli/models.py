"""`cmat models ...`: the price catalog."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from cmat.cli.options import json_option, project_option, resolve_project
from cmat.cli.output import echo, emit_json, table


def _service(project: Path | None):
    from cmat.catalog import ModelService

    return ModelService(resolve_project(project))


def _price(value: float) -> str:
    return f"${value:g}"


@click.group()
def models() -> None:
    """Inspect and edit the model price catalog (USD per million tokens)."""


@models.command("list")
@project_option
@json_option
def list_models(project: Path | None, as_json: bool) -> None:
    """Every model in the catalog with its prices."""
    service = _service(project)
    entries = service.list_all()
    if as_json:
        emit_json({"catalog_version": service.catalog.version,
                   "sources": list(service.catalog.sources),
                   "models": [dataclasses.asdict(m) for m in entries]})
        return
    rows = []
    for m in entries:
        p = m.pricing
        extras = []
        if p.long_context:
            extras.append(f">{p.long_context.threshold_tokens // 1000}k: "
                          f"{_price(p.long_context.input)}/{_price(p.long_context.output)}")
        if p.fast:
            extras.append(f"fast: {_price(p.fast.input)}/{_price(p.fast.output)}")
        rows.append([("* " if m.is_default else "  ") + m.id, m.name, _price(p.input),
                     _price(p.output), _price(p.cache_write), _price(p.cache_write_1h),
                     _price(p.cache_read), "; ".join(extras)])
    echo(table(rows, ["Id", "Name", "Input", "Output", "5m write", "1h write", "Read", "Also"],
               numeric_from=2))
    echo(f"\n* default   catalog {service.catalog.version}   USD per million tokens")


@models.command()
@click.argument("model_id")
@project_option
@json_option
def show(model_id: str, project: Path | None, as_json: bool) -> None:
    """One model: MODEL_ID may be a catalog id or any id a transcript carries."""
    entry = _service(project).get(model_id)
    data = dataclasses.asdict(entry)
    if as_json:
        emit_json(data)
        return
    for key in ("id", "name", "description", "pattern", "max_tokens", "context_window",
                "is_default", "source", "last_updated"):
        echo(f"{key + ':':16}{data[key]}")
    echo("pricing (USD per million tokens):")
    for key, value in data["pricing"].items():
        if isinstance(value, dict):
            echo(f"  {key}: " + ", ".join(f"{k} {v:g}" for k, v in value.items()))
        elif value is not None:
            echo(f"  {key + ':':20}{value:g}")


@models.command("set-default")
@click.argument("model_id")
@project_option
def set_default(model_id: str, project: Path | None) -> None:
    """Make MODEL_ID the default (written to the user catalog, never the installed one)."""
    service = _service(project)
    target = service.set_default(model_id)
    echo(f"Default model: {service.get_default().id} (written to {target})")


@models.command()
@project_option
@json_option
def validate(project: Path | None, as_json: bool) -> None:
    """Check every catalog layer: schema, patterns, and ids two models both claim.

    Exits 1 when a problem is found.
    """
    from cmat.catalog import iter_layer_errors

    resolved = resolve_project(project)
    problems = list(iter_layer_errors(resolved))
    if not problems:
        problems = _service(project).problems()
    if as_json:
        emit_json({"ok": not problems, "problems": problems})
    else:
        for problem in problems:
            echo(f"problem: {problem}")
        echo("catalog OK" if not problems else f"{len(problems)} problem(s)")
    raise SystemExit(1 if problems else 0)


@models.command()
@click.argument("model_id")
@click.option("--name", help="Display name (default: MODEL_ID).")
@click.option("--pattern", help="Regex matched against transcript model ids "
                                "(default: MODEL_ID, with optional date and provider prefix).")
@click.option("--input", "input_price", type=float, required=True, help="USD per MTok input.")
@click.option("--output", "output_price", type=float, required=True, help="USD per MTok output.")
@click.option("--cache-write", type=float, help="5-minute cache write (default 1.25x input).")
@click.option("--cache-write-1h", type=float, help="1-hour cache write (default 2x input).")
@click.option("--cache-read", type=float, help="Cache read (default 0.1x input).")
@project_option
def add(model_id: str, name: str | None, pattern: str | None, input_price: float,
        output_price: float, cache_write: float | None, cache_write_1h: float | None,
        cache_read: float | None, project: Path | None) -> None:
    """Add or correct MODEL_ID's prices in the user catalog."""
    from cmat.catalog import add_model

    target = add_model(resolve_project(project), model_id, name=name, pattern=pattern,
                       input_price=input_price, output_price=output_price,
                       cache_write=cache_write, cache_write_1h=cache_write_1h,
                       cache_read=cache_read)
    echo(f"Saved {model_id} to {target}")
