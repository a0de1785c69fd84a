"""The budget configuration: the user's file, what a project's may add, `cmat budget set`."""

import pytest

from cmat import paths
from cmat.budgets.config import load_config
from cmat.errors import ConfigError
from tests.helpers import cli_run


def test_set_show_and_unset_write_the_right_files(project):
    cli_run("budget", "set", "daily", "50")
    cli_run("budget", "set", "task", "5")
    cli_run("budget", "set", "task", "12", "--id", "task_9")
    cli_run("budget", "set", "project", "300", "--period", "monthly")
    cli_run("budget", "set", "daily-tokens", "5000000")
    config = load_config(project)
    assert config.global_usd == {"daily": 50.0} and config.daily_tokens == 5_000_000
    assert config.keyed["task"] == {"default": 5.0, "task_9": 12.0}
    assert config.project_usd == {"monthly": 300.0}
    assert (paths.config_home() / "config.toml").is_file()
    assert (project / ".claude" / "cmat.toml").is_file()
    assert "every task" in cli_run("budget", "show").output
    cli_run("budget", "unset", "task", "--id", "task_9")
    cli_run("budget", "unset", "project", "--period", "monthly")
    config = load_config(project)
    assert config.keyed["task"] == {"default": 5.0} and config.project_usd == {}
    assert "project" not in (project / ".claude" / "cmat.toml").read_text()


def test_set_says_when_no_hook_would_enforce_the_budget(project):
    said = cli_run("budget", "set", "daily", "50").output
    assert "installed neither in this project nor for your user: cmat hooks install" in said
    cli_run("hooks", "install")
    assert "note:" not in cli_run("budget", "set", "daily", "40").output
    cli_run("hooks", "uninstall")
    cli_run("hooks", "install", "--user")
    assert "note:" not in cli_run("budget", "set", "task", "5").output


def test_a_project_file_only_adds_stricter_project_budgets(project):
    cli_run("budget", "set", "daily", "50")
    cli_run("budget", "set", "task", "5", "--user")
    cli_run("budget", "set", "session", "8", "--user")
    (project / ".claude" / "cmat.toml").write_text(
        'timezone = "Pacific/Apia"\n'
        "[budgets]\ndaily = 1000000\nmonthly = 0\ndaily_tokens = 5\n"
        "[budgets.task]\ndefault = 50\n[budgets.session]\ndefault = 2\n"
        "[budgets.enhancement]\nlogin = 30\n"
        "[alerts]\nthresholds = [99]\nwebhook = 'https://evil.example/x'\n"
        "command = 'touch /tmp/pwned'\n")
    config = load_config(project)
    assert config.global_usd == {"daily": 50.0} and config.daily_tokens is None
    assert config.keyed == {"task": {"default": 5.0}, "session": {"default": 2.0},
                            "enhancement": {"login": 30.0}}
    assert config.command is None and config.webhook is None and config.timezone is None
    assert config.thresholds == (50, 80, 95)
    ignored = "\n".join(config.ignored)
    for name in ("timezone", "budgets.daily", "budgets.monthly", "budgets.daily_tokens",
                 "alerts.thresholds", "alerts.webhook", "alerts.command",
                 "budgets.task.default = 50 is looser"):
        assert name in ignored
    shown = cli_run("budget", "show").output
    assert "alerts.command ignored" in shown and "evil" not in shown.split("note:")[0]


def test_a_project_file_that_does_not_parse_cannot_switch_the_users_budgets_off(project):
    cli_run("budget", "set", "daily", "50")
    (project / ".claude" / "cmat.toml").write_text("[budgets\n")
    config = load_config(project)
    assert config.global_usd == {"daily": 50.0}
    assert "not valid TOML" in config.ignored[0]


def test_user_wide_budgets_cannot_be_written_into_a_project(project):
    result = cli_run("budget", "set", "daily", "20", "--in-project", code=2)
    assert "only the user's config may set them" in result.stderr
    assert not (project / ".claude" / "cmat.toml").exists()


@pytest.mark.parametrize("text, field", [
    ("[budgets]\ndaily = -1\n", "budgets.daily"),
    ("[budgets]\ndaily = 'lots'\n", "budgets.daily"),
    ("[budgets]\nhourly = 3\n", "budgets.hourly"),
    ("[budgets.project]\nweekly = 3\n", "budgets.project.weekly"),
    ("[budgets]\ndaily_tokens = 1.5\n", "budgets.daily_tokens"),
    ("[alerts]\nthresholds = [50, 120]\n", "alerts.thresholds"),
    ("[alerts]\nwebhook = 'ftp://x'\n", "alerts.webhook"),
    ("colour = 'red'\n", "colour"),
    ("[budgets\n", "not valid TOML"),
    ("[budgets]\ndaily = nan\n", "budgets.daily"),
    ("[budgets]\nweekly = inf\n", "budgets.weekly"),
    ("[budgets.task]\ndefault = -inf\n", "budgets.task.default"),
    ("[alerts]\ncommand = []\n", "alerts.command"),
    ("[alerts]\ncommand = 'say \"unterminated'\n", "alerts.command"),
])
def test_invalid_config_is_refused_with_the_field_named(project, text, field):
    user = paths.config_home() / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(text)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(project)


def test_set_refuses_invalid_values_and_writes_nothing(project):
    result = cli_run("budget", "set", "daily", "--", "-5", code=2)
    assert "AMOUNT': must be a number, 0 or more (got -5)" in result.stderr
    assert not (paths.config_home() / "config.toml").exists()
    assert "--id goes with" in cli_run("budget", "set", "daily", "5", "--id", "x", code=2).stderr


def test_where_each_budget_is_written(project):
    from cmat.budgets.scopes import place
    from cmat.errors import UsageError
    from cmat.paths import project_config_file, user_config_file

    user, own = user_config_file(), project_config_file(project)
    assert (place("daily").file, place("daily").keys) == (user, ["budgets", "daily"])
    assert not place("daily").whole
    assert (place("daily", project="").file, place("daily", project="").keys) == \
        (own, ["budgets", "project", "daily"])
    assert place("daily-tokens", project="").whole
    assert place("task", key_id="t1").file == own
    assert place("task", key_id="t1", user=True).file == user
    assert place("run-tokens", key_agent="Explore").keys[-1] == "Explore"
    for wrong, message in (
            (dict(scope="daily", in_project=True), "only the user's config"),
            (dict(scope="weekly", project=""), "no per-project budget"),
            (dict(scope="daily", project="", period="monthly"), "leave out --period"),
            (dict(scope="daily", key_id="x"), "--id goes with"),
            (dict(scope="task", user=True, in_project=True), "exclude each other"),
            (dict(scope="daily", count="all"), "--count goes with token budgets")):
        with pytest.raises(UsageError, match=message):
            place(**wrong)


def test_the_token_count_has_one_set_of_names(project):
    from cmat.budgets.config import load_config

    cli_run("budget", "set", "daily-tokens", "1000", "--count", "all")
    assert load_config(project).token_count == "all"
    cli_run("budget", "set", "daily-tokens", "1000", "--count", "io")  # the older spelling
    assert load_config(project).token_count == "input+output"
    assert "not one of input+output, all" in cli_run(
        "budget", "set", "daily-tokens", "1", "--count", "some", code=2).stderr


EXAMPLES = {  # a valid value of every setting of the schema
    "timezone": "Europe/Paris", "plan": "max5", "budgets.daily": 5, "budgets.weekly": 20,
    "budgets.monthly": 50, "budgets.total": 500, "budgets.daily_tokens": 1000,
    "budgets.token_count": "all", "budgets.on_error": "allow",
    "budgets.concurrent_agents": 2, "budgets.active_minutes": 5,
    "team.url": "postgresql://db.example/cmat", "team.auto_sync": True,
    "retention.older_than": "13m", "retention.team_older_than": "2y",
    "alerts.thresholds": [10], "alerts.webhook_thresholds": [20],
    "alerts.command_thresholds": [30], "alerts.messages": {"80": "at {percent}%"},
    "alerts.email": {"host": "smtp.example", "from": "a@example", "to": "b@example"},
    "alerts.webhook": "https://hooks.example/x", "alerts.command": ["notify-send", "cmat"],
}


def _document(settings: dict) -> dict:
    document: dict = {}
    for name, value in settings.items():
        *tables, key = name.split(".")
        target = document
        for table in tables:
            target = target.setdefault(table, {})
        target[key] = value
    return document


def test_every_setting_of_the_schema_is_the_users_alone(project, tmp_path):
    from cmat.budgets.config import SETTINGS, Config, apply_file

    assert sorted(EXAMPLES) == sorted(SETTINGS)  # a new setting needs an example here
    user, from_project = Config(), Config()
    apply_file(user, tmp_path / "user.toml", _document(EXAMPLES))
    apply_file(from_project, tmp_path / "cmat.toml", _document(EXAMPLES), trusted=False)
    assert from_project == Config(ignored=from_project.ignored)  # nothing taken from it
    assert len(from_project.ignored) == len(SETTINGS)
    assert user.timezone == "Europe/Paris" and user.global_usd["total"] == 500
    assert user.channel_thresholds == {"webhook": (20,), "command": (30,)}
    assert user.email.host == "smtp.example" and user.retention == "13m"
    stricter = Config()
    apply_file(stricter, tmp_path / "cmat.toml", {"budgets": {"on_error": "deny"}},
               trusted=False)
    assert stricter.on_error == "deny" and stricter.ignored == []
