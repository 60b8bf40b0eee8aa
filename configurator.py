"""
Command-line overrides for the globals-driven scripts (train.py, sample.py, bench.py, ...).

    python train.py config/train_shakespeare_char.py --batch_size=32 --compile=False

A config file is plain Python, run first; then each --key=value replaces one global.
Values are read with ast.literal_eval (so 3, 3e-4, True, (0.9, 0.95), 'text') and fall
back to the raw string (so --device=cuda:1 works without quotes). Unknown keys and
wrong types stop the run with one line naming the nearest valid keys. A script may name
in a list AUTO_KEYS the keys that also take the word 'auto' (train.py: learning_rate), which
it resolves itself.

A script that reads another script's config files says which keys it may skip:
unknown_keys="skip_in_files" (bench.py: a train.py config sets keys bench.py has no use for,
but a mistyped --key is still an error) or "skip" (ablate.py, which hands every argument to
train.py, and train.py names the nearest key).

--help lists the settings, one a line: its default and the comment beside it in the script
(`key = value  # what it does`; a comment line below it that starts with "# ..." goes on), or,
for a field of a dataclass the script holds (train.py's GPTConfig), in that class.

Scripts call configure(globals()); tests call apply_overrides on a plain dict.
"""

import ast
import dataclasses
import difflib
import inspect
import io
import os
import sys
import tokenize


class ConfigError(ValueError):
    pass


def config_keys(globals_dict):
    """The globals a user may override: plain values, not modules, functions, _private names or
    UPPER_CASE module constants (evaluate.py's TASKS)."""
    plain = (int, float, bool, str, tuple, type(None))
    return [k for k, v in globals_dict.items() if not k.startswith("_") and not k.isupper() and isinstance(v, plain)]


def _unknown(key, keys):
    near = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join('--' + k for k in near)}?" if near else "; see --help for all keys"
    return ConfigError(f"unknown config key '{key}'{hint}")


def _parse(key, text, default, auto=False):
    """Turn the command-line text for key into a value of the default's type (or 'auto')."""
    if text.lower() in ("true", "false"):
        value = text.lower() == "true"  # any case: --compile=false
    else:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word such as --device=cpu
    return _check(key, value, default, text, auto)


def _check(key, value, default, shown=None, auto=False):
    if default is None or value is None or (auto and value == "auto"):
        return value
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # --learning_rate=1 means 1.0
    if want is str and not isinstance(value, str):
        return shown if shown is not None else str(value)  # --out_dir=2024 is the string '2024'
    if want is tuple and isinstance(value, list):
        return tuple(value)
    if type(value) is not want:
        shown = shown if shown is not None else repr(value)
        also = " or 'auto'" if auto else ""
        raise ConfigError(f"--{key} expects {want.__name__}{also} (default {default!r}), got {shown!r}")
    return value


UNKNOWN_KEYS = ("error", "skip_in_files", "skip")


def apply_overrides(globals_dict, argv, unknown_keys="error"):
    """Apply config files and --key=value arguments (in order) to globals_dict.
    Returns {key: value} of everything that was set, so a caller can tell what the
    user chose explicitly. Raises ConfigError with a one-line message. unknown_keys: what
    a key globals_dict does not have is: an error, skipped in config files, or skipped."""
    if unknown_keys not in UNKNOWN_KEYS:
        raise ValueError(f"unknown_keys must be one of {UNKNOWN_KEYS}, not {unknown_keys!r}")
    keys = config_keys(globals_dict)
    auto = globals_dict.get("AUTO_KEYS", [])
    chosen = {}
    for arg in argv:
        if not arg.startswith("--"):
            if not os.path.isfile(arg):
                raise ConfigError(f"config file '{arg}' not found (arguments are a config file, then --key=value)")
            scope = {}
            with open(arg) as f:
                exec(compile(f.read(), arg, "exec"), scope)
            for k, v in scope.items():
                if k.startswith("_") or k not in config_keys(scope):
                    continue  # imports, helper functions, private names
                if k not in globals_dict:
                    if unknown_keys != "error":
                        continue
                    raise ConfigError(f"{arg}: " + str(_unknown(k, keys)))
                globals_dict[k] = chosen[k] = _check(k, v, globals_dict[k], auto=k in auto)
            continue
        if "=" not in arg:
            raise ConfigError(f"'{arg}' has no value; write --key=value (e.g. {arg}=True)")
        key, text = arg[2:].split("=", 1)
        if key not in keys:
            if unknown_keys == "skip":
                continue
            raise _unknown(key, keys)
        globals_dict[key] = chosen[key] = _parse(key, text, globals_dict[key], key in auto)
    return chosen


def source_comments(source):
    """{name: comment} for the assignments at the top level of source (a module, or one class:
    its body) that carry a comment on their lines; a comment line right below that starts with
    "# ..." continues the comment."""
    tree = ast.parse(source)
    body = tree.body[0].body if len(tree.body) == 1 and isinstance(tree.body[0], ast.ClassDef) else tree.body
    by_line = {}  # line number -> its comment's text (tokenize: a '#' inside a string is no comment)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            by_line[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    found = {}
    for node in body:
        target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0] if isinstance(node, ast.Assign) else None
        if not isinstance(target, ast.Name):
            continue
        parts = [by_line[n] for n in range(node.lineno, node.end_lineno + 1) if n in by_line]
        n = node.end_lineno + 1
        while parts and n in by_line and lines[n - 1].strip().startswith("# ..."):
            parts.append(by_line[n].removeprefix("...").strip())
            n += 1
        if parts:
            found[target.id] = " ".join(parts)
    return found


def key_comments(globals_dict):
    """Each key's comment: from the script's own source, else from a dataclass it holds (GPTConfig)."""
    comments = {}
    for cls in [v for v in globals_dict.values() if isinstance(v, type) and dataclasses.is_dataclass(v)]:
        comments.update(source_comments(inspect.cleandoc("\n" + inspect.getsource(cls))))
    path = globals_dict.get("__file__")
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            comments.update(source_comments(f.read()))
    return comments


def help_text(globals_dict, script):
    """The usage line, then one line per key: --key=default and, where the source has one, its comment."""
    comments = key_comments(globals_dict)
    settings = [(f"--{k}={globals_dict[k]!r}", comments.get(k, "")) for k in config_keys(globals_dict)]
    width = min(max((len(s) for s, _ in settings), default=0), 32)
    lines = [f"usage: python {script} [config/file.py] [--key=value ...]", "",
             "settings (a config file first, then --key=value), their defaults and what they do:"]
    for setting, comment in settings:
        lines.append(f"  {setting:<{width}}  # {comment}" if comment else f"  {setting}")
    return "\n".join(lines)


def configure(globals_dict, argv=None, unknown_keys="error"):
    """The scripts' entry point: --help prints every key; an error prints one line and exits 2."""
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        print(help_text(globals_dict, os.path.basename(sys.argv[0])))
        sys.exit(0)
    try:
        return apply_overrides(globals_dict, argv, unknown_keys)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
