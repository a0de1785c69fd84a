"""Every command's --help, and the exit codes, as one Markdown page (docs/cli.md); test_cli
checks it is current.

    python -m tests.cli_reference > docs/cli.md
"""

import click
from click.testing import CliRunner

from cmat.cli import cli
from cmat.errors import exit_codes


def commands(group: click.Group, prefix: list[str]):
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if command is None or command.hidden:
            continue
        yield [*prefix, name], command
        if isinstance(command, click.Group):
            yield from commands(command, [*prefix, name])


def render() -> str:
    runner = CliRunner()
    parts = ["# cmat command reference\n",
             "Generated from `--help` by `python -m tests.cli_reference`; do not edit.\n"]
    for path, _ in [([], cli), *commands(cli, [])]:
        result = runner.invoke(cli, [*path, "--help"], terminal_width=100, prog_name="cmat")
        parts.append(f"## cmat {' '.join(path)}\n".replace("cmat \n", "cmat\n"))
        parts.append("```text\n" + result.output.rstrip() + "\n```\n")
    parts.append("## Exit codes\n\nEvery command's; a hook always exits 0.\n")
    parts.append("| code | meaning |\n|---:|---|\n" + "".join(
        f"| {code} | {meaning} |\n" for code, meaning in exit_codes()))
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
