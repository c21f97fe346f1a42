"""Known read-only commands: what the `untrusted` preset runs without asking.

A command is read-only when its program only reads, *and* none of its words
is a flag that makes it write or execute: `find -exec/-execdir/-ok/-okdir/
-delete/-fprint*/-fls`, `rg --pre/--hostname-bin/-z`, `sort -o/--output/
--compress-program`, `git diff --output/--ext-diff/--textconv`, `sed -i` or a
sed script other than line printing, `fd -x/-X`, `tree -o`, `file -C`, `date
-s`, `printf -v`, a second operand to `uniq`/`xxd` (their output file), and
so on below.

The check is on the argv, conservatively:

- the program is named without a path (`./ls` may be anything), with no
  variable assignments before it (`PATH=. ls`, `GIT_PAGER=sh git log`);
- long options are matched by prefix, since GNU getopt and git accept
  abbreviations (`sort --out=x` is `--output=x`); short options inside a
  cluster count (`sort -ro x`); a flag that takes a value may hide a letter
  that is not a flag (`rg -ez` searches for "z") — such false alarms ask;
- for programs that have such flags, a word that is not literal and may
  expand to an option (`$X`, `*.txt`, see `shell.Word`) makes the command
  not read-only: its flags cannot be checked;
- git: only `status`, `diff`, `log`, `show`, `blame`, `ls-files`,
  `rev-parse`, `grep` (not `-O`) and listing `branch`, with no global option
  but `--no-pager`/`-P` and `-C DIR`.

Not covered: what programs read from files the agent can write. git honours
the repository's config and attributes (`core.fsmonitor`, `core.pager`,
`diff.external`, textconv filters), which can run commands; rg and grep
read ignore files. A read-only command still runs inside the sandbox: the
sandbox, not this list, bounds what such a command can do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .shell import Command, Word

PLAIN = frozenset(
    {
        # files and text
        "cat", "head", "tail", "wc", "nl", "tac", "cut", "tr", "rev", "paste", "column",
        "grep", "egrep", "fgrep", "diff", "cmp", "comm", "od", "hexdump", "strings", "jq",
        "md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum", "sha512sum", "b2sum", "cksum",
        # the file system
        "ls", "stat", "du", "df", "basename", "dirname", "realpath", "readlink", "pwd", "cd",
        # the shell and the system
        "echo", "true", "false", "test", "[", "which", "whoami", "id", "uname", "seq",
    }
)  # fmt: skip
"""Programs no option of which writes a file or runs another program."""


@dataclass(frozen=True, slots=True)
class Flags:
    """The options that make an otherwise read-only program write or execute."""

    short: str = ""
    """Single-letter options (`-o`), also inside a cluster (`-ro`)."""
    long: tuple[str, ...] = ()
    """Long options (`--output`), also abbreviated or with `=value`."""
    exact: frozenset[str] = frozenset()
    """Whole words (`find -exec`)."""
    max_operands: int | None = None
    """More operands than this name an output file (`uniq IN OUT`)."""
    values: str = ""
    """Single-letter options whose value is the next word (not an operand)."""
    end_of_options: bool = True
    """`--` ends the options (not for find, whose expression follows its paths)."""


FLAGGED: dict[str, Flags] = {
    "find": Flags(
        exact=frozenset(
            {
                "-exec",
                "-execdir",
                "-ok",
                "-okdir",
                "-delete",
                "-fprint",
                "-fprint0",
                "-fprintf",
                "-fls",
            }
        ),
        end_of_options=False,
    ),
    "rg": Flags(short="z", long=("--pre", "--hostname-bin", "--search-zip")),
    "sort": Flags(short="o", long=("--output", "--compress-program")),
    "fd": Flags(short="xX", long=("--exec", "--exec-batch")),
    "tree": Flags(short="oR", long=("--output",)),  # -R reruns tree with -o in every directory
    "file": Flags(short="C", long=("--compile",)),
    "date": Flags(short="s", long=("--set",)),
    "uniq": Flags(max_operands=1, values="fsw"),
    "xxd": Flags(max_operands=1, values="cglosn"),
    "printf": Flags(short="v"),  # bash's `printf -v PATH .` sets a variable
}
"""Read-only programs but for these options."""

_GIT_DIFF = Flags(long=("--output", "--ext-diff", "--textconv"))
GIT_SUBCOMMANDS: dict[str, Flags] = {
    "status": Flags(),
    "diff": _GIT_DIFF,
    "log": _GIT_DIFF,
    "show": _GIT_DIFF,
    "blame": Flags(),
    "ls-files": Flags(),
    "rev-parse": Flags(),
    "grep": Flags(short="O", long=("--open-files-in-pager", "--ext-grep")),
}
_GIT_BRANCH_LISTING = frozenset(
    {"-a", "-r", "-v", "-vv", "--all", "--remotes", "--verbose", "--show-current", "-l", "--list",
     "--no-color"}
)  # fmt: skip

_SED_OPTIONS = frozenset(
    {"-n", "--quiet", "--silent", "-E", "-r", "--regexp-extended", "-s", "--separate", "-u",
     "--unbuffered", "-z", "--null-data", "--posix"}
)  # fmt: skip
# Line printing only: `p`, `5p`, `1,20p`, `$p`, `10q`, `=`, `1d`; no w/W/e/r/s commands.
_SED_SAFE = re.compile(r"\s*(?:(?:\d+|\$)(?:\s*,\s*(?:\d+|\$))?)?\s*[pdq=]\s*")


def is_read_only(cmd: Command) -> bool:
    """True when `cmd` is a known read-only command with no flag that writes or executes."""
    if not cmd.words or cmd.assignments:
        return False
    name = cmd.words[0]
    if not name.literal or "/" in name.text:
        return False
    args = cmd.words[1:]
    if name.text in PLAIN:
        return True
    flags = FLAGGED.get(name.text)
    if flags is not None:
        return _allowed(args, flags)
    if name.text == "git":
        return _git(args)
    if name.text == "sed":
        return _sed(args)
    return False


def _allowed(args: Sequence[Word], flags: Flags) -> bool:
    operands = 0
    options = True
    skip_value = False
    for w in args:
        if not w.literal:
            if w.may_be_option and options:
                return False
            if skip_value:
                skip_value = False
            else:
                operands += 1 if w.single else 2  # several: enough to fail max_operands
            continue
        text = w.text
        if not options or not text.startswith("-") or text == "-":
            if skip_value:
                skip_value = False
            else:
                operands += 1
            continue
        skip_value = False
        if text == "--" and flags.end_of_options:
            options = False
        elif text in flags.exact:
            return False
        elif text.startswith("--"):
            given = text.split("=", 1)[0]
            if any(bad.startswith(given) for bad in flags.long):
                return False
        elif any(ch in flags.short for ch in text[1:]):
            return False
        else:
            skip_value = text[-1] in flags.values
    return flags.max_operands is None or operands <= flags.max_operands


def _git(args: Sequence[Word]) -> bool:
    i = 0
    while i < len(args) and args[i].literal and args[i].text.startswith("-"):
        if args[i].text in ("--no-pager", "-P"):
            i += 1
        elif args[i].text == "-C" and i + 1 < len(args) and args[i + 1].literal:
            i += 2
        else:
            return False  # -c, -p, --exec-path, --git-dir, ...: config, pagers, other repos
    if i >= len(args) or not args[i].literal:
        return False
    sub, rest = args[i].text, args[i + 1 :]
    if sub == "branch":
        listing = any(w.literal and w.text in ("-l", "--list") for w in rest)
        return all(
            w.literal
            and (w.text in _GIT_BRANCH_LISTING or (listing and not w.text.startswith("-")))
            for w in rest
        )
    flags = GIT_SUBCOMMANDS.get(sub)
    return flags is not None and _allowed(rest, flags)


def _sed(args: Sequence[Word]) -> bool:
    scripts: list[str] = []
    operands: list[Word] = []
    i = 0
    while i < len(args):
        w = args[i]
        if not w.literal:
            if w.may_be_option:
                return False
            operands.append(w)
        elif w.text in ("-e", "--expression") and i + 1 < len(args):
            if not args[i + 1].literal:
                return False
            scripts.append(args[i + 1].text)
            i += 1
        elif w.text.startswith("--expression="):
            scripts.append(w.text.split("=", 1)[1])
        elif w.text.startswith("-") and w.text != "-":
            if w.text not in _SED_OPTIONS:
                return False  # -i, --in-place, -f, --file, and anything unknown
        else:
            operands.append(w)
        i += 1
    if not scripts:
        if not operands or not operands[0].literal:
            return False
        scripts.append(operands[0].text)
    return all(_SED_SAFE.fullmatch(s) for s in scripts)
