"""Every command of both apps documents itself with an example that names only its real options (issue 18)."""

from __future__ import annotations

import re
import shlex

import click
import pytest
import typer.main

import multicam_app
import recam.cli


def _leaves(cmd: click.Command, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], click.Command]]:
    subs = getattr(cmd, "commands", None)
    if not subs:
        return [(path, cmd)]
    out: list[tuple[tuple[str, ...], click.Command]] = []
    for name, sub in sorted(subs.items()):
        out += _leaves(sub, path + (name,))
    return out


COMMANDS = (_leaves(typer.main.get_command(multicam_app.app), ("multicam",))
            + _leaves(typer.main.get_command(recam.cli.app), ("recam",)))


def test_both_apps_have_commands() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"multicam generate", "multicam render", "multicam validate", "recam train"} <= names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_has_an_example_with_real_options(path: tuple[str, ...], cmd: click.Command) -> None:
    text = " ".join(filter(None, [cmd.help, cmd.epilog]))
    m = re.search(r"Example:\s*(.+?)(?:\n\n|$)", text, re.S)
    assert m, f"{' '.join(path)}: --help has no 'Example:' line"
    example = shlex.split(" ".join(m.group(1).split()).split("(")[0])
    assert tuple(example[: len(path)]) == path, f"example does not start with {' '.join(path)}: {example}"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    used = [t.split("=")[0] for t in example if t.startswith("--")]
    unknown = [t for t in used if t not in known]
    assert not unknown, f"{' '.join(path)}: example uses options the command lacks: {unknown}"


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_progress_flags_can_be_turned_off(path: tuple[str, ...], cmd: click.Command) -> None:
    opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    if "--progress" in opts:
        assert "--no-progress" in opts, f"{' '.join(path)} has --progress without --no-progress"


#: One name for one thing across commands: a name on the left is spelled as on the right everywhere (an old name may
#: stay as a second, alias spelling of the option, never as its first).
CANONICAL = {"--size": "--resolution", "--num-frames": "--frames", "--passes": "--pass", "--extra-pass": "--pass",
             "--extra-passes": "--pass", "--quiet": "--no-progress", "--progress-bar": "--progress"}


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_one_name_for_one_thing(path: tuple[str, ...], cmd: click.Command) -> None:
    firsts = [p.opts[0] for p in cmd.params if isinstance(p, click.Option)]
    odd = {o: CANONICAL[o] for o in firsts if o in CANONICAL}
    assert not odd, f"{' '.join(path)}: options named as nowhere else: {odd}"
    opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    # multicam's frames are square (MultiCamVideo: 1280 x 1280): --width/--height come with the --resolution
    # shorthand. recam's --width/--height are the model's (832 x 480) size.
    if path[0] == "multicam" and opts & {"--width", "--height"}:
        assert "--resolution" in opts, f"{' '.join(path)} has --width/--height but no --resolution"


#: Commands that show a progress bar (tqdm) while they work; each can turn it off with --no-progress.
SHOWS_A_BAR = {"multicam generate", "multicam render", "multicam plan", "multicam extend", "multicam validate",
               "multicam export", "multicam stats", "multicam preview", "multicam sample-cameras",
               "recam prepare", "recam train", "recam infer"}


def test_every_command_with_a_bar_has_no_progress() -> None:
    by_name = {" ".join(p): cmd for p, cmd in COMMANDS}
    lacking = sorted(n for n in SHOWS_A_BAR
                     if "--no-progress" not in {o for p in by_name[n].params for o in (*p.opts, *p.secondary_opts)})
    assert not lacking, f"commands with a progress bar but no --no-progress: {lacking}"
