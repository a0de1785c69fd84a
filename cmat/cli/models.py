"""`cmat models ...`: the price catalog."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from cmat import clock, paths
from cmat.cli.by_a_person import by_a_person
from cmat.cli.options import output_options, project_option
from cmat.cli.output import count, echo, emit_json, field_text, table, wrapped
from cmat.errors import OK, PROBLEMS_FOUND, leave


def _service(project: Path | None):
    from cmat.catalog import ModelService

    return ModelService(paths.project_dir(project))


def _price(value: float) -> str:
    return f"${value:g}"


def _extras(pricing) -> str:
    """A model's price rules in a few words: tiers, fast mode, residency, price changes."""
    words = []
    for tier in pricing.tiers:
        words.append(f">{tier.above_prompt_tokens // 1000}k prompt: "
                     f"{_price(tier.prices.input)}/{_price(tier.prices.output)}")
    if pricing.fast_multiplier:
        words.append(f"fast x{pricing.fast_multiplier:g}")
    elif pricing.fast:
        words.append(f"fast: {_price(pricing.fast.input)}/{_price(pricing.fast.output)}")
    for geo, multiplier in pricing.geo_multipliers.items():
        words.append(f"{geo} x{multiplier:g}")
    return "; ".join(words)


@click.group()
def models() -> None:
    """The model price catalog (USD per million tokens).

    Layers: the built-in catalog, your own (~/.config/cmat/models.json, or $CMAT_MODELS),
    and a project's .claude/data/models.json (CMAT's format is read too), which may only add
    models and set the project's default: where it prices a known model differently, the
    built-in or your price stands, and cmat says so.
    """


@models.command("list")
@click.option("--sources", is_flag=True,
              help="List each model's source (the official pages its prices were checked "
                   "against) and the date they were, instead of the prices.")
@project_option
@output_options
def list_models(sources: bool, project: Path | None, as_json: bool) -> None:
    """Every model in the catalog with its prices, price rules, source and date."""
    service = _service(project)
    entries = list(service.catalog.models)
    if sources and not as_json:
        for m in entries:
            state = "" if m.confirmed else ", UNCONFIRMED: reported elsewhere"
            echo(f"{m.id} (checked {m.last_updated or '-'}, {m.origin}{state}):")
            for source in m.source.split("; "):
                echo(f"  {source}")
        return
    if as_json:
        emit_json({"catalog_version": service.catalog.version,
                   "sources": list(service.catalog.sources),
                   "notes": list(service.catalog.notes),
                   "models": [dataclasses.asdict(m) for m in entries]})
        return
    rows = []
    for m in entries:
        p = m.pricing_on(_today())
        rows.append([("* " if m.is_default else "  ") + m.id, _price(p.input), _price(p.output),
                     _price(p.cache_write), _price(p.cache_write_1h), _price(p.cache_read),
                     _extras(p), m.last_updated + (f" ({m.origin})" if m.origin != "built-in"
                                                   else "") + ("" if m.confirmed else " ?")])
    echo(table(rows, ["Id", "Input", "Output", "5m write", "1h write", "Read", "Rules",
                      "Checked"], numeric_from=1, cut=(0, 6, 7)))
    echo(f"\n* default; catalog {service.catalog.version}; USD per million tokens, prices "
         "in force today." + ("\n? prices reported elsewhere, not yet confirmed by the "
                              "provider's own page." if not all(m.confirmed for m in entries)
                              else "") + "\nSources: cmat models list --sources")
    for note in service.catalog.notes:
        echo(f"note: {note}")


@models.command()
@click.argument("model_id", required=False)
@project_option
@output_options
def show(model_id: str | None, project: Path | None, as_json: bool) -> None:
    """One model: MODEL_ID may be a catalog id or any id a transcript carries.

    Without MODEL_ID, the default model (cmat models set-default).
    """
    service = _service(project)
    entry = service.get(model_id) if model_id else service.get_default()
    data = dataclasses.asdict(entry)
    if as_json:
        emit_json(data)
        return
    for key in ("id", "name", "description", "pattern", "max_tokens", "context_window",
                "is_default", "released", "origin", "source", "confirmed", "last_updated"):
        echo(wrapped(f"{key + ':':16}", field_text(data[key])))
    for row in (*entry.history, entry.pricing):
        since = f"from {row.effective_from}" if row.effective_from else "since release"
        echo(f"pricing {since} (USD per million tokens):")
        for key in ("input", "output", "cache_write", "cache_write_1h", "cache_read",
                    "web_search_per_1k"):
            echo(f"  {key + ':':20}{getattr(row, key):g}")
        if _extras(row):
            echo(wrapped(f"  {'rules:':20}", _extras(row)))


@models.command("set-default")
@click.argument("model_id")
@project_option
def set_default(model_id: str, project: Path | None) -> None:
    """Make MODEL_ID the default model (written to your catalog, never the built-in one).

    The default is the model `cmat models show` shows without an id, and the one estimates
    are priced on when none is named. It never changes the price of a transcript's own
    model: every request is priced as the model that served it.
    """
    from cmat.catalog.edit import set_default as write_default

    service = _service(project)
    target = write_default(service, model_id)
    chosen, in_force = service.get(model_id).id, service.get_default()
    if in_force.id == chosen:
        echo(f"Default model: {chosen} (written to {target})")
        return
    # A project's catalog (CMAT keeps one) may set its own default, which wins in it.
    echo(f"Your default model is now {chosen} (written to {target}); it applies "
         f"everywhere but in this project, whose catalog "
         f"({paths.project_catalog(service.project)}) sets default_model "
         f"{in_force.id}: a project's default applies in its project. Change it there "
         "(CMAT's own setting) to change it here.")


@models.command()
@project_option
@output_options
def validate(project: Path | None, as_json: bool) -> None:
    """Check every catalog layer: schema, patterns, ids two models both claim, and what a
    project's catalog says that is not followed.

    Exits 1 when a problem is found.
    """
    from cmat.catalog.load import iter_layer_errors

    resolved = paths.project_dir(project)
    problems = list(iter_layer_errors(resolved))
    notes: list[str] = []
    if not problems:
        service = _service(project)
        problems = service.problems()
        notes = list(service.catalog.notes)
    if as_json:
        emit_json({"ok": not problems, "problems": problems, "notes": notes})
    else:
        for problem in problems:
            echo(f"problem: {problem}")
        for note in notes:
            echo(f"note: {note}")
        echo("catalog OK" if not problems else f"{len(problems)} problem(s)")
    leave(PROBLEMS_FOUND if problems else OK)


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
def add(model_id: str, name: str | None, pattern: str | None, input_price: float,
        output_price: float, cache_write: float | None, cache_write_1h: float | None,
        cache_read: float | None) -> None:
    """Add or correct MODEL_ID's prices in your catalog (~/.config/cmat/models.json).

    Then `cmat ledger reprice` prices the requests already in the ledger with them.
    """
    from cmat.catalog.edit import add_model, catalog_entry

    if pattern:
        by_a_person(f"a pattern of your own for {model_id} (it may price other models)")
    known = _service(None).get_by_pattern(model_id)
    if known is not None:
        wanted = catalog_entry(model_id, name, pattern, input_price, output_price, cache_write,
                               cache_write_1h, cache_read)["pricing"]
        lower = [kind for kind, price in wanted.items()
                 if price < getattr(known.pricing, kind)]
        if lower:
            by_a_person(f"pricing {model_id} lower ({', '.join(lower)})")
    target = add_model(model_id, name=name, pattern=pattern, input_price=input_price,
                       output_price=output_price, cache_write=cache_write,
                       cache_write_1h=cache_write_1h, cache_read=cache_read)
    echo(f"Saved {model_id} to {target}; price the ledger with it: cmat ledger reprice")


@models.command()
@click.option("--no-scan", is_flag=True, help="Use the ledger as it is.")
@output_options
def check(no_scan: bool, as_json: bool) -> None:
    """Every model id in your history without a price, with its requests and tokens, and
    every one priced from an unconfirmed source (prices others reported that the provider's
    own page has not been seen to confirm).

    Exits 1 when an unpriced one is found, with the command that prices it.
    """
    from cmat.cli.report import scan_first

    ledger, service = scan_first(no_scan, (), quiet=True)
    with ledger:
        rows = ledger.unpriced_models()
        used = ledger.models_used()
    missing = [r for r in rows if service.get_by_pattern(r["model"]) is None]
    stale = [r for r in rows if service.get_by_pattern(r["model"]) is not None]
    unconfirmed = [dict(r, entry=entry.id, source=entry.source) for r in used
                   if (entry := service.get_by_pattern(r["model"])) and not entry.confirmed]
    if as_json:
        emit_json({"unpriced": missing, "priced_since": stale, "unconfirmed": unconfirmed})
        leave(PROBLEMS_FOUND if missing else OK)
    for row in missing:
        echo(f"{row['model']}: {count(row['requests'], 'request')}, {row['tokens']:,} tokens "
             f"unpriced -> cmat models add {row['model']} --input P --output P")
    if stale:
        echo(f"{count(sum(r['requests'] for r in stale), 'request')} stored unpriced, of "
             "models the catalog now prices -> cmat ledger reprice")
    for row in unconfirmed:
        echo(f"{row['model']}: {count(row['requests'], 'request')} priced as {row['entry']}"
             f", from an unconfirmed source ({row['source']})")
    if not missing and not stale:
        echo("Every model in the history has a price"
             + (", some from an unconfirmed source." if unconfirmed else "."))
    leave(PROBLEMS_FOUND if missing else OK)


@models.command()
@click.argument("source")
@click.option("--prefer-source", is_flag=True,
              help="Take the source's prices even for models the built-in catalog prices.")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@output_options
def update(source: str, prefer_source: bool, dry_run: bool, as_json: bool) -> None:
    """Merge a price file into your catalog: LiteLLM's model_prices_and_context_window.json,
    or a cmat catalog. SOURCE is a path, or an http(s) URL (fetched only when you give one).

    The built-in catalog wins where both price a model, unless --prefer-source. Prices LiteLLM
    is known to get wrong (1-hour cache writes copied from another model) are corrected to
    the rule (2x input) and reported. Then `cmat ledger reprice` prices the ledger with them.
    """
    from cmat.catalog.update import update_user_catalog

    if not dry_run:
        by_a_person("merging a price file (it may price models lower)")
    result = update_user_catalog(source, prefer_source=prefer_source, dry_run=dry_run)
    if as_json:
        emit_json(result)
        return
    for kind in ("added", "changed", "corrected", "skipped"):
        for line in result[kind]:
            echo(f"{kind}: {line}")
    verb = "Would write" if dry_run else "Wrote"
    echo(f"{verb} {result['target']}: {len(result['added'])} added, "
         f"{len(result['changed'])} changed, {len(result['skipped'])} skipped")
    if (result["added"] or result["changed"]) and not dry_run:
        echo("Price the requests already in the ledger with them: cmat ledger reprice")


def _today() -> str:
    from cmat.periods import utc_day

    return utc_day(clock.now())
