"""Shell parsing for the policy: a command string -> every command and file write it can make.

    script = parse_script("git log | head -5 && echo $(date) > out.txt")
    [p.argv for p in script.commands]   # [('git', 'log'), ('head', '-5'), ('echo', '$(date)'), ('date',)]
    [w.path for w in script.writes]     # ['out.txt']

The policy decides on commands by argv prefix, so a command string (what a
`shell_call` runs with `sh -c`) is parsed into its *parts*: every simple
command it can run, wherever it sits — lists (`&&`, `||`, `;`, `&`), pipes,
subshells, `{ …; }`, `$(…)` and backticks (also inside strings and here-docs),
`<(…)`/`>(…)`, the bodies of `if`/`while`/`for`/`case` and of functions — and
every redirection that writes a file. A script is allowed only if every part
is (the policy's job); the parser's job is to miss none.

Parsing is tree-sitter's bash grammar (`tree-sitter-bash`), a real grammar of
the language, walked here. The walk fails closed: input with a syntax error,
a node type it does not know, nesting deeper than `MAX_DEPTH`, more than
`MAX_PARTS` parts or more than `MAX_SCRIPT_CHARS` characters gives a `Script`
with `error` set, which the policy answers with `ask`.

Words. Each argument is a `Word`: its text after quote removal, and what the
shell may still do to it. A word with a variable, `$(…)`, a glob (`*`, `?`,
`[`), brace expansion or a leading `~` is not `literal`; an unquoted expansion
can also split into several words, so such a word `may_be_option` (`rg $X`
can become `rg --pre=sh`), and so can a glob that starts with a wildcard (a
file named `-o.txt` turns `sort *.txt` into `sort -o .txt`). Rules match
literal words only; `readonly.py` uses the two flags.

Also unwrapped: `sh|bash|dash|zsh -c SCRIPT` (and `-lc`) with a literal
script is replaced by the script's own parts, so `bash -lc "ls && rm x"` is
decided as `ls` and `rm x`. Variable assignments before a command (`PATH=.
ls`) are kept as `assignments` (before `bash -c`, on every command of its
script); alone (`PATH=.`) they are a part with an empty argv, which no rule
matches.

Writes. `>`, `>>`, `>|`, `&>`, `&>>` and `>& FILE` to a file are `Write`
parts; `/dev/null`, `/dev/stdout`, `/dev/stderr` and descriptor duplications
(`2>&1`) are not writes. A relative target is relative to where the script
starts; when the script runs `cd`, `pushd` or `popd` anywhere, relative
targets are unknown (`path` is None).

Not covered: what a command does with its arguments (`xargs rm`, `find
-exec`, `env rm`, `eval`, a script file: the policy sees `xargs`, `find`,
`env`, …), aliases and functions defined outside the script, and the
differences between bash's grammar and the `sh` that runs the script (where
they differ, bash's is the larger language: a construct `sh` would reject is
still checked, not skipped).
"""

from __future__ import annotations

import posixpath
import re
import shlex
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

MAX_SCRIPT_CHARS = 256 * 1024
"""Longer command strings are not parsed (`ask`); at about 5 µs a word, 256 KiB parses in
well under a second, and here-docs make long commands legitimate."""
MAX_DEPTH = 100
"""Nesting levels the walk follows (`$($($(…)))`, subshells, quotes in quotes)."""
MAX_PARTS = 5_000
"""Commands and writes one script may have before it is `ask` unseen."""
MAX_UNWRAP = 4
"""`bash -c 'bash -c …'` levels unwrapped."""

SHELLS = frozenset({"sh", "bash", "dash", "zsh"})
"""Shells whose `-c SCRIPT` is parsed as the script it runs."""
_SCRIPT_FLAGS = frozenset({"-c", "-lc"})
NULL_SINKS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
"""Redirection targets that are not file writes."""
_CWD_COMMANDS = frozenset({"cd", "pushd", "popd"})

_LANGUAGE = Language(tree_sitter_bash.language())
_local = threading.local()  # a Parser is not safe to share between threads


def _parser() -> Parser:
    p: Parser | None = getattr(_local, "parser", None)
    if p is None:
        p = _local.parser = Parser(_LANGUAGE)
    return p


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a command, after quote removal."""

    text: str
    """The word's value when `literal`; else its value with expansions left as written."""
    literal: bool = True
    """True when the shell passes `text` as it is: no expansion, glob, brace or tilde."""
    may_be_option: bool = False
    """True when the word is, or may expand to, a word starting with `-`."""
    single: bool = True
    """True when it expands to exactly one word (no splitting, no glob)."""

    @staticmethod
    def of(text: str) -> Word:
        """A literal word (an argv element passed without a shell)."""
        return Word(text, may_be_option=text.startswith("-"))


@dataclass(frozen=True, slots=True)
class Command:
    """One simple command the script can run."""

    words: tuple[Word, ...]
    """argv; empty for a bare assignment (`X=1`)."""
    assignments: tuple[str, ...] = ()
    """Names of variables set for it (`X=1 cmd`) or, with no words, in the shell."""
    within: tuple[str, ...] = ()
    """The constructs around it, outermost first ("pipeline", "command substitution", ...)."""

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(w.text for w in self.words)

    @property
    def literal(self) -> bool:
        return all(w.literal for w in self.words)

    def __str__(self) -> str:
        prefix = "".join(f"{a}=… " for a in self.assignments)
        return prefix + " ".join(_show(w.text) for w in self.words) if self.words else prefix[:-1]


@dataclass(frozen=True, slots=True)
class Write:
    """A redirection that writes a file (`> out.txt`)."""

    target: Word
    operator: str
    path: str | None
    """The target as a normalised path (relative to where the script starts, or
    absolute); None when it is not literal, or relative after a `cd`."""
    within: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.operator} {_show(self.target.text)}"


Part = Command | Write


@dataclass(frozen=True, slots=True)
class Script:
    """What one command string can do: its parts, or why it cannot be checked."""

    source: str
    parts: tuple[Part, ...] = ()
    error: str | None = None
    """Why the script cannot be checked (a syntax error, a limit); None when parsed."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(p for p in self.parts if isinstance(p, Command))

    @property
    def writes(self) -> tuple[Write, ...]:
        return tuple(p for p in self.parts if isinstance(p, Write))


def _show(text: str) -> str:
    return shlex.quote(text) if text else "''"


def normalize_path(path: str) -> str:
    """A path as rules see it: `./a/../b` -> `b`, `/x//y/` -> `/x/y`."""
    p = posixpath.normpath(path)
    if p.startswith("//"):  # POSIX keeps a leading '//' as-is; it names the root here
        p = "/" + p.lstrip("/")
    return p


# -- entry points ------------------------------------------------------------------


def parse_script(source: str, *, cwd: str | None = None) -> Script:
    """Parse a command string as `sh -c` would get it.

    `cwd` (relative to the workspace, or absolute) is where it starts; write
    targets are given relative to the workspace when it is known.
    """
    return _parse(source, cwd, unwrap=0)


def parse_argv(argv: Sequence[str], *, env: Sequence[str] = (), cwd: str | None = None) -> Script:
    """An argv run without a shell (`local_shell_call`): one command, or the
    script of `bash -c SCRIPT`. `env` names the variables set for it."""
    source = " ".join(_show(a) for a in argv)
    if "\0" in source:
        return Script(source, error="an argument contains a NUL byte")
    if _encoded(source) is None:
        return Script(source, error=_NOT_TEXT)
    words = tuple(Word.of(a) for a in argv)
    w = _Walker(b"", cwd, unwrap=0)
    try:
        w.add_command(words, tuple(env), ())
    except _Unparsable as e:
        return Script(source, error=str(e))
    return Script(source, tuple(w.parts))


def _parse(source: str, cwd: str | None, *, unwrap: int) -> Script:
    if len(source) > MAX_SCRIPT_CHARS:
        return Script(source, error=f"the command is longer than {MAX_SCRIPT_CHARS:,} characters")
    if "\0" in source:
        return Script(source, error="the command contains a NUL byte")
    data = _encoded(source)
    if data is None:
        return Script(source, error=_NOT_TEXT)
    tree = _parser().parse(data)
    root = tree.root_node
    if root.has_error:
        return Script(source, error=f"shell syntax error near {_error_text(root, data)!r}")
    w = _Walker(data, cwd, unwrap=unwrap)
    try:
        w.statement(root, ())
    except _Unparsable as e:
        return Script(source, error=str(e))
    return Script(source, tuple(w.finish()))


_NOT_TEXT = "the command is not valid text (a lone surrogate: no shell can be given it)"


def _encoded(source: str) -> bytes | None:
    """UTF-8, or None for a string with lone surrogates (JSON allows them)."""
    try:
        return source.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _error_text(root: Node, data: bytes) -> str:
    stack = [root]
    while stack:
        n = stack.pop()
        if n.is_error or n.is_missing:
            text = data[n.start_byte : n.end_byte].decode("utf-8", "replace")
            return (text or n.type)[:40]
        stack.extend(reversed([c for c in n.children if c.has_error or c.is_missing]))
    return ""


# -- the walk ----------------------------------------------------------------------


class _Unparsable(Exception):
    pass


# Nodes whose named children are statements or words, walked as they come.
_CONTAINERS = frozenset(
    {
        "program",
        "list",
        "pipeline",
        "subshell",
        "compound_statement",
        "negated_command",
        "do_group",
        "if_statement",
        "elif_clause",
        "else_clause",
        "while_statement",
        "for_statement",
        "c_style_for_statement",
        "case_statement",
        "case_item",
        "function_definition",
        "test_command",
        "binary_expression",
        "unary_expression",
        "ternary_expression",
        "postfix_expression",
        "parenthesized_expression",
    }
)
# What each container is called in `within`, when it changes how its commands run.
_CONSTRUCTS = {
    "pipeline": "pipeline",
    "subshell": "subshell",
    "list": "list",
    "if_statement": "if",
    "while_statement": "loop",
    "for_statement": "loop",
    "c_style_for_statement": "loop",
    "case_statement": "case",
    "function_definition": "function",
    "command_substitution": "command substitution",
    "process_substitution": "process substitution",
}
_WORDS = frozenset(
    {
        "word",
        "string",
        "raw_string",
        "ansi_c_string",
        "translated_string",
        "concatenation",
        "number",
        "simple_expansion",
        "expansion",
        "arithmetic_expansion",
        "command_substitution",
        "process_substitution",
        "brace_expression",
        "extglob_pattern",
        "regex",
        "array",
        "variable_name",
        "special_variable_name",
        "test_operator",
        "subscript",
    }
)
_SKIPPED = frozenset(
    {"comment", "heredoc_start", "heredoc_end", "heredoc_content", "file_descriptor"}
)
_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
_WRITE_OPERATORS = frozenset({">", ">>", ">|", "&>", "&>>"})
_DUP_OPERATORS = frozenset({"<&", ">&-", "<&-"})
_CLOSE_OPERATORS = frozenset({">&-", "<&-"})
_SPECIAL = re.compile(r"[\\*?\[{~]")
"""Characters that make an unquoted word more than its text."""
_BRACE = re.compile(r"\{[^{}]*(,|\.\.)[^{}]*\}")


@dataclass(slots=True)
class _Segment:
    """A piece of a word: literal characters (each quoted or not) or an expansion."""

    text: str
    quoted: bool
    expansion: bool = False


@dataclass(slots=True)
class _Walker:
    data: bytes
    cwd: str | None
    unwrap: int
    parts: list[Part] = field(default_factory=list)
    depth: int = 0
    changes_dir: bool = False

    def finish(self) -> list[Part]:
        if not self.changes_dir:
            return self.parts
        # A `cd` anywhere makes every relative write target unknown.
        return [
            Write(p.target, p.operator, None, p.within)
            if isinstance(p, Write) and p.path is not None and not p.path.startswith("/")
            else p
            for p in self.parts
        ]

    @contextmanager
    def _deeper(self) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Unparsable(f"the command is nested more than {MAX_DEPTH} levels deep")
        try:
            yield
        finally:
            self.depth -= 1

    def _text(self, n: Node) -> str:
        return self.data[n.start_byte : n.end_byte].decode("utf-8", "surrogateescape")

    def _add(self, part: Part) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise _Unparsable(f"the command has more than {MAX_PARTS:,} parts")
        self.parts.append(part)

    # -- statements ----------------------------------------------------------------

    def statement(self, n: Node, within: tuple[str, ...]) -> None:
        with self._deeper():
            t = n.type
            if t == "command":
                self.command(n, within, ())
            elif t == "redirected_statement":
                self.redirected(n, within)
            elif t in ("variable_assignment", "variable_assignments"):
                names = self.assignments(n, within)
                self.add_command((), names, within)
            elif t in ("declaration_command", "unset_command"):
                self.declaration(n, within)
            elif t in _CONTAINERS:
                inner = (*within, _CONSTRUCTS[t]) if t in _CONSTRUCTS else within
                for c in n.named_children:
                    self.statement(c, inner)
            elif t in _REDIRECTS:
                writes: list[Write] = []
                self.redirect(n, within, None, writes)
                for w in writes:
                    self._add(w)
            elif t in _WORDS:
                self.word(n, within)
            elif t not in _SKIPPED:
                raise _Unparsable(f"unsupported shell construct: {t}")

    def redirected(self, n: Node, within: tuple[str, ...]) -> None:
        body = n.child_by_field_name("body")
        extra: list[Word] = []
        writes: list[Write] = []
        for r in n.children_by_field_name("redirect"):
            extra += self.redirect(r, within, body, writes)
        if body is not None and body.type == "command":
            self.command(body, within, tuple(extra))
        elif extra:
            # bash passes them to a simple command; anywhere else they are an error.
            raise _Unparsable("words after a redirection that has no simple command")
        elif body is not None:
            self.statement(body, within)
        for w in writes:
            self._add(w)

    def command(self, n: Node, within: tuple[str, ...], extra: tuple[Word, ...]) -> None:
        words: list[Word] = []
        names: list[str] = []
        writes: list[Write] = []
        for c in n.children:
            if not c.is_named:
                continue
            if c.type == "variable_assignment":
                names += self.assignments(c, within)
            elif c.type == "command_name":
                inner = c.named_children
                if len(inner) != 1:
                    raise _Unparsable("a command name made of several parts")
                words.append(self.word(inner[0], within))
            elif c.type in _REDIRECTS:
                words += self.redirect(c, within, n, writes)
            elif c.type in _WORDS:
                words.append(self.word(c, within))
            elif c.type not in _SKIPPED:
                raise _Unparsable(f"unsupported part of a command: {c.type}")
        self.add_command(tuple(words) + extra, tuple(names), within)
        for w in writes:
            self._add(w)

    def add_command(
        self, words: tuple[Word, ...], names: tuple[str, ...], within: tuple[str, ...]
    ) -> None:
        if words and words[0].literal and words[0].text in _CWD_COMMANDS:
            self.changes_dir = True
        script = _shell_script(words)
        if script is not None:
            if self.unwrap >= MAX_UNWRAP:
                raise _Unparsable(f"more than {MAX_UNWRAP} nested `sh -c` levels")
            inner = _parse(script, self.cwd, unwrap=self.unwrap + 1)
            if inner.error is not None:
                raise _Unparsable(f"in `{words[0].text} {words[1].text}`: {inner.error}")
            via = (*within, f"{words[0].text} {words[1].text}")
            for p in inner.parts:
                self._add(
                    Command(p.words, names + p.assignments, via + p.within)
                    if isinstance(p, Command)
                    else Write(p.target, p.operator, p.path, via + p.within)
                )
            return
        self._add(Command(words, names, within))

    def assignments(self, n: Node, within: tuple[str, ...]) -> tuple[str, ...]:
        if n.type == "variable_assignments":
            out: tuple[str, ...] = ()
            for c in n.named_children:
                out += self.assignments(c, within)
            return out
        name = n.child_by_field_name("name")
        value = n.child_by_field_name("value")
        if value is not None:
            self.word(value, within)  # for the commands inside it
        return (self._text(name) if name is not None else "?",)

    def declaration(self, n: Node, within: tuple[str, ...]) -> None:
        words = [Word.of(self._text(n.children[0]))]  # export, local, declare, unset, ...
        for c in n.named_children:
            if c.type == "variable_assignment":
                self.assignments(c, within)
                words.append(Word(self._text(c), literal=False, single=True))
            else:
                words.append(self.word(c, within))
        self.add_command(tuple(words), (), within)

    def redirect(
        self, n: Node, within: tuple[str, ...], body: Node | None, writes: list[Write]
    ) -> list[Word]:
        """Note in `writes` what a redirection writes; return the words it carries
        that are the command's arguments (`echo > f hi` passes `hi` to echo)."""
        if n.type != "file_redirect":
            for c in n.named_children:  # here-doc bodies, here-strings, a pipe after `<<EOF`
                if c.type == "heredoc_body":
                    for e in c.named_children:
                        if e.type not in _SKIPPED and e.type != "simple_expansion":
                            self.word(e, within)
                elif c.type == "file_redirect":
                    self.redirect(c, within, None, writes)
                else:
                    self.statement(c, within)
            return []
        op = next((self._text(c) for c in n.children if not c.is_named), ">")
        targets = [self.word(d, within) for d in n.children_by_field_name("destination")]
        if op in _CLOSE_OPERATORS and not targets:
            return []
        if not targets:
            raise _Unparsable(f"a redirection {op!r} without a target")
        target, extra = targets[0], targets[1:]
        if extra and (body is None or body.type != "command"):
            raise _Unparsable("words after a redirection that has no simple command")
        dup = op in _DUP_OPERATORS or (
            op == ">&" and target.literal and (target.text == "-" or target.text.isdigit())
        )
        if op in _WRITE_OPERATORS or (op == ">&" and not dup):
            if not (target.literal and target.text in NULL_SINKS):
                writes.append(Write(target, op, self._write_path(target), within))
        elif not dup and op != "<":
            raise _Unparsable(f"unsupported redirection {op!r}")
        return extra

    def _write_path(self, target: Word) -> str | None:
        if not target.literal or not target.text:
            return None
        path = target.text
        if not path.startswith("/") and self.cwd is not None:
            path = posixpath.join(self.cwd, path)
        return normalize_path(path)

    # -- words ---------------------------------------------------------------------

    def word(self, n: Node, within: tuple[str, ...]) -> Word:
        # Fast paths for the common words: plain, single-quoted, a bare $VAR.
        t = n.type
        if t == "word" or t == "number":
            raw = self._text(n)
            if not _SPECIAL.search(raw):
                return Word.of(raw)
        elif t == "raw_string":
            return Word.of(self._text(n)[1:-1])
        elif t == "simple_expansion":
            return Word(self._text(n), literal=False, may_be_option=True, single=False)
        with self._deeper():
            segments = self.segments(n, within, quoted=False)
        return _finish_word(segments)

    def segments(self, n: Node, within: tuple[str, ...], *, quoted: bool) -> list[_Segment]:
        t = n.type
        if t == "word" or t == "number":
            return _unquoted(self._text(n)) if not quoted else [_Segment(self._text(n), True)]
        if t == "raw_string":
            return [_Segment(self._text(n)[1:-1], True)]
        if t == "string":
            return self.double_quoted(n, within)
        if t == "concatenation":
            out: list[_Segment] = []
            for c in n.children:
                if c.is_named:
                    with self._deeper():
                        out += self.segments(c, within, quoted=quoted)
                else:  # a bare token inside a word, such as `$` in `a$`
                    out.append(_Segment(self._text(c), quoted))
            return out
        if t in ("command_substitution", "process_substitution"):
            inner = (*within, _CONSTRUCTS[t])
            for c in n.named_children:
                self.statement(c, inner)
            # <(cmd) becomes one path; $(cmd) is split unless quoted.
            return [_Segment(self._text(n), quoted or t == "process_substitution", True)]
        if t in _WORDS:  # expansions, arithmetic, arrays, ...: look inside for commands
            for c in n.named_children:
                if c.type not in ("variable_name", "special_variable_name", "string_content"):
                    with self._deeper():
                        self.segments(c, within, quoted=quoted)
            if t in ("variable_name", "special_variable_name", "test_operator", "regex"):
                return [_Segment(self._text(n), True)]
            return [_Segment(self._text(n), quoted or t == "ansi_c_string", True)]
        if t in _CONTAINERS or t in _REDIRECTS or t == "command":
            self.statement(n, within)
            return [_Segment(self._text(n), quoted, True)]
        if t in _SKIPPED:
            return []
        raise _Unparsable(f"unsupported shell word: {t}")

    def double_quoted(self, n: Node, within: tuple[str, ...]) -> list[_Segment]:
        # Literal text is taken from the gaps between expansions, so that a `$`
        # the grammar keeps as a bare token (`"a$"`) is not lost.
        out: list[_Segment] = []
        pos = n.start_byte + 1
        end = n.end_byte - 1
        for c in n.named_children:
            if c.start_byte > pos:
                out.append(
                    _Segment(
                        _dq_unescape(
                            self.data[pos : c.start_byte].decode("utf-8", "surrogateescape")
                        ),
                        True,
                    )
                )
            if c.type == "string_content":
                out.append(_Segment(_dq_unescape(self._text(c)), True))
            else:
                with self._deeper():
                    out += self.segments(c, within, quoted=True)
            pos = max(pos, c.end_byte)
        if end > pos:
            out.append(
                _Segment(_dq_unescape(self.data[pos:end].decode("utf-8", "surrogateescape")), True)
            )
        return out


def _unquoted(raw: str) -> list[_Segment]:
    """An unquoted word's characters: backslash-escaped ones count as quoted."""
    out: list[_Segment] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            if raw[i + 1] != "\n":  # backslash-newline is a line continuation: nothing
                out.append(_Segment(raw[i + 1], True))
            i += 2
            continue
        out.append(_Segment(ch, False))
        i += 1
    return out


def _dq_unescape(s: str) -> str:
    """Inside double quotes a backslash escapes only $ ` " \\ and newline."""
    return re.sub(r'\\([$`"\\\n])', lambda m: "" if m.group(1) == "\n" else m.group(1), s)


def _finish_word(segments: list[_Segment]) -> Word:
    text = "".join(s.text for s in segments)
    bare = "".join(s.text if not s.quoted and not s.expansion else "\0" for s in segments)
    splits = any(s.expansion and not s.quoted for s in segments)
    glob = any(ch in bare for ch in "*?[") or bool(_BRACE.search(bare))
    expands = any(s.expansion for s in segments)
    tilde = bare.startswith("~")
    first = next((s for s in segments if s.text), None)
    if first is None:
        leading_unknown, leading_dash = False, False
    else:
        leading_unknown = first.expansion or (not first.quoted and first.text[0] in "*?[{~")
        leading_dash = not first.expansion and first.text.startswith("-")
    literal = not (expands or glob or tilde)
    return Word(
        text,
        literal=literal,
        may_be_option=leading_dash or splits or (not literal and leading_unknown and not tilde),
        single=not (splits or glob),
    )


def _shell_script(words: tuple[Word, ...]) -> str | None:
    """The script of `bash -c SCRIPT` (all literal, nothing after it); else None."""
    if (
        len(words) == 3
        and all(w.literal for w in words)
        and words[0].text in SHELLS
        and words[1].text in _SCRIPT_FLAGS
    ):
        return words[2].text
    return None
