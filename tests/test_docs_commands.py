"""The commands in README.md and docs/courses.md go through the configurator as they are written:
every config file they name exists, every --key is a setting of its script and every value parses,
so renaming a key or a config breaks this test, not a reader's run. Scripts that take argparse
options (data/*/prepare.py, plot.py, bench/*.py) must define each option the docs pass them."""

import importlib
import os
import re
import shlex

import pytest

from configurator import ConfigError, apply_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", os.path.join("docs", "courses.md")]
CONFIGURED = {"train.py", "sample.py", "evaluate.py", "bench.py", "export.py", "ablate.py"}
SEPARATORS = {"&&", "||", ";", "|", "&"}


def code_lines(text):
    """The lines of every fenced code block, continuation lines joined, and every inline `python ...` span."""
    lines = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M):
        lines += block.replace("\\\n", " ").splitlines()
    lines += [span for span in re.findall(r"`(python [^`]+)`", text) if "<" not in span]  # not `--dataset=<name>`
    return lines


def commands(line):
    """The commands of one shell line that run a script of this repository: (script, [arguments])."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    words, found = list(lexer), []
    starts = [0] + [i + 1 for i, w in enumerate(words) if w in SEPARATORS]
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(words)
        command = words[start:end]
        scripts = [j for j, w in enumerate(command) if w.endswith(".py") and os.path.isfile(os.path.join(ROOT, w))
                   and not w.startswith("config/")]
        if scripts:
            found.append((command[scripts[0]], command[scripts[0] + 1:]))
    return found


def doc_commands():
    found = []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            for line in code_lines(f.read()):
                found += [(doc, script, args) for script, args in commands(line)]
    return found


def settings(script):
    """A fresh copy of what a script's configurator checks against (ablate.py hands train.py's keys on)."""
    module = importlib.import_module(script[:-3])
    g = dict(vars(module))
    if script == "ablate.py":
        g = {**vars(importlib.import_module("train")), **g}
    return g


def check(script, args):
    """Raise ConfigError (configurator scripts) or AssertionError (argparse scripts) for a bad argument."""
    if script in CONFIGURED:
        if args != ["--help"]:
            apply_overrides(settings(script), args, "skip_in_files" if script == "bench.py" else "error")
        return
    with open(os.path.join(ROOT, script), encoding="utf-8") as f:
        source = f.read()
    for arg in args:
        if arg.startswith("--"):
            option = arg[2:].split("=", 1)[0]
            assert f'"--{option}"' in source, f"{script} has no option --{option}"


def test_the_docs_have_commands_of_every_kind():
    scripts = {script for _, script, _ in doc_commands()}
    assert CONFIGURED <= scripts and "data/wikitext/prepare.py" in scripts and "plot.py" in scripts


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_parses(doc, monkeypatch):
    monkeypatch.chdir(ROOT)  # config files name other config files relative to the repository
    bad = []
    for where, script, args in doc_commands():
        if where != doc:
            continue
        try:
            check(script, args)
        except (ConfigError, AssertionError) as e:
            bad.append(f"python {script} {' '.join(args)}\n    {e}")
    assert not bad, f"{doc}: commands that would stop at their arguments:\n" + "\n".join(bad)


def test_a_wrong_key_or_config_is_caught():
    for line in ["python train.py config/train_tiny.py --lerning_rate=1e-3",
                 "python data/birthplace/prepare.py --input=PATH && python train.py config/no_such_config.py",
                 "python evaluate.py --out_dir=out --task=qa --holdout=0",
                 "python data/wikitext/prepare.py --vocab=8192"]:
        (script, args), = commands(line)[-1:]
        with pytest.raises((ConfigError, AssertionError)):
            check(script, args)
