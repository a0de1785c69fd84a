
from cmat import paths
from cmat.claude.log import HookLog


def test_the_log_is_rotated_past_its_limit(project):
    log = HookLog(project, limit_bytes=200)
    for index in range(10):
        log.write("INFO", "session-end", f"line {index} " + "x" * 50)
    current = paths.hook_log_file()
    assert current.stat().st_size <= 200 + 200
    assert (current.parent / "hook.log.1").is_file()
    assert "line 9" in current.read_text()


def test_each_line_names_its_level_event_and_project(project):
    HookLog(project).write("ERROR", "pre-tool-use", "budget not checked")
    (line,) = paths.hook_log_file().read_text().splitlines()
    assert " ERROR pre-tool-use budget not checked (in " in line and str(project) in line


def test_a_log_that_cannot_be_written_costs_only_the_log(project, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    where = HookLog(project, path=blocked / "hook.log").write("INFO", "session-end",
                                                              "kept going")  # no exception
    assert where == blocked / "hook.log" and blocked.read_text() == ""  # nothing clobbered
