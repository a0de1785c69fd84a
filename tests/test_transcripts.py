import dataclasses
import json
import threading
from pathlib import Path

import pytest

from cmat.catalog import ModelService
from cmat.errors import TranscriptError
from cmat.reports import session_report
from cmat.request import USAGE_MARKER, rank
from cmat.transcripts import decode, fastdecode, reader
from cmat.transcripts.files import SourceFile, first_session_id
from cmat.transcripts.parallel import ReadOptions
from cmat.transcripts.reader import MAX_LINE_BYTES, Deduplicator, read_range
from cmat.transcripts.session import read_session
from tests.helpers import REAL_FIXTURES, real_fixture
from tests.transcript_factory import (
    HOSTILE,
    PRICES,
    TranscriptBuilder,
    expected_request_cost,
    reference_cost,
    usage_line,
    write_session,
    write_subagent,
)


def report_for(path, project, session_id=None, options=ReadOptions()):
    return session_report(path, session_id, ModelService(project), options)


def test_repeated_lines_of_one_response_count_once_at_the_final_snapshot(tmp_path, project,
                                                                        builder):
    builder.user()
    builder.response(output=900, blocks=4, write_5m=1000, read=5000)
    builder.response(model="claude-opus-4-6", output=50, blocks=1, write_1h=2000)
    report = report_for(write_session(tmp_path, builder), project)
    assert report["requests"] == 2
    assert report["tokens"] == builder.expected_tokens()
    assert report["total_usd"] == pytest.approx(builder.expected_cost, rel=1e-12)


def test_sidechain_replay_of_a_response_is_never_billed(tmp_path, project, builder):
    original = builder.response(output=300)
    builder.replay(original)
    report = report_for(write_session(tmp_path, builder), project)
    assert report["requests"] == 1
    assert report["total_usd"] == pytest.approx(original.cost)


def test_replay_before_the_original_still_loses(tmp_path, project, builder):
    replayed = builder.response(output=300, billed=False, sidechain=True, blocks=1)
    builder.response(output=300, message_id=replayed.message_id, blocks=1)
    records = read_session(write_session(tmp_path, builder)).records
    assert [r.is_sidechain for r in records] == [False]


def test_synthetic_and_api_error_lines_cost_nothing(tmp_path, project, builder):
    builder.response()
    builder.synthetic_error()
    usage = read_session(write_session(tmp_path, builder))
    assert len(usage.records) == 1 and usage.notices == 1
    assert report_for(usage.files[0], project)["unpriced_models"] == []


def test_unknown_line_types_and_nested_usage_in_tool_results_are_ignored(tmp_path, project,
                                                                         builder):
    builder.other_lines()
    builder.tool_result_with_nested_usage()
    builder.response(output=10)
    report = report_for(write_session(tmp_path, builder), project)
    assert report["requests"] == 1 and report["skipped_lines"] == 0
    assert report["tokens"]["input"] == builder.expected_tokens()["input"]


def test_malformed_and_truncated_lines_are_skipped_and_counted(tmp_path, project, builder):
    builder.response()
    builder.malformed()
    builder.response()
    cut = builder.response(output=500, blocks=3)  # its last line is cut in half below
    path = builder.write(tmp_path / "cut.jsonl", truncate_last=True)
    report = report_for(path, project)
    assert report["skipped_lines"] == 2
    # The cut response still had complete earlier lines: its largest complete snapshot counts,
    # the 125 output tokens (500 // 4) its second line carried.
    snapshot = dataclasses.replace(cut, output=125)
    assert report["requests"] == 3
    assert report["tokens"]["output"] == 500 + 500 + 125
    assert report["total_usd"] == pytest.approx(
        builder.requests[0].cost + builder.requests[1].cost + snapshot.cost, abs=1e-12)


def test_without_split_all_cache_writes_are_five_minute_writes(tmp_path, project, builder):
    request = builder.response(write_5m=1000, write_1h=500, split=False)
    report = report_for(write_session(tmp_path, builder), project)
    assert report["tokens"]["cache_creation_1h"] == 0
    assert report["total_usd"] == pytest.approx(request.cost)


def test_long_context_web_search_and_fast_mode_per_request(tmp_path, project, builder):
    builder.response(input=150_000, read=60_000, output=2000)  # premium
    builder.response(input=150_000, read=40_000, output=2000)  # standard
    builder.response(searches=4, output=100)
    builder.response(model="claude-opus-4-6", speed="fast", output=1000)
    report = report_for(write_session(tmp_path, builder), project)
    assert report["web_search_requests"] == 4
    assert report["total_usd"] == pytest.approx(builder.expected_cost, rel=1e-12)


def test_several_models_are_priced_each_at_its_own_rate(tmp_path, project, builder):
    for model in PRICES:
        builder.response(model=model, input=1000, output=1000, write_5m=1000, write_1h=1000,
                         read=1000)
    report = report_for(write_session(tmp_path, builder), project)
    assert len(report["models"]) == len(PRICES)
    assert report["total_usd"] == pytest.approx(builder.expected_cost, rel=1e-12)
    by_model = {m["model"]: m["total_usd"] for m in report["models"]}
    for request in builder.requests:
        assert by_model[request.model] == pytest.approx(request.cost, rel=1e-12)


def test_unknown_model_keeps_its_tokens_and_is_reported_unpriced(tmp_path, project, builder):
    builder.response(model="claude-nova-9", input=123, output=456)
    builder.response(output=10)
    report = report_for(write_session(tmp_path, builder), project)
    assert report["unpriced_models"] == ["claude-nova-9"]
    assert report["tokens"]["input"] == 123 + 10
    nova = next(m for m in report["models"] if m["model"] == "claude-nova-9")
    assert nova["total_usd"] is None and nova["tokens"]["output"] == 456
    assert report["total_usd"] == pytest.approx(builder.requests[1].cost)


def test_subagent_files_of_the_session_are_included_and_marked(tmp_path, project, builder):
    builder.response(output=100)
    main = write_session(tmp_path, builder)
    sub = write_subagent(tmp_path, builder.session_id, "a1b2c3", "Explore",
                         lambda b, agent_id: b.response(model="claude-haiku-4-5-20251001",
                                                        sidechain=True, agent_id=agent_id))
    untyped = write_subagent(tmp_path, builder.session_id, "d4e5f6", None,
                             lambda b, agent_id: b.response(sidechain=True, agent_id=agent_id))
    usage = read_session(main)
    assert len(usage.files) == 3
    agents = sorted((r.agent, r.agent_id) for r in usage.records)
    assert agents == [("Explore", "a1b2c3"), ("main", None), ("subagent", "d4e5f6")]
    report = report_for(main, project)
    assert report["total_usd"] == pytest.approx(
        builder.expected_cost + sub.expected_cost + untyped.expected_cost, rel=1e-12)


def test_legacy_sibling_agent_files_count_only_for_their_own_session(tmp_path, project, builder):
    builder.response()
    main = write_session(tmp_path, builder)
    mine = TranscriptBuilder(session_id=builder.session_id)
    mine.response(sidechain=True, agent_id="aaa")
    mine.write(tmp_path / "agent-aaa.jsonl")
    other = TranscriptBuilder(session_id="99999999-0000-0000-0000-000000000000")
    other.response(sidechain=True, agent_id="bbb")
    other.write(tmp_path / "agent-bbb.jsonl")
    usage = read_session(main)
    assert sorted(p.name for p in usage.files) == sorted(["agent-aaa.jsonl", main.name])


def test_inline_sidechain_lines_are_subagent_usage(tmp_path, builder):
    builder.response(sidechain=True)
    assert read_session(write_session(tmp_path, builder)).records[0].agent == "subagent"


def test_lines_spanning_chunk_boundaries_are_read_whole(tmp_path, project, builder):
    for index in range(40):
        builder.user("x" * (index * 37))
        builder.response(output=index + 1, blocks=2)
    path = write_session(tmp_path, builder)
    expected = report_for(path, project)
    assert report_for(path, project, options=ReadOptions(chunk_size=97)) == expected
    assert expected["requests"] == 40


def _in_a_new_thread(work):
    """work() where the reader's buffer is not made yet (it is one a thread)."""
    done = []
    thread = threading.Thread(target=lambda: done.append(work()))
    thread.start()
    thread.join()
    return done[0]


def test_a_small_read_makes_a_small_buffer_and_a_larger_one_grows_it(tmp_path, builder):
    builder.response(output=1, blocks=1)
    small = write_session(tmp_path / "small", builder)
    for index in range(300):
        builder.user("x" * 1000)
        builder.response(output=index + 2, blocks=1)
    large = write_session(tmp_path / "large", builder)

    def sizes():
        read_range(SourceFile(small))
        first = len(reader._local.buffer)
        read_range(SourceFile(large))
        return first, len(reader._local.buffer)

    first, then = _in_a_new_thread(sizes)
    assert first == reader.SMALL_READ_BYTES < reader.CHUNK_SIZE
    assert large.stat().st_size < then < 2 * large.stat().st_size + 2


def test_lines_longer_than_a_chunk_read_alike_in_a_larger_buffer_made_before(tmp_path,
                                                                            builder):
    """A chunk is read at a time however large the thread's buffer already is."""
    for index in range(40):
        builder.user("x" * (index * 37))
        builder.response(output=index + 1, blocks=2)
    path = write_session(tmp_path, builder)
    whole = read_range(SourceFile(path))

    def in_chunks():
        read_range(SourceFile(path))  # makes a buffer larger than the file
        return read_range(SourceFile(path), chunk_size=97)

    assert _in_a_new_thread(in_chunks).records == whole.records
    assert len(whole.records) == 40


def test_incremental_reads_leave_an_unfinished_line_for_later(tmp_path, builder):
    builder.response(blocks=1)
    builder.response(blocks=1)
    data = b"".join(builder.lines)
    path = tmp_path / "live.jsonl"
    cut = len(builder.lines[0]) + 20
    path.write_bytes(data[:cut])
    first = read_range(SourceFile(path), final=False)
    assert len(first.records) == 1 and first.pending_tail
    assert first.end_offset == len(builder.lines[0])
    path.write_bytes(data)
    second = read_range(SourceFile(path), first.end_offset, final=False)
    assert len(second.records) == 1 and not second.pending_tail
    assert second.end_offset == len(data)


def test_missing_and_directory_transcripts_are_clear_errors(tmp_path):
    with pytest.raises(TranscriptError, match="does not exist"):
        read_session(tmp_path / "nope.jsonl")
    with pytest.raises(TranscriptError, match="is a directory"):
        read_session(tmp_path)


def test_empty_transcript_costs_nothing(tmp_path, project):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = report_for(path, project)
    assert report["requests"] == 0 and report["total_usd"] == 0


# --- real transcripts ---------------------------------------------------------------------


REAL = sorted(REAL_FIXTURES.glob("*/*.jsonl"))


def test_the_real_fixtures_ship_with_the_tests():
    assert len(REAL) == 8


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name[-40:])
def test_real_transcripts_match_the_reference(path, project):
    requests, cost = reference_cost(path)
    report = report_for(path, project)
    assert report["requests"] == requests
    assert report["total_usd"] == pytest.approx(cost, rel=1e-12)
    assert report["skipped_lines"] == 0 and report["unpriced_models"] == []


def test_real_streamed_duplicates_keep_the_final_output(project):
    path = real_fixture("1af7fc5e")
    records = read_session(path).records
    outputs = {r.message_id: r.output_tokens for r in records}
    assert 322 in outputs.values() and 8 not in outputs.values()


def test_real_two_model_session(project):
    report = report_for(real_fixture("b25638d7"), project)
    assert {m["model"] for m in report["models"]} == {"claude-opus-4-1-20250805",
                                                      "claude-sonnet-4-20250514"}


def test_real_one_hour_cache_writes_are_priced_at_the_one_hour_rate(project):
    report = report_for(real_fixture("03eb5929"), project)
    assert report["tokens"]["cache_creation_1h"] == report["tokens"]["cache_creation"] > 0
    # Priced at the 1-hour rate (2x input), not the 5-minute one (1.25x): the total equals
    # the naive reference's, and exceeds the same writes priced as 5-minute ones.
    _, by_hand = reference_cost(real_fixture("03eb5929"))
    as_five_minute = sum(expected_request_cost(
        r.model, r.input_tokens, r.output_tokens, r.cache_creation_tokens, 0,
        r.cache_read_tokens, r.web_search_requests, r.speed, r.inference_geo, r.timestamp[:10])
        for r in read_session(real_fixture("03eb5929")).records)
    assert report["total_usd"] == pytest.approx(by_hand, abs=1e-9)
    assert report["total_usd"] > as_five_minute * 1.01


def test_real_subagent_file_in_its_session_folder(tmp_path, project):
    source = real_fixture("agent-aef063ba534d73153")
    session_id = first_session_id(source)
    main = tmp_path / f"{session_id}.jsonl"
    main.write_bytes(b"")
    target = tmp_path / session_id / "subagents" / "agent-aef063ba534d73153.jsonl"
    target.parent.mkdir(parents=True)
    target.write_bytes(source.read_bytes())
    usage = read_session(main)
    assert usage.records and all(r.agent == "subagent" for r in usage.records)
    assert report_for(main, project)["total_usd"] == pytest.approx(reference_cost(source)[1])


def test_byte_ranges_tiling_a_file_read_every_line_once(tmp_path, builder):
    for index in range(60):
        builder.user("y" * (index * 13))
        builder.response(output=index + 1, blocks=1 + index % 3)
    builder.malformed()
    builder.response(output=7)
    path = write_session(tmp_path, builder)
    decoded: list[int] = []  # the offset of every line decoded

    def counting(line, source, offset):
        decoded.append(offset)
        return decode.decode_line(line, source, offset)

    whole = read_range(SourceFile(path), decode=counting)
    every_line, decoded[:] = list(decoded), []
    assert len(every_line) == len(set(every_line)) == sum(
        USAGE_MARKER in line for line in path.read_bytes().splitlines())
    size = path.stat().st_size
    line_starts = [0]
    for line in builder.lines[:-1]:
        line_starts.append(line_starts[-1] + len(line))
    for cuts in ([size // 3, 2 * size // 3], line_starts[5:9], [1, 2, size - 1],
                 [line_starts[10] - 1, line_starts[10], line_starts[10] + 1]):
        bounds = [0, *cuts, None]
        parts = [read_range(SourceFile(path), start, end=end, decode=counting)
                 for start, end in zip(bounds, bounds[1:])]
        assert decoded == every_line
        decoded.clear()
        merged = Deduplicator()  # a request cut by a bound has a copy on each side
        for part in parts:
            for record in part.records:
                merged.add(record)
        assert merged.records() == whole.records
        assert sum(p.skipped_lines for p in parts) == whole.skipped_lines == 1


def test_parallel_read_equals_sequential_read(tmp_path, builder):
    for index in range(200):
        builder.user("z" * 500)
        builder.response(output=index + 1, blocks=3)
    main = write_session(tmp_path, builder)
    write_subagent(tmp_path, builder.session_id, "sub1", "Explore",
                   lambda b, a: [b.response(sidechain=True, agent_id=a) for _ in range(50)])
    sequential = read_session(main, options=ReadOptions(workers=1))
    parallel = read_session(main, options=ReadOptions(workers=2, max_segment_bytes=20_000))
    assert parallel.records == sequential.records
    assert len(parallel.records) == 250


def test_lines_written_with_spaces_parse_the_same(tmp_path, project):
    compact, spaced = TranscriptBuilder(), TranscriptBuilder(spaced=True)
    for builder in (compact, spaced):
        builder.response(output=40, write_1h=100, searches=1)
    assert b'"output_tokens": 40' in spaced.lines[-1]
    assert report_for(write_session(tmp_path / "s", spaced), project)["total_usd"] == \
        pytest.approx(spaced.expected_cost) == compact.expected_cost


# --- the fast (msgspec) decoder of large reads ----------------------------------------------

_USAGE = '"usage":{"input_tokens":3,"output_tokens":7,"cache_read_input_tokens":11}'
ODD_LINES = [  # each holds the marker, so both decoders see it in a real read
    '{"type":"assistant","message":{"id":"m","model":"claude-opus-4-6",%s}}' % _USAGE,
    '{"type":"assistant","message":{"id":"m","model":"claude-opus-4-6","usage":'
    '{"input_tokens":5.0,"output_tokens":1}}}',  # a whole number written as a float
    '{"type":"assistant","message":{"model":"x","usage":{"input_tokens":5.5,"output_tokens":1}}}',
    '{"type":"assistant","message":{"model":"x","usage":{"input_tokens":null,"output_tokens":1}}}',
    '{"type":"assistant","message":{"model":"x","usage":{"input_tokens":true,"output_tokens":1}}}',
    '{"type":"assistant","message":{"model":"x","usage":{"input_tokens":"5","output_tokens":1}}}',
    '{"type":"assistant","message":{"model":"x","usage":{"output_tokens":%d}}}' % 2 ** 70,
    '{"type":"assistant","message":null,"output_tokens":1}',
    '{"type":"assistant","message":"text","output_tokens":1}',
    '{"type":"assistant","message":{"model":"x","usage":null},"output_tokens":1}',
    '{"type":"assistant","message":{"model":"x","usage":[1]},"output_tokens":1}',
    '{"type":"assistant","message":{"model":null,%s}}' % _USAGE,
    '{"type":"assistant","message":{"model":"",%s}}' % _USAGE,
    '{"type":"assistant","message":{"model":42,%s}}' % _USAGE,
    '{"type":"assistant","message":{"model":"<synthetic>",%s}}' % _USAGE,
    '{"type":"assistant","isApiErrorMessage":true,"message":{"model":"x",%s}}' % _USAGE,
    '{"type":"assistant","isApiErrorMessage":1,"message":{"model":"x",%s}}' % _USAGE,
    '{"type":"assistant","isSidechain":"yes","message":{"model":"x",%s}}' % _USAGE,
    '{"type":"assistant","isSidechain":true,"agentId":"a1","message":{"model":"x",%s}}' % _USAGE,
    '{"type":"assistant","requestId":7,"message":{"model":"x",%s}}' % _USAGE,
    '{"type":"assistant","requestId":"req_1","message":{"id":"","model":"x",%s}}' % _USAGE,
    '{"type":"assistant","message":{"model":"x","usage":{"output_tokens":1,'
    '"cache_creation_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":4,'
    '"ephemeral_1h_input_tokens":6}}}}',  # the total comes from the split
    '{"type":"assistant","message":{"model":"x","usage":{"output_tokens":1,'
    '"cache_creation_input_tokens":3,"cache_creation":{"ephemeral_1h_input_tokens":9}}}}',
    '{"type":"assistant","message":{"model":"x","usage":{"output_tokens":1,'
    '"cache_creation":null,"server_tool_use":null}}}',
    '{"type":"assistant","message":{"model":"x","usage":{"output_tokens":1,'
    '"cache_creation":"no","server_tool_use":{"web_search_requests":2}}}}',
    '{"type":"assistant","message":{"model":"x","usage":{"output_tokens":1,"speed":"fast"}}}',
    '{"type":"assistant","message":{"model":"x","usage":{"output_tokens":1,"speed":3}}}',
    '{"type":"assistant","timestamp":5,"cwd":["a"],"message":{"model":"x",%s}}' % _USAGE,
    '{"type":"user","message":{"role":"user","content":"hi"},'
    '"toolUseResult":{"usage":{"input_tokens":1000,"output_tokens":1000}}}',
    '{"type":7,"message":{"model":"x",%s}}' % _USAGE,
    '[{"type":"assistant","output_tokens":1}]',
    '{"type":"assistant","message":{"model":"x",%s}} trailing' % _USAGE,
    '{"type":"assistant","message":{"model":"x","usage":{"input_tokens":5,"output_tokens":1',
    '{"type":"assistant","message":{"model":"x","content":"cut \\ud83d here",%s}}' % _USAGE,
    '{"type":"assistant","message":{"model":"x","content":"\\ud83d\\ude00",%s}}' % _USAGE,
    '{"type":"assistant","message":{"model":"x","content":[' + "[" * 5000 + "]" * 5000
    + '],%s}}' % _USAGE,
    "[" * 100_000 + '"output_tokens"',
]


def _decoded(decode, line: bytes):
    """What a decoder makes of a line: its record (a candidate's built, its key and rank
    checked against the record's), a notice, None, or "damaged"."""
    source = SourceFile(Path("t.jsonl"))
    try:
        decoded = decode(memoryview(line), source, 0)
    except ValueError:
        return "damaged"
    if decoded.__class__ is not tuple:
        return decoded
    key, copy_rank, build, data = decoded
    record = build(data, source, key)
    assert (key, copy_rank) == (record.message_id, rank(record.is_sidechain,
                                                        record.total_tokens))
    return record


def _real_usage_lines():
    for path in sorted(REAL_FIXTURES.glob("*/*.jsonl")):
        for line in path.read_bytes().splitlines():
            if USAGE_MARKER in line:
                yield line


def test_the_fast_decoder_gives_the_reference_decoders_records():
    lines = [line.encode() for line in ODD_LINES]
    lines.append(b'{"type":"assistant","message":{"model":"x","content":"\xff\xfe",%s}}'
                 % _USAGE.encode())  # invalid UTF-8 in a field cmat does not read
    lines.extend(_real_usage_lines())
    assert len(lines) > len(ODD_LINES) + 100
    for line in lines:
        assert _decoded(fastdecode.decode_line, line) == _decoded(decode.decode_line,
                                                                  line), line[:300]


def test_damaged_lines_are_damaged_for_both_decoders():
    for line in (ODD_LINES[-1], ODD_LINES[-6], ODD_LINES[-5], ODD_LINES[2]):
        assert _decoded(fastdecode.decode_line, line.encode()) == "damaged"


@pytest.mark.parametrize("fast", [False, True])
def test_a_cut_emoji_or_invalid_utf8_does_not_lose_a_response(tmp_path, project, builder,
                                                              fast):
    builder.response(output=100, blocks=1)
    # Claude Code writes a string cut inside an emoji as a lone surrogate escape.
    builder.lines[-1] = builder.lines[-1].replace(b'"block 0"', b'"cut \\ud83d"')
    builder.response(output=200, blocks=1)
    builder.lines[-1] = builder.lines[-1].replace(b'"block 0"', b'"\xff"')
    report = report_for(write_session(tmp_path, builder), project,
                        options=ReadOptions(fast_decode=fast))
    assert report["requests"] == 2
    assert report["total_usd"] == pytest.approx(builder.expected_cost, rel=1e-12)


def test_both_decoders_refuse_values_no_real_request_has():
    for name, changes in HOSTILE.items():
        line = json.dumps(usage_line("m", **changes)).encode()
        assert _decoded(decode.decode_line, line) == "damaged", name
        assert _decoded(fastdecode.decode_line, line) == "damaged", name


@pytest.mark.parametrize("final", [True, False])
def test_a_line_longer_than_the_limit_is_read_past_never_held(tmp_path, builder, final):
    builder.response(output=10, blocks=1)
    builder.lines.append(b'{"type":"assistant","x":"' + b"a" * (MAX_LINE_BYTES + 5)
                         + b'","output_tokens":1}\n')
    builder.response(output=20, blocks=1)
    path = builder.write(tmp_path / "t.jsonl")
    scan = read_range(SourceFile(path), final=final)
    assert sorted(r.output_tokens for r in scan.records) == [10, 20]
    assert scan.skipped_lines == 1 and "longer than 128 MiB" in scan.skips[0][1]
    assert scan.end_offset == path.stat().st_size


def test_a_file_ending_inside_a_line_longer_than_the_limit_resumes_there(tmp_path, builder):
    builder.response(output=10, blocks=1)
    start = len(builder.lines[0])
    builder.lines.append(b'{"x":"' + b"a" * (MAX_LINE_BYTES + 5))
    path = builder.write(tmp_path / "t.jsonl")
    scan = read_range(SourceFile(path), final=False)
    assert scan.pending_tail and scan.end_offset == start and scan.skipped_lines == 0
