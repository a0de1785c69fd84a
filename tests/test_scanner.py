"""The compiled scanner (cmat/transcripts/_scan.c) against the pure-Python path: the same
records, skips and notices on every fixture, on odd and hostile lines, and on fuzzed ones."""

import dataclasses
import functools
import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cmat.cli import cli
from cmat.request import (
    SIDECHAIN_PENALTY,
    USAGE_MARKER,
    InvalidLine,
    check_time,
    timestamp_seconds,
)
from cmat.transcripts import scanner
from cmat.transcripts.files import SourceFile
from cmat.transcripts.parallel import ReadOptions
from cmat.transcripts.reader import read_range
from cmat.version import __version__
from tests.helpers import FIXTURES, REPO, need
from tests.test_transcripts import ODD_LINES
from tests.transcript_factory import HOSTILE, TranscriptBuilder, usage_line

BUILT = scanner.built()


def test_the_compiled_scanner_is_built_where_the_tests_run():
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    assert ReadOptions().decoder_for(1).__class__ is scanner.ScanningDecoder


def test_an_install_without_a_c_compiler_goes_on_in_pure_python(tmp_path):
    need(os.environ.get("CMAT_SYSTEM_TESTS"), "builds a wheel (the package registries)")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path), str(REPO)], env=dict(os.environ, CC="/bin/false"),
                   check=True, timeout=900, capture_output=True)
    [wheel] = tmp_path.glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert not [name for name in archive.namelist() if name.endswith(".so")]


def test_the_version_says_how_transcripts_are_read(monkeypatch):
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output == \
        f"cmat, version {__version__}; transcripts read by the compiled scanner\n"
    monkeypatch.setenv("CMAT_PURE_PYTHON", "1")
    assert runner.invoke(cli, ["--version"]).output.endswith(
        "read by pure Python (CMAT_PURE_PYTHON=1)\n")


def test_the_scanner_bounds_are_cmat_request_s():
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    from cmat import request
    from cmat.transcripts import _scan

    assert (_scan.MAX_TOKENS, _scan.EARLIEST_YEAR, _scan.LATEST_YEAR) == \
        (request.MAX_TOKENS, request.EARLIEST_YEAR, request.LATEST_YEAR)


def test_the_pure_python_path_is_chosen_without_it(monkeypatch):
    monkeypatch.setenv("CMAT_PURE_PYTHON", "1")
    assert not scanner.available()
    assert ReadOptions().decoder_for(1).__class__ is not scanner.ScanningDecoder
    assert ReadOptions(compiled=False).decoder_for(1).__class__ is not scanner.ScanningDecoder


def test_a_large_read_decodes_with_msgspec_only_without_the_scanner(monkeypatch):
    """Behind the scanner, the reference decoder takes the rare undecided line, and a cold
    scan does not import msgspec; without it, msgspec decodes a large read's lines."""
    from cmat.transcripts import decode, fastdecode
    from cmat.transcripts.parallel import FAST_DECODE_MIN_BYTES

    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    large = FAST_DECODE_MIN_BYTES
    assert ReadOptions().decoder_for(large) == scanner.ScanningDecoder(decode.decode_line)
    assert ReadOptions(compiled=False).decoder_for(large) is fastdecode.decode_line
    monkeypatch.setenv("CMAT_PURE_PYTHON", "1")
    assert ReadOptions().decoder_for(large) is fastdecode.decode_line
    assert ReadOptions().decoder_for(large - 1) is decode.decode_line


def _decoders():
    """(name, options) of every way a read can decode: the reference first."""
    ways = [("reference", ReadOptions(fast_decode=False, compiled=False)),
            ("msgspec", ReadOptions(fast_decode=True, compiled=False))]
    if BUILT:
        ways += [("compiled", ReadOptions(fast_decode=False, compiled=True)),
                 ("compiled+msgspec", ReadOptions(fast_decode=True, compiled=True))]
    return ways


def read_every_way(path: Path, chunk_size: int | None = None, final: bool = True):
    """What each way of decoding reads in the file: {name: (records, skipped, skips,
    notices, end_offset, pending_tail)}."""
    found = {}
    for name, options in _decoders():
        read = read_range(SourceFile(path), final=final, decode=options.decoder_for(1),
                          **({"chunk_size": chunk_size} if chunk_size else {}))
        found[name] = ([_fields(r) for r in read.records], read.skipped_lines,
                       read.skips, read.notices, read.end_offset, read.pending_tail)
    return found


def _fields(record) -> tuple:
    """A record's fields; the unix seconds every reader works out as it checks the time
    must be what timestamp_seconds makes of its timestamp, to the last bit."""
    *fields, seconds = dataclasses.astuple(record)
    assert seconds == timestamp_seconds(record.timestamp), record
    return tuple(fields)


def assert_all_agree(found: dict) -> None:
    reference = found["reference"]
    for name, value in found.items():
        assert value == reference, name


@pytest.mark.parametrize("path", sorted(FIXTURES.rglob("*.jsonl")), ids=lambda p: p.name[-40:])
def test_every_fixture_reads_the_same_every_way(path):
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    found = read_every_way(path)
    assert_all_agree(found)
    if "real" in path.parts:
        assert found["reference"][0], "a real transcript with no requests read"
    assert_all_agree(read_every_way(path, chunk_size=4096))  # lines across chunk edges


def test_odd_and_hostile_lines_read_the_same_every_way(tmp_path):
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    lines = [line.encode() for line in ODD_LINES[:-1]]  # the last: 100,000 brackets, alone
    lines += [json.dumps(usage_line(f"h{i}", **changes)).encode()
              for i, changes in enumerate(HOSTILE.values())]
    for index, line in enumerate(lines):
        path = tmp_path / f"{index}.jsonl"
        path.write_bytes(line + b"\n")
        assert_all_agree(read_every_way(path))
    path = tmp_path / "all.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert_all_agree(read_every_way(path))


def test_a_generated_session_reads_the_same_every_way(tmp_path):
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    builder = TranscriptBuilder()
    for index in range(40):
        builder.response(output=10 + index, blocks=1 + index % 3, write_1h=index % 4, sidechain=index % 5 == 0,
                         searches=index % 2)
    path = builder.write(tmp_path / "s.jsonl")
    found = read_every_way(path)
    assert_all_agree(found)
    assert len(found["compiled"][0]) == 40
    assert_all_agree(read_every_way(path, final=False))


# What the fuzzer builds lines from: the fields cmat reads, mostly with the values real lines
# have (so that most lines are requests, copies of a few, kept or outranked), and sometimes
# values no real line has, keys written twice, or a damaged byte.
GOOD_TEXTS = st.sampled_from(["a", "", "C:\\Users\\a", 'quote " and \\ slash', "tab\tnew\nline",
                              "é→😀", "/home/u/p", "\x7f\u2028"])
TEXTS = st.one_of(GOOD_TEXTS, GOOD_TEXTS, st.none(), st.text(max_size=12),
                  st.just("\x00\x1f"))
ODD = st.one_of(st.integers(-3, 3), st.floats(allow_nan=False), st.booleans(),
                st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                     st.integers(), max_size=2))
GOOD_COUNTS = st.one_of(st.integers(0, 50), st.integers(0, 2 ** 53 - 1))
COUNTS = st.one_of(GOOD_COUNTS, GOOD_COUNTS, GOOD_COUNTS, st.sampled_from(
    [2 ** 53, 2 ** 64, 10 ** 20, -0.0, 5.0]), st.none(), ODD)
GOOD_TIMES = st.sampled_from(["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123Z",
                              "2024-02-29T23:59:59.999999Z"])
TIMES = st.one_of(GOOD_TIMES, GOOD_TIMES, st.sampled_from([
    "2026-03-01T10:00:00.1234567Z", "2026-02-29T00:00:00.000Z", "2026-03-01T24:00:00Z",
    "2026-03-01T10:00:60Z", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
    "2026-03-01 10:00:00Z", "2026-03-01T10:00:00+00:00", "2026-03-01T10:00:00+00:00Z",
    "2026-03-01T10:00:00.Z", "2026-03-01", "2026-13-01T00:00:00Z", "9999-01-01T00:00:00Z"]),
    st.text(max_size=24), st.none(), ODD)


def _either(good, odd):
    """Mostly `good`; sometimes `odd`; sometimes absent."""
    return st.one_of(good, good, good, good, odd, st.just(dataclasses.MISSING))


def _object(draw, pairs: list) -> str:
    """A JSON object from (key, value) pairs, a value given as JSON text or a Python value;
    now and then a key written twice (before or after its value: the later one counts)."""
    pairs = [(k, v) for k, v in pairs if v is not dataclasses.MISSING]
    if pairs and draw(st.integers(0, 5)) == 0:
        key = draw(st.sampled_from(pairs))[0]
        twice = (key, draw(st.sampled_from(["null", "1", '"assistant"', "{}", "true", "[]"])))
        pairs.insert(draw(st.integers(0, len(pairs))), twice)
    dumps = functools.partial(json.dumps, ensure_ascii=draw(st.booleans()))
    return "{" + ",".join(f"{dumps(k)}:{v if isinstance(v, _Json) else dumps(v)}"
                          for k, v in pairs) + "}"


class _Json(str):
    """JSON text already made (a nested object)."""


@st.composite
def usage_lines(draw) -> bytes:
    counts = {key: draw(_either(COUNTS, COUNTS)) for key in (
        "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
    split = draw(st.one_of(st.just(dataclasses.MISSING), st.none(), ODD, st.builds(
        lambda a, b: _Json(_object(draw, [("ephemeral_5m_input_tokens", a),
                                          ("ephemeral_1h_input_tokens", b)])),
        _either(COUNTS, COUNTS), _either(COUNTS, COUNTS))))
    tools = draw(st.one_of(st.just(dataclasses.MISSING), st.none(), st.builds(
        lambda n: _Json(_object(draw, [("web_search_requests", n)])), _either(COUNTS, ODD))))
    usage = _Json(_object(draw, [
        *counts.items(), ("output_tokens", draw(COUNTS)),  # the marker: every line is read
        ("cache_creation", split), ("server_tool_use", tools),
        ("speed", draw(_either(st.sampled_from([None, "fast", "standard"]), ODD))),
        ("inference_geo", draw(_either(TEXTS, ODD))), ("service_tier", "standard")]))
    message = _Json(_object(draw, [
        ("id", draw(_either(st.sampled_from(["m1", "m2", "m3", ""]), st.one_of(TEXTS, ODD)))),
        ("model", draw(_either(st.sampled_from(["claude-opus-4-6", "claude-sonnet-4-5"]),
                               st.one_of(st.sampled_from(["<synthetic>", ""]), TEXTS, ODD)))),
        ("content", draw(_either(st.lists(TEXTS, max_size=3), TEXTS))),
        ("usage", draw(_either(st.just(usage), st.one_of(st.none(), ODD))))]))
    line = _object(draw, [
        ("parentUuid", draw(TEXTS)),
        ("isSidechain", draw(_either(st.booleans(), st.one_of(st.none(), ODD)))),
        ("type", draw(_either(st.just("assistant"), st.one_of(
            st.sampled_from(["user", ""]), TEXTS, ODD)))),
        ("message", draw(_either(st.just(message), st.one_of(st.none(), ODD)))),
        ("isApiErrorMessage", draw(_either(st.just(False), st.one_of(st.just(True), ODD)))),
        ("requestId", draw(_either(st.sampled_from(["r1", "r2"]), st.one_of(TEXTS, ODD)))),
        ("sessionId", draw(_either(TEXTS, ODD))), ("timestamp", draw(TIMES)),
        ("agentId", draw(_either(TEXTS, ODD))), ("cwd", draw(_either(TEXTS, ODD)))])
    data = line.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 7)) == 0:  # a damaged byte: cut, changed or added
        at = draw(st.integers(0, len(data) - 1))
        byte = bytes([draw(st.integers(0, 255))])
        data = draw(st.sampled_from([data[:at], data[:at] + byte + data[at + 1:],
                                     data[:at] + byte + data[at:]]))
    return data.replace(b"\n", b" ")


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(usage_lines(), min_size=1, max_size=8))
@example(lines=[b'{"type":"assistant","message":{"id":"m","model":"x","usage":'
                b'{"output_tokens":5}},"timestamp":"2026-03-01T10:00:00Z"}',
                b'{"type":"assistant","message":{"id":"m","model":"y","usage":'
                b'{"output_tokens":5}},"timestamp":"2026-03-01T10:00:00.5Z"}'])  # equal ranks
@example(lines=[b'{"type":"assistant","message":{"id":"m","model":"x","usage":'
                b'{"output_tokens":5,"cache_read_input_tokens":9}},'
                b'"timestamp":"2026-03-01T10:00:00Z"}',
                b'{"type":"assistant","message":{"id":"m","model":"y","usage":'
                b'{"output_tokens":7}},"timestamp":"2026-03-01T10:00:00Z"}'])  # a lower rank after
@example(lines=[b'{"type":"assistant","cwd":"C:\\\\a\\n\\t\\"\\/\\u00e9\\b\\f\\r\\u20ac",'
                b'"message":{"id":"m","model":"x","usage":{"output_tokens":5}},'
                b'"timestamp":"2026-03-01T10:00:00Z"}',
                b'{"type":"assistant","cwd":"\\ud83d\\ude00","message":{"id":"n","model":"x",'
                b'"usage":{"output_tokens":5}},"timestamp":"2026-03-01T10:00:00Z"}'])  # escapes
@example(lines=[b'{"type":"assistant","message":{"id":"m","model":"x","usage":'
                b'{"output_tokens":5,"cache_creation":{"ephemeral_1h_input_tokens":100}}},'
                b'"timestamp":"2026-03-01T10:00:00Z"}',
                b'{"type":"assistant","message":{"id":"m","model":"y","usage":'
                b'{"output_tokens":50}},"timestamp":"2026-03-01T10:00:00Z"}'])  # writes' sum
@example(lines=[b'{"type":"assistant","message":{"id":"m","model":"x","usage":'
                b'{"output_tokens":9007199254740992}},"timestamp":"2026-03-01T10:00:00Z"}',
                b'{"type":"assistant","message":{"id":"n","model":"x","usage":'
                b'{"output_tokens":9007199254740991}},"timestamp":"2026-03-01T10:00:00Z"}'])  # 2**53
@example(lines=[b'{"type":"assistant","message":{"id":"m","model":"x","content":"a\tb",'
                b'"usage":{"output_tokens":5}},"timestamp":"2026-03-01T10:00:00Z"}'])  # raw tab
@example(lines=[b'{"type":"assistant","message":{"id":"m","model":"x","usage":'
                b'{"output_tokens":5,"speed":"fast"}},"message":{"model":"y","usage":'
                b'{"output_tokens":6}},"timestamp":"2026-03-01T10:00:00Z"}'])  # a later message
def test_fuzzed_lines_read_the_same_every_way(tmp_path_factory, lines):
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    path = tmp_path_factory.mktemp("fuzz") / "t.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert_all_agree(read_every_way(path))


@settings(max_examples=400)
@given(moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31,
                                                                              23, 59, 59)),
       places=st.integers(0, 6))
@example(moment=datetime(2000, 1, 1), places=0)
@example(moment=datetime(2099, 12, 31, 23, 59, 59, 999999), places=6)
@example(moment=datetime(2024, 2, 29, 12, 0, 0, 100000), places=1)
def test_the_scanner_s_unix_seconds_are_timestamp_seconds_to_the_last_bit(moment, places):
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    timestamp = moment.strftime("%Y-%m-%dT%H:%M:%S") + (
        "." + f"{moment.microsecond:06d}"[:places] if places else "") + "Z"
    line = json.dumps(usage_line("m", timestamp=timestamp)).encode() + b"\n"
    best: dict = {}
    scanner._scan(line, 0, len(line), USAGE_MARKER, 0, best, scanner.build_record,
                  SIDECHAIN_PENALTY)
    [(_, (_, _, _, data))] = best.values()
    assert data[-1] == timestamp_seconds(timestamp), timestamp


@pytest.mark.parametrize("timestamp", [
    "2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123Z", "2024-02-29T00:00:00Z",
    "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2100-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z", "1999-12-31T23:59:59.9Z", "2099-12-31T23:59:59.999999Z",
    "2026-03-01T23:59:60Z", "2026-03-01T10:00:00.1234567Z", "2026-00-10T00:00:00Z"])
def test_the_scanner_keeps_a_line_exactly_when_its_time_passes_check_time(timestamp):
    need(BUILT, "needs the compiled scanner (a C compiler at install)")
    line = json.dumps(usage_line("m", timestamp=timestamp)).encode() + b"\n"
    best: dict = {}
    left = scanner._scan(line, 0, len(line), USAGE_MARKER, 0, best, scanner.build_record,
                         SIDECHAIN_PENALTY)
    try:
        check_time(timestamp)
        valid = True
    except InvalidLine:
        valid = False
    # Kept in C only if Python would pass it; what C is not sure of, Python checks.
    assert not best or valid
    assert bool(best) != bool(left)
