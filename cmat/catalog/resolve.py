"""Which catalog entry a transcript's model id is (ModelService), and what is wrong with a
catalog's patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cmat import paths
from cmat.catalog.load import load_catalog
from cmat.catalog.schema import Catalog, ModelEntry
from cmat.errors import NotFound

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
            raise NotFound(f"unknown model {model_id!r}", self._suggest(model_id))
        return entry

    def _suggest(self, model_id: str) -> str:
        """The catalog ids a mistyped or partial id most likely meant, newest first."""
        import difflib

        ids = [entry.id for entry in self.catalog.models]
        close = [i for i in ids if model_id.lower() in i.lower()][:4] or \
            difflib.get_close_matches(model_id, ids, n=3, cutoff=0.6)
        return (f"did you mean {', '.join(close)}? " if close else "") + \
            "see 'cmat models list'"

    def get_default(self) -> ModelEntry:
        for entry in self.catalog.models:
            if entry.is_default:
                return entry
        return self.catalog.models[0]

    def reload(self) -> None:
        """Forget the loaded catalog (after a catalog file changed)."""
        self._catalog = None
        self.__dict__.pop("_compiled", None)
        self.__dict__.pop("_by_id", None)
        self._resolved.clear()

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


