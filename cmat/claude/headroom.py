"""The budget check before a tool call (or a prompt), answered from what the last full check
left: the headroom cache.

A full check (cmat.claude.runtime.check_budgets) imports the session's new lines, sums every
budget in the ledger, and fires alerts: most of its time is the interpreter loading what that
takes. When it finds every budget far from its limit and from its next alert threshold, it
writes down that distance (`usd`, `tokens`), with what it read: the ledger's version, the
size and time of every file a budget depends on (configs, catalogs, the task marker and
queue, the team cache, the session's folders) and how far it read each of the session's
transcripts.

The next check (`answer`) allows silently, loading nothing but `os` (and `sqlite3` only when
another process wrote the ledger meanwhile), when it can prove the full check would too: the
same files, the same session, and an upper bound of what was spent since is below the
distance. The bound is the session's appended transcript lines priced at the catalog's
highest price of each token kind (fast mode and long-prompt prices where the line could be
such a request; each line counted, copies of one request included), plus every ledger row
written since (`seq`), whatever its project, agent or day. It can only over-estimate: when it
reaches the distance, or anything else differs, the full check runs and writes a new cache.
Not used while CMAT_OVERRIDE_LIMIT is set. Under a concurrency or run limit, the full check
records the session as at work: the cache then answers for a minute at most, so that the
record is never older than that (runtime.AT_WORK_REFRESH_SECONDS; a session counts as at
work for `active_minutes`, and a prompt of a session at work is never held). Under a run
limit each run (the main thread, or one subagent's run) has a limit, and a cache, of its own:
a payload's subagent is its top-level `agent_id`, read with the standard library's C JSON
scanner when the key is in the payload at all.

Standard library only, and only `os`, `sys`, `time` and `marshal` at import (with cmat.clock):
`json`, `re`, `pathlib`, `typing` and orjson each cost as much as the whole answer.
"""

from __future__ import annotations

import marshal
import os
import sys

from cmat import clock

FORMAT = f"cmat-headroom-2-py{sys.version_info[0]}.{sys.version_info[1]}"
MAX_APPENDED_BYTES = 4 << 20  # more new transcript than this: the full check reads it
USAGE_MARK = b'"output_tokens"'  # a line without it reports no usage (as the full reader)
COUNTS = (b'"input_tokens":', b'"output_tokens":', b'"cache_creation_input_tokens":',
          b'"cache_read_input_tokens":', b'"web_search_requests":')


# What a cached answer depends on besides files (the headroom's and the status line's): the
# task, enhancement and agent named for the session, the time zone of "today", where cmat
# keeps its configuration and data.
ENVIRONMENT = ("CMAT_CURRENT_TASK_ID", "CMAT_ENHANCEMENT", "CMAT_AGENT", "CMAT_MODELS",
               "CMAT_LEDGER", "TZ", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
               "CLAUDE_CONFIG_DIR")


def environment() -> dict:
    return {name: os.environ.get(name) for name in ENVIRONMENT}


def cache_folder(kind: str = "headroom") -> str:
    """cmat's cache folder of one kind (cmat.paths.cache_home, written with `os` alone)."""
    home = os.path.expanduser("~")
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"),
                        "cmat", kind)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:120]


def session_file(kind: str, session_id: str, form: str) -> str:
    """The cache file of one session, in a folder of `kind`, in its format `form`."""
    return os.path.join(cache_folder(kind), f"{_safe(session_id)}.{form}")


def cache_file(session_id: str, agent_id: str | None = None) -> str:
    """A session's cache; with `agent_id`, that of a subagent's run in it (under a run limit,
    each run's headroom is its own)."""
    return session_file("headroom", session_id,
                        FORMAT if agent_id is None else f"{_safe(agent_id)}.{FORMAT}")


def fingerprint(path: str) -> tuple[str, int, int]:
    """(path, size, mtime in ns) of a file or folder; size -1 when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return path, -1, -1
    return path, st.st_size, st.st_mtime_ns


def leading_fields(raw: bytes) -> dict[str, str]:
    """The string fields a hook payload starts with, up to its first value that is not a
    plain string (Claude Code writes `session_id`, `transcript_path`, `cwd` ... first). A
    string with an escape in it ends the scan: the full check reads such a payload."""
    fields: dict[str, str] = {}
    at = raw.find(b"{") + 1
    if at == 0 or raw[:at - 1].strip():
        return fields
    end = len(raw)
    while True:
        while at < end and raw[at] in b" \t\r\n,":
            at += 1
        if at >= end or raw[at] != 0x22:  # '"'
            return fields
        close = raw.find(b'"', at + 1)
        if close < 0 or b"\\" in raw[at + 1:close]:
            return fields
        key = raw[at + 1:close]
        at = close + 1
        while at < end and raw[at] in b" \t\r\n":
            at += 1
        if at >= end or raw[at] != 0x3A:  # ':'
            return fields
        at += 1
        while at < end and raw[at] in b" \t\r\n":
            at += 1
        if at >= end or raw[at] != 0x22:
            return fields
        close = raw.find(b'"', at + 1)
        if close < 0 or b"\\" in raw[at + 1:close]:
            return fields
        try:
            fields[key.decode()] = raw[at + 1:close].decode()
        except UnicodeDecodeError:
            return fields
        at = close + 1


def _largest(line: bytes, key: bytes) -> int:
    """The largest number after `key` anywhere in `line` (a forged copy of a usage field in a
    tool's input can only raise the bound, never lower it)."""
    largest, at = 0, line.find(key)
    while at >= 0:
        start = at + len(key)
        while start < len(line) and line[start] in b" \t":
            start += 1
        stop = start
        while stop < len(line) and 0x30 <= line[stop] <= 0x39:
            stop += 1
        if stop > start:
            largest = max(largest, int(line[start:stop]))
        at = line.find(key, stop)
    return largest


def appended_bound(data: bytes, prices: dict) -> tuple[float, int, int]:
    """An upper bound of the cost of the usage lines in `data` (complete lines only: a torn
    last line is left, as the full reader leaves it), and their tokens: input + output, and
    all kinds."""
    usd = 0.0
    io_tokens = all_tokens = 0
    last = data.rfind(b"\n")
    for line in data[:last + 1].split(b"\n"):
        if USAGE_MARK not in line:
            continue
        inputs, output, writes, reads, searches = (_largest(line, key) for key in COUNTS)
        worst = b"fast" in line or inputs + writes + reads > prices["long_at"]
        rate = prices["worst" if worst else "normal"]
        usd += (inputs * rate[0] + output * rate[1] + writes * rate[2] + reads * rate[3]) \
            / 1e6 + searches * prices["search"]
        io_tokens += inputs + output
        all_tokens += inputs + output + writes + reads
    return usd, io_tokens, all_tokens


def read_appended(path: str, offset: int, size: int, inode: int) -> bytes | None:
    """The bytes of `path` from `offset` to `size`, read only if it is still the regular
    file it was (opened without waiting, as the safe reader opens: a FIFO swapped in after the
    `stat` must not hang the check); None otherwise."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_ino != inode:
            return None
        return os.pread(fd, size - offset, offset)
    finally:
        os.close(fd)


def session_growth(sources) -> list[tuple[str, int, bytes]] | None:
    """What a session's files gained since a full pass read each to its offset: (path, that
    offset, the new bytes) of each that grew; None when one was replaced or rewritten (the
    full pass reads it again), or when all gained more than MAX_APPENDED_BYTES."""
    grown = []
    total = 0
    for path, offset, inode in sources:
        st = os.stat(path)
        if st.st_ino != inode or st.st_size < offset:
            return None
        total += st.st_size - offset
        if total > MAX_APPENDED_BYTES:
            return None
        if st.st_size > offset:
            data = read_appended(path, offset, st.st_size, inode)
            if data is None:
                return None
            grown.append((path, offset, data))
    return grown


def _ledger_since(cache: dict) -> tuple[float, int, int] | None:
    """What every ledger row written since the cache adds (USD, input + output tokens, all
    tokens); None when a session was attributed meanwhile and a budget depends on it, or the
    ledger is not the one the cache was written from."""
    import sqlite3

    from_seq = cache["version"]
    db = sqlite3.connect(f"file:{cache['ledger']}?mode=ro", uri=True, timeout=1.0)
    try:
        found = dict(db.execute("SELECT key, value FROM meta WHERE key IN"
                                " ('requests_version', 'ledger_id')"))
        if found.get("ledger_id") != cache["ledger_id"] \
                or found.get("requests_version", -1) < from_seq:
            return None  # another ledger now (rebuilt, restored): its rows tell nothing
        if found["requests_version"] == from_seq:
            return 0.0, 0, 0
        if cache["sessions_matter"] and db.execute(
                "SELECT 1 FROM sessions WHERE seq >= ? LIMIT 1", (from_seq,)).fetchone():
            return None
        usd, io_tokens, all_tokens = db.execute(
            "SELECT coalesce(sum(cost_usd), 0), coalesce(sum(input_tokens + output_tokens),"
            " 0), coalesce(sum(input_tokens + output_tokens + cache_creation_tokens"
            " + cache_read_tokens), 0) FROM requests WHERE seq >= ?", (from_seq,)).fetchone()
        return float(usd), int(io_tokens), int(all_tokens)
    finally:
        db.close()


def answer(event: str, raw: bytes) -> bool:
    """True when the cache proves this check allows, silently (module docstring); False
    sends it to the full check. Never raises."""
    try:
        return _answer(event, raw)
    except Exception:  # noqa: BLE001 - any doubt is the full check's to settle
        return False


def _answer(event: str, raw: bytes) -> bool:
    if os.environ.get("CMAT_OVERRIDE_LIMIT", "").strip():
        return False
    project = os.environ.get("CLAUDE_PROJECT_DIR")
    fields = leading_fields(raw)
    session, transcript = fields.get("session_id"), fields.get("transcript_path")
    if not project or not session or not transcript:
        return False
    agent = calling_agent(raw)
    cache = load(cache_file(session, agent), FORMAT) if agent is not None else None
    if cache is None:
        cache = load(cache_file(session), FORMAT)
    now = clock.now()
    if cache is None or cache["project"] != project or cache["transcript"] != transcript \
            or event not in cache["events"] or now >= cache["expires"]:
        return False
    if cache["per_run"] and cache["agent"] != agent:  # another run: another limit
        return False
    if any(fingerprint(path) != (path, size, mtime) for path, size, mtime in cache["files"]) \
            or cache["environment"] != environment():
        return False
    usd = 0.0
    io_tokens = all_tokens = 0
    grown = session_growth(cache["sources"])
    if grown is None:
        return False
    for _, _, data in grown:
        bound = appended_bound(data, cache["prices"])
        usd += bound[0]
        io_tokens += bound[1]
        all_tokens += bound[2]
    if ledger_files(cache["ledger"]) != list(cache["ledger_files"]):
        written = _ledger_since(cache)
        if written is None:
            return False
        usd += written[0]
        io_tokens += written[1]
        all_tokens += written[2]
    tokens = all_tokens if cache["count_all_tokens"] else io_tokens
    return usd < cache["usd"] and tokens < cache["tokens"]


# --- JSON without the json module ----------------------------------------------------------


class _Options:
    """What the standard library's C scanner reads of a JSONDecoder: json.loads's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"),
                      "-Infinity": float("-inf")}.__getitem__


def parse_json(text: str):
    """`json.loads(text)`, without importing `json` (and `re` with it, more than a refresh
    from the cache costs): the scanner `json` itself uses, where the interpreter has it."""
    try:
        from _json import make_scanner
    except ImportError:  # an interpreter without it: the json module, whatever it costs
        import json

        return json.loads(text)
    text = text.strip(" \t\n\r")
    try:
        value, end = make_scanner(_Options())(text, 0)
    except (StopIteration, SystemError):
        # SystemError: the scanner reports a malformed string through json.decoder's error
        # class, and finds none while `json` is not imported.
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("not one JSON value")
    return value


def calling_agent(raw: bytes) -> str | None:
    """The subagent a hook payload names (its top-level `agent_id`), None for the main
    thread's; raises ValueError when it names one that is no plain string. Parsed only when
    the key is in it at all: most calls are the main thread's."""
    if b'"agent_id"' not in raw:
        return None
    payload = parse_json(raw.decode())
    agent = payload.get("agent_id") if isinstance(payload, dict) else None
    if agent is not None and not (isinstance(agent, str) and agent):
        raise ValueError("agent_id is not a name")
    return agent


# --- written by the full check --------------------------------------------------------------


def ledger_files(ledger_path: str) -> list[tuple[str, int, int]]:
    """The ledger's database and its write-ahead log: a write by anyone changes one of them
    (an empty log, as a reader leaves it, is the same as none)."""
    log = fingerprint(ledger_path + "-wal")
    return [fingerprint(ledger_path), log if log[1] > 0 else (log[0], 0, 0)]


def _version(ledger_path: str) -> int | None:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True, timeout=1.0)
        try:
            return db.execute("SELECT value FROM meta WHERE key = 'requests_version'"
                              ).fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None


def price_bounds(catalog) -> dict:
    """The highest price of each token kind in `catalog` (USD per million: input, output,
    cache write, cache read), over every model, date and region: for any request
    ("normal"), and for one in fast mode or over a long-prompt threshold ("worst"); the
    highest price of a web search; the lowest long-prompt threshold."""
    normal, worst = [0.0] * 4, [0.0] * 4
    search, long_at = 0.0, None
    for entry in catalog.models:
        for pricing in (*entry.history, entry.pricing):
            region = max(pricing.geo_multipliers.values(), default=1.0)
            fast = max(pricing.fast_multiplier or 1.0, 1.0)
            rows = [(pricing, False)] + [(tier.prices, True) for tier in pricing.tiers]
            if pricing.fast is not None:
                rows.append((pricing.fast, True))
            for prices, special in rows:
                kinds = (prices.input, prices.output,
                         max(prices.cache_write, prices.cache_write_1h), prices.cache_read)
                for index, price in enumerate(kinds):
                    if not special:
                        normal[index] = max(normal[index], price * region)
                    worst[index] = max(worst[index], price * region * fast)
            search = max(search, pricing.web_search_per_1k / 1000 * region)
            for tier in pricing.tiers:
                long_at = tier.above_prompt_tokens if long_at is None \
                    else min(long_at, tier.above_prompt_tokens)
    return {"normal": tuple(normal), "worst": tuple(max(a, b) for a, b in zip(worst, normal)),
            "search": search, "long_at": long_at if long_at is not None else 10**12}


def write(cache: dict) -> None:
    """Store a full check's headroom, once its ledger connection is closed (closing may fold
    the write-ahead log into the database: the files are taken as they are then). The
    ledger's files are taken before and after its version is read again: only when neither
    they nor the version moved is no write missed (`store`)."""
    before = ledger_files(cache["ledger"])
    unchanged = _version(cache["ledger"]) == cache["version"]
    after = ledger_files(cache["ledger"])
    path = cache_file(cache["session"], cache["agent"])
    if not unchanged or before != after:
        drop(path)
        return
    store(path, {**cache, "ledger_files": after, "format": FORMAT})


def forget(session_id: str, agent_id: str | None = None) -> None:
    """Drop a session's cache (or its subagent's run's): its next check is a full one."""
    drop(cache_file(session_id, agent_id))


def forget_session(session_id: str) -> None:
    """Drop every cache of a session, its subagents' runs' too: it has ended."""
    folder, prefix = cache_folder(), f"{_safe(session_id)}."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            drop(os.path.join(folder, name))


def store(path: str, cache: dict) -> None:
    """Write `cache` to `path` with marshal, whole or not at all: a reader sees the old file
    or the new one; a file that could not be written is removed (no cache only costs
    speed: the next reader does the full work)."""
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(partial, "wb") as handle:
            handle.write(marshal.dumps(cache))
        os.replace(partial, path)
    except OSError:
        drop(partial)
        drop(path)


def load(path: str, form: str) -> dict | None:
    """What `store` wrote to `path`, if it is a cache of the format `form`."""
    try:
        with open(path, "rb") as handle:
            cache = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return cache if isinstance(cache, dict) and cache.get("format") == form else None


def drop(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
