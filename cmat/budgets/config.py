"""Budget and alert configuration: TOML, the project's over the user's.

`${XDG_CONFIG_HOME:-~/.config}/cmat/config.toml` for the user, `<project>/.claude/cmat.toml`
for a project; a project value overrides the user's value for the same key. Read with
`tomllib`; validated by hand (the hooks read it before every tool call, and pydantic's import
alone would take longer than the whole check); written with `tomli_w`.

    timezone = "Europe/Paris"

    [budgets]
    daily = 50.0            # USD, all projects
    weekly = 200.0
    monthly = 800.0
    total = 5000.0          # lifetime
    daily_tokens = 5000000  # input + output tokens (see token_count)
    token_count = "input+output"   # or "all": cache writes and reads count too
    concurrent_agents = 5   # sessions at work at once; a new one waits
    active_minutes = 30     # a session with no new line for this long is not at work

    [budgets.project]       # this project
    daily = 20.0
    monthly = 300.0
    total = 2000.0
    daily_tokens = 1000000

    [budgets.run]           # per run (a session, or one subagent run), by agent
    default = 5.0
    architect = 10.0

    [budgets.run_tokens]
    default = 100000

    [budgets.task]          # "default" applies to every task without its own
    default = 5.0
    task_1767031596_45196 = 12.0

    [budgets.enhancement]
    add-power-function = 40.0

    [budgets.session]
    default = 10.0

    [alerts]
    thresholds = [50, 80, 95]           # shown in Claude Code
    webhook = "https://hooks.slack.com/services/..."
    webhook_thresholds = [100]          # default: thresholds
    command = ["notify-send", "cmat"]   # an argv list (or a string split like a shell's words)
    command_thresholds = [95]

    [alerts.messages]                   # a template per threshold
    80 = "{percent}% of {budget} used"

    [alerts.email]                      # SMTP; STARTTLS unless starttls = false
    host = "smtp.example.com"
    port = 587
    from = "cmat@example.com"
    to = ["me@example.com"]
    username = "me"                     # the password: $CMAT_SMTP_PASSWORD or the keyring
    thresholds = [80]

A project file comes with a repository, which may be anybody's: it may only add budgets for
the project, its tasks, sessions and enhancements, and only stricter ones than the user's
(the lower limit wins). Commands, webhooks, user-wide budgets, time zone and thresholds come
from the user's file alone; whatever else a project file says is ignored, and said so
(`Config.ignored`). A project file that does not parse is ignored as a whole, so that it can
never switch the user's budgets off.
"""

from __future__ import annotations

import copy
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cmat import paths
from cmat.errors import ConfigError
from cmat.periods import PERIODS
from cmat.usage import APPS

DEFAULT_THRESHOLDS = (50, 80, 95)
DEFAULT_ACTIVE_MINUTES = 30
TOKEN_COUNTS = ("input+output", "all")  # what a token budget counts; see token_count
PLANS = ("pro", "max5", "max20", "custom")  # see cmat/plans.py
# The budgets `cmat budget set` knows: user-wide ones (all projects; the user's file only),
# and those of a project, its tasks, enhancements and sessions.
GLOBAL_PERIODS = PERIODS
LIFETIME = "total"
USER_WIDE_SCOPES = (*GLOBAL_PERIODS, LIFETIME, "daily-tokens", "concurrent-agents")
PROJECT_PERIODS = ("daily", "monthly", LIFETIME, "daily-tokens")
KEYED_SCOPES = ("task", "enhancement", "session")
RUN_SCOPES = ("run", "run-tokens")  # keyed by agent name
TEAM_SCOPES = ("team-daily", "team-weekly", "team-monthly")  # in the team database
# Keyed by a coding agent (claude-code, codex, ...) or a provider ("provider:openai"): that
# one's spend, every project's.
APP_SCOPES = ("app-daily", "app-weekly", "app-monthly")
SCOPES = (*USER_WIDE_SCOPES, "project", *KEYED_SCOPES, *RUN_SCOPES, *APP_SCOPES,
          *TEAM_SCOPES)
TOKEN_SCOPES = ("daily-tokens", "run-tokens")


@dataclass(frozen=True)
class EmailSettings:
    """Where email alerts go. The password is never in a file: it comes from the environment
    variable `password_env` or the system keyring (service "cmat", the username)."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password_env: str = "CMAT_SMTP_PASSWORD"
    starttls: bool = True
    cafile: str | None = None  # a CA to trust beyond the system's (a company's own)


@dataclass
class Config:
    timezone: str | None = None
    plan: str | None = None  # the subscription, for estimates of its 5-hour limit
    global_usd: dict[str, float] = field(default_factory=dict)  # period or "total" -> limit
    daily_tokens: int | None = None
    token_count: str = "input+output"
    concurrent_agents: int | None = None
    active_minutes: int = DEFAULT_ACTIVE_MINUTES
    project_usd: dict[str, float] = field(default_factory=dict)  # period or "total" -> limit
    project_tokens: dict[str, float] = field(default_factory=dict)  # "daily" -> limit
    # scope -> key -> limit: task, enhancement, session by id; run, run_tokens by agent
    keyed: dict[str, dict[str, float]] = field(default_factory=dict)
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    webhook: str | None = None
    command: tuple[str, ...] | None = None  # argv, run without a shell
    channel_thresholds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    messages: dict[int, str] = field(default_factory=dict)  # threshold -> template
    email: EmailSettings | None = None
    team_url: str | None = None  # the team database (libpq URL or conninfo, no password)
    auto_sync: bool = False  # the SessionEnd hook starts a detached `cmat sync`
    retention: str | None = None  # compact local requests older than this ("13m")
    on_error: str = "allow"  # when a check itself fails: "allow" (and say so) or "deny"
    # The team budgets as the last `cmat sync` cached them (scope -> USD), and its totals.
    team_budgets: dict[str, float] = field(default_factory=dict)
    team_totals: dict | None = None
    team_retention: str | None = None  # the same for the team database, run by `cmat sync`
    sources: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # what a project file may not set
    # Which file set each limit ('user' or 'project'), and the user's own value of a limit a
    # project file made stricter: what a "raise it with" hint must change.
    origin: dict[str, str] = field(default_factory=dict)
    user_value: dict[str, float] = field(default_factory=dict)

    @property
    def has_budgets(self) -> bool:
        return bool(self.global_usd or self.daily_tokens is not None or self.project_usd
                    or self.project_tokens or any(self.keyed.values())
                    or self.concurrent_agents is not None or bool(self.team_budgets))

    @property
    def has_run_limits(self) -> bool:
        """Whether a run (a session, or a subagent's run in it) has a limit of its own."""
        return bool({"run", "run_tokens"} & set(self.keyed))

    @property
    def tracks_sessions(self) -> bool:
        """Whether the checks record the sessions at work: a concurrency or a run limit."""
        return self.concurrent_agents is not None or self.has_run_limits

    @property
    def team_database(self) -> str | None:
        """The team database when one is set: CMAT_TEAM_URL, else `team.url`."""
        return os.environ.get("CMAT_TEAM_URL", "").strip() or self.team_url

    @property
    def channels(self) -> dict[str, tuple[int, ...]]:
        """The configured delivery channels, each with the thresholds it is sent at."""
        configured = {"webhook": self.webhook, "command": self.command, "email": self.email}
        return {name: self.channel_thresholds.get(name, self.thresholds)
                for name, value in configured.items() if value}

    @property
    def all_thresholds(self) -> tuple[int, ...]:
        """Every threshold an alert fires at: Claude Code's and every channel's."""
        return tuple(sorted(set(self.thresholds).union(*self.channels.values())))

    def keyed_limit(self, scope: str, key: str | None) -> float | None:
        limits = self.keyed.get(scope, {})
        if key is not None and key in limits:
            return limits[key]
        return limits.get("default")


CONFIG_LIMIT = 1024 * 1024
ON_ERROR = ("allow", "deny")  # what a budget check does when it cannot finish


def on_error_policy(project: Path) -> str:
    """What a budget check that failed does: CMAT_BUDGET_ON_ERROR, else `budgets.on_error`
    of the config (a config that cannot be read leaves the environment's word, or allow)."""
    chosen = os.environ.get("CMAT_BUDGET_ON_ERROR", "").strip().lower()
    if chosen in ON_ERROR:
        return chosen
    try:
        return load_config(project).on_error
    except Exception:  # the very error being handled may be this config's
        return "allow"


def toml_key(scope: str) -> str:
    """A scope's name in the TOML file: `daily-tokens` is `daily_tokens`."""
    return scope.replace("-", "_")


def read_toml(path: Path) -> dict:
    """A config file's tables ({} when there is none), through the one safe reader: a
    project's file comes with a repository, and may be a FIFO or a device."""
    from cmat.untrusted import Unreadable, read_untrusted_text

    try:
        text = read_untrusted_text(path, CONFIG_LIMIT)
    except Unreadable as exc:
        raise ConfigError(f"cannot read {exc.message}", exc.hint) from None
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} nests tables too deeply to be a cmat config") from None


def _amount(path: Path, name: str, value, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or value < 0 or (integer and not float(value).is_integer()):
        kind = "a whole number of tokens" if integer else "an amount in USD"
        raise ConfigError(f"{path}: {name} must be {kind}, 0 or more (found {value!r})")
    return int(value) if integer else float(value)


def _command(path: Path, value) -> tuple[str, ...]:
    if isinstance(value, str) and value.strip():
        import shlex  # only a config with an alert command needs it

        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise ConfigError(f"{path}: alerts.command: {exc}") from None
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigError(f"{path}: alerts.command must be a list of words such as "
                      "['notify-send', 'cmat'], or a non-empty string")


def _has_password(url: str) -> bool:
    import re

    return bool(re.search(r"://[^/@:]*:[^/@]*@", url) or re.search(
        r"(^|\s|[?&])password\s*=", url))


def _thresholds(path: Path, name: str, value) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 100
            for v in value):
        raise ConfigError(f"{path}: {name} must be a list of percentages in (0, 100]")
    return tuple(sorted(set(int(v) for v in value)))


# What an alert message template may name, with an example of each, of the very type each
# has when an alert is sent (a template is checked against these, so `{percent:d}` on a text
# value is refused at load, not when the budget is reached).
MESSAGE_FIELDS = {"percent": "80", "threshold": 80, "budget": "daily budget", "spent": "$40.00",
                  "limit": "$50.00", "remaining": "$10.00", "level": "warning",
                  "reset": "Reset at 00:00 Europe/Paris"}


def render_message(template: str, fields: dict) -> str:
    """An alert template filled in. Only plain field names are allowed (no `{budget.attr}`
    or `{budget[0]}`: a template must not reach into objects) and no nested fields in a
    format spec; raises ValueError or KeyError otherwise."""
    import string

    for _, name, spec, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in fields:
            raise KeyError(name)
        if spec and ("{" in spec or "}" in spec):
            raise ValueError(f"{{{name}}} has a nested field in its format")
        if len(spec or "") > 20:
            raise ValueError(f"{{{name}}} has a format longer than 20 characters")
    return template.format_map(fields)


def _messages(path: Path, table: dict) -> dict[int, str]:
    messages = {}
    for key, template in table.items():
        if not key.isdigit() or not 0 < int(key) <= 100:
            raise ConfigError(f"{path}: alerts.messages.{key}: the key is a threshold, a "
                              "percentage such as 80")
        if not isinstance(template, str) or not template.strip():
            raise ConfigError(f"{path}: alerts.messages.{key} must be text")
        try:
            render_message(template, MESSAGE_FIELDS)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            what = f"{{{exc.args[0]}}} is not a field" if isinstance(exc, KeyError) else \
                f"{exc} (write {{{{ and }}}} for braces)"
            raise ConfigError(f"{path}: alerts.messages.{key}: {what} (fields: "
                              f"{', '.join('{' + f + '}' for f in MESSAGE_FIELDS)})") from None
        messages[int(key)] = template
    return messages


def _email(path: Path, table: dict) -> tuple[EmailSettings, tuple[int, ...]]:
    known = {"host", "port", "from", "to", "username", "password_env", "starttls", "cafile",
             "thresholds"}
    for key in table:
        if key not in known:
            raise ConfigError(f"{path}: unknown email setting 'alerts.email.{key}' "
                              f"(known: {', '.join(sorted(known))})")

    def text(key: str, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: alerts.email.{key} must be text")
        return value

    to = table.get("to")
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a
                                                      for a in to):
        raise ConfigError(f"{path}: alerts.email.to must be an address or a list of them")
    starttls = table.get("starttls", True)
    if not isinstance(starttls, bool):
        raise ConfigError(f"{path}: alerts.email.starttls must be true or false")
    port = table.get("port", 587 if starttls else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{path}: alerts.email.port must be a port number")
    thresholds = (_thresholds(path, "alerts.email.thresholds", table["thresholds"])
                  if "thresholds" in table else ())
    return EmailSettings(text("host", True), port, text("from", True), tuple(to),
                         text("username"), text("password_env") or "CMAT_SMTP_PASSWORD",
                         starttls, text("cafile")), thresholds


def _stricter(config: Config, target: dict, key: str, limit: float, path: Path,
              name: str, trusted: bool) -> None:
    """Set a limit; from a project file only where the user set none or a looser one."""
    current = target.get(key)
    if not trusted and current is not None:
        if current < limit:
            config.ignored.append(f"{path}: {name} = {limit:g} is looser than the user's "
                                  f"{current:g}; the user's limit stands")
            return
        config.user_value[name] = current
    target[key] = limit
    config.origin[name] = "user" if trusted else "project"


# --- the schema: every setting a config file may hold ---------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting: `parse` checks a file's value (raising ConfigError that names it) and
    returns what `store` puts in the Config. A project file may set it only where
    `from_project` says the parsed value may come from a repository (else it is ignored and
    noted): by default never."""

    parse: Callable[[Path, str, object], object]
    store: Callable[[Config, object], None]
    from_project: Callable[[object], bool] = lambda value: False


def _attribute(name: str) -> Callable[[Config, object], None]:
    return lambda config, value: setattr(config, name, value)


def _entry(mapping: str, key: str) -> Callable[[Config, object], None]:
    return lambda config, value: getattr(config, mapping).__setitem__(key, value)


def _one_of(choices: tuple[str, ...]) -> Callable[[Path, str, object], str]:
    def parse(path: Path, name: str, value) -> str:
        if value not in choices:
            raise ConfigError(f"{path}: {name} must be one of {', '.join(choices)} "
                              f"(found {value!r})")
        return value
    return parse


def _whole(minimum: int) -> Callable[[Path, str, object], int]:
    def parse(path: Path, name: str, value) -> int:
        number = int(_amount(path, name, value, integer=True))
        if number < minimum:
            raise ConfigError(f"{path}: {name} must be {minimum} or more")
        return number
    return parse


def _timezone(path: Path, name: str, value) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {name} must be an IANA name such as 'Europe/Paris'")
    return value


def _team_url(path: Path, name: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: {name} must be a PostgreSQL URL or conninfo")
    if _has_password(value):
        raise ConfigError(f"{path}: {name} holds a password: keep it in ~/.pgpass or "
                          "PGPASSWORD instead, never in a file cmat reads")
    return value.strip()


def _flag(path: Path, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: {name} must be true or false")
    return value


def _age(path: Path, name: str, value) -> str:
    from cmat.periods import parse_age

    parse_age(value if isinstance(value, str) else repr(value), name)
    return value


def _webhook(path: Path, name: str, value) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(f"{path}: {name} must be an http(s) URL")
    return value


def _sub_table(parse: Callable[[Path, dict], object]) -> Callable[[Path, str, object], object]:
    def parse_table(path: Path, name: str, value) -> object:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        return parse(path, value)
    return parse_table


def _store_email(config: Config, parsed) -> None:
    config.email, thresholds = parsed
    if thresholds:
        config.channel_thresholds["email"] = thresholds


def _usd(path: Path, name: str, value) -> float:
    return _amount(path, name, value)


def _tokens(path: Path, name: str, value) -> int:
    return int(_amount(path, name, value, integer=True))


SETTINGS: dict[str, Setting] = {
    "timezone": Setting(_timezone, _attribute("timezone")),
    "plan": Setting(_one_of(PLANS), _attribute("plan")),
    **{f"budgets.{period}": Setting(_usd, _entry("global_usd", period))
       for period in (*GLOBAL_PERIODS, LIFETIME)},
    "budgets.daily_tokens": Setting(_tokens, _attribute("daily_tokens")),
    "budgets.token_count": Setting(_one_of(TOKEN_COUNTS), _attribute("token_count")),
    # A project may make a failed check stricter (deny), never looser.
    "budgets.on_error": Setting(_one_of(ON_ERROR), _attribute("on_error"),
                                from_project=lambda value: value == "deny"),
    "budgets.concurrent_agents": Setting(_whole(0), _attribute("concurrent_agents")),
    "budgets.active_minutes": Setting(_whole(1), _attribute("active_minutes")),
    "team.url": Setting(_team_url, _attribute("team_url")),
    "team.auto_sync": Setting(_flag, _attribute("auto_sync")),
    "retention.older_than": Setting(_age, _attribute("retention")),
    "retention.team_older_than": Setting(_age, _attribute("team_retention")),
    "alerts.thresholds": Setting(_thresholds, _attribute("thresholds")),
    "alerts.webhook_thresholds": Setting(_thresholds, _entry("channel_thresholds", "webhook")),
    "alerts.command_thresholds": Setting(_thresholds, _entry("channel_thresholds", "command")),
    "alerts.messages": Setting(_sub_table(_messages), _attribute("messages")),
    "alerts.email": Setting(_sub_table(_email), _store_email),
    "alerts.webhook": Setting(_webhook, _attribute("webhook")),
    "alerts.command": Setting(lambda path, name, value: _command(path, value),
                              _attribute("command")),
}
# Tables of limits, one per key: a project file may add them, or make the user's stricter.
# Each maps a key of the table to (the Config mapping, its key there, whole tokens?).
PROJECT_LIMITS = {**{toml_key(p): ("project_usd", p, False)
                     for p in PROJECT_PERIODS if p != "daily-tokens"},
                  "daily_tokens": ("project_tokens", "daily", True)}
LIMIT_TABLES = ("budgets.project", *(f"budgets.{toml_key(s)}" for s in (*KEYED_SCOPES,
                                                                          *RUN_SCOPES,
                                                                          *APP_SCOPES)))
TABLES = {"budgets": "budget", "alerts": "alert setting", "team": "team setting",
          "retention": "retention setting"}  # each with what an unknown key of it is called


APP_TABLES = tuple(toml_key(scope) for scope in APP_SCOPES)


def app_key(key: str) -> bool:
    """Whether `key` names what an app budget can count: an app, or provider:NAME."""
    kind, _, name = key.partition(":")
    return key in APPS or (kind == "provider" and bool(name.strip()))


def _limits(config: Config, path: Path, name: str, table: dict, trusted: bool) -> None:
    scope = name.removeprefix("budgets.")
    for key, value in table.items():
        where = f"{name}.{key}"
        if scope == "project":
            if key not in PROJECT_LIMITS:
                raise ConfigError(f"{path}: {where}: project budgets are "
                                  f"{', '.join(PROJECT_LIMITS)}")
            mapping, slot, whole = PROJECT_LIMITS[key]
            target = getattr(config, mapping)
        else:
            if scope in APP_TABLES and not app_key(key):
                raise ConfigError(f"{path}: {where}: an app budget names a coding agent "
                                  f"({', '.join(APPS)}) or a provider (provider:NAME)")
            slot, whole = key, scope == "run_tokens"
            target = config.keyed.setdefault(scope, {})
        _stricter(config, target, slot, _amount(path, where, value, integer=whole), path,
                  where, trusted)


def apply_file(config: Config, path: Path, data: dict, trusted: bool = True) -> None:
    """Overlay one file's values on `config`, validating every field it names (SETTINGS).

    `trusted`: the user's own file. A project file (not trusted) may only add stricter
    project, task, session, enhancement and run budgets (LIMIT_TABLES), and what a Setting
    lets it; anything else it sets is ignored and noted.
    """
    known = sorted({name.split(".")[0] for name in SETTINGS})
    for key, value in data.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table")
            items = [(f"{key}.{name}", item) for name, item in value.items()]
        elif key in SETTINGS:
            items = [(key, value)]
        else:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(known)})")
        for name, item in items:
            if name in LIMIT_TABLES:
                if not isinstance(item, dict):
                    raise ConfigError(f"{path}: [{name}] must be a table")
                _limits(config, path, name, item, trusted)
                continue
            setting = SETTINGS.get(name)
            if setting is None:
                raise ConfigError(f"{path}: unknown {TABLES[key]} {name!r}")
            parsed = setting.parse(path, name, item)
            if trusted or setting.from_project(parsed):
                setting.store(config, parsed)
            else:
                config.ignored.append(f"{path}: {name} ignored: only the user's config "
                                      f"({paths.user_config_file()}) may set it")


def _team_cache(config: Config) -> None:
    """The team budgets and totals the last sync cached (a hook never asks the database)."""
    import json

    try:
        data = json.loads(paths.team_cache().read_text())
    except (OSError, ValueError):
        return
    budgets = data.get("budgets") if isinstance(data, dict) else None
    if isinstance(budgets, dict):
        config.team_budgets = {scope: float(limit) for scope, limit in budgets.items()
                               if scope in TEAM_SCOPES and isinstance(limit, (int, float))}
        config.team_totals = data


def load_config(project: Path) -> Config:
    """The user's configuration, with what the project's file may add (see above).

    A broken user file raises ConfigError; a broken project file is ignored and noted.
    """
    config = Config()
    user = paths.user_config_file()
    data = read_toml(user)
    if data:
        apply_file(config, user, data)
        config.sources.append(str(user))
    if config.team_database:
        _team_cache(config)
    path = paths.project_config_file(project)
    if path.resolve() == user.resolve():
        return config
    try:
        data = read_toml(path)
        if data:
            trial = copy.deepcopy(config)
            apply_file(trial, path, data, trusted=False)
            config = trial
            config.sources.append(str(path))
    except ConfigError as exc:
        config.ignored.append(f"{exc}; the whole file is ignored")
    return config
