"""Shell parsing for the policy: every command and file write a command string can make."""

from __future__ import annotations

import shlex

import pytest

from itemloop.tools.policy.shell import (
    MAX_DEPTH,
    MAX_PARTS,
    MAX_SCRIPT_CHARS,
    MAX_UNWRAP,
    Command,
    parse_argv,
    parse_script,
)


def argvs(source: str) -> list[tuple[str, ...]]:
    script = parse_script(source)
    assert script.error is None, script.error
    return sorted(c.argv for c in script.commands)


def writes(source: str) -> list[str | None]:
    script = parse_script(source)
    assert script.error is None, script.error
    return [w.path for w in script.writes]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("ls && rm -rf x", [("ls",), ("rm", "-rf", "x")]),
        ("ls || rm x", [("ls",), ("rm", "x")]),
        ("ls; rm x", [("ls",), ("rm", "x")]),
        ("ls & rm x", [("ls",), ("rm", "x")]),
        ("cat a | grep b | rm c", [("cat", "a"), ("grep", "b"), ("rm", "c")]),
        ("(cd a; rm b)", [("cd", "a"), ("rm", "b")]),
        ("{ ls; rm b; }", [("ls",), ("rm", "b")]),
        ("! rm x", [("rm", "x")]),
        ("echo $(rm x)", [("echo", "$(rm x)"), ("rm", "x")]),
        ("echo `rm x`", [("echo", "`rm x`"), ("rm", "x")]),
        ('echo "a $(rm x) b"', [("echo", "a $(rm x) b"), ("rm", "x")]),
        ('echo "`rm x`"', [("echo", "`rm x`"), ("rm", "x")]),
        ("echo $(echo $(rm x))", [("echo", "$(echo $(rm x))"), ("echo", "$(rm x)"), ("rm", "x")]),
        ("cat <(rm x)", [("cat", "<(rm x)"), ("rm", "x")]),
        ("echo ${x:-$(rm y)}", [("echo", "${x:-$(rm y)}"), ("rm", "y")]),
        ("echo $(( $(rm y) + 1 ))", [("echo", "$(( $(rm y) + 1 ))"), ("rm", "y")]),
        ("X=$(rm y)", [(), ("rm", "y")]),
        ("export A=$(rm y)", [("export", "A=$(rm y)"), ("rm", "y")]),
        ("cat <<EOF\n$(rm y)\nEOF", [("cat",), ("rm", "y")]),
        ('cat <<< "$(rm y)"', [("cat",), ("rm", "y")]),
        ("for f in $(rm y); do cat $f; done", [("cat", "$f"), ("rm", "y")]),
        ("if test -f a; then rm a; else ls; fi", [("ls",), ("rm", "a"), ("test", "-f", "a")]),
        ("while true; do rm x; done", [("rm", "x"), ("true",)]),
        ("case a in b) rm x;; esac", [("rm", "x")]),
        ("f() { rm x; }; f", [("f",), ("rm", "x")]),
        ("[[ -f $(rm x) ]]", [("rm", "x")]),
        ("echo > f hi", [("echo", "hi")]),
        ("git status > /dev/null --output=x", [("git", "status", "--output=x")]),
    ],
)
def test_every_command_of_a_compound_is_found(source: str, expected: list[tuple[str, ...]]) -> None:
    assert argvs(source) == sorted(expected)


def test_quotes_and_escapes_are_removed_from_words() -> None:
    assert argvs("'r''m' x") == [("rm", "x")]
    assert argvs('"r"m x') == [("rm", "x")]
    assert argvs("\\rm x") == [("rm", "x")]
    assert argvs('echo "a\\"b" "a$"') == [("echo", 'a"b', "a$")]


def test_the_compound_structure_is_kept() -> None:
    script = parse_script("ls | grep $(cat f) && (rm x)")
    by_name = {c.argv[0]: c.within for c in script.commands}
    assert by_name["ls"] == ("list", "pipeline")
    assert by_name["cat"] == ("list", "pipeline", "command substitution")
    assert by_name["rm"] == ("list", "subshell")


def test_words_say_what_the_shell_may_still_do_to_them() -> None:
    (cmd,) = parse_script('echo lit "q $X" $Y *.py src/*.py ~/a {a,b} -n "$Z"').commands
    w = {x.text: x for x in cmd.words}
    assert w["lit"].literal and not w["lit"].may_be_option
    assert w["-n"].literal and w["-n"].may_be_option
    # quoted expansion: one word, whose start is known
    assert not w["q $X"].literal and w["q $X"].single and not w["q $X"].may_be_option
    # "$Z" alone may be anything, but stays one word
    assert w["$Z"].single and w["$Z"].may_be_option
    # unquoted expansion: split into words, any of which may be an option
    assert not w["$Y"].single and w["$Y"].may_be_option
    # a glob starting with a wildcard may match a file named -o.py
    assert not w["*.py"].literal and w["*.py"].may_be_option and not w["*.py"].single
    assert not w["src/*.py"].literal and not w["src/*.py"].may_be_option
    assert not w["~/a"].literal and not w["~/a"].may_be_option
    assert not w["{a,b}"].literal and w["{a,b}"].may_be_option
    # escaped or quoted glob characters are literal
    (cmd,) = parse_script("echo \\*.py '*.py'").commands
    assert all(x.literal for x in cmd.words)


def test_redirections_to_files_are_writes() -> None:
    assert writes("ls > out.txt") == ["out.txt"]
    assert writes("ls >> a/../log") == ["log"]
    assert writes("ls >| f 2> err &> both &>> all") == ["f", "err", "both", "all"]
    assert writes("ls >& both") == ["both"]
    assert writes("echo x > /tmp/y") == ["/tmp/y"]
    assert writes("(echo x > inner)") == ["inner"]
    assert writes("cat <<EOF > out\nx\nEOF") == ["out"]
    assert writes("{ ls; } > grouped") == ["grouped"]


def test_descriptors_null_sinks_and_reads_are_not_writes() -> None:
    assert writes("ls 2>&1 >/dev/null 2>/dev/stderr >&2 < in; exec 3>&-") == []


def test_write_targets_that_cannot_be_known() -> None:
    assert writes('ls > "$OUT"') == [None]
    assert writes("ls > *.txt") == [None]
    # after a cd, a relative target is relative to somewhere else
    assert writes("cd .git && echo x > config") == [None]
    assert writes("cd .git && echo x > /abs") == ["/abs"]


def test_sh_c_is_parsed_as_the_script_it_runs() -> None:
    assert argvs("bash -lc 'ls && rm x'") == [("ls",), ("rm", "x")]
    assert argvs("sh -c \"sh -c 'rm x'\"") == [("rm", "x")]
    assert writes("bash -c 'ls > out'") == ["out"]
    # not a literal script, or with more arguments: the shell itself is the command
    assert argvs('bash -c "$S"') == [("bash", "-c", "$S")]
    assert argvs("bash -c 'rm x' name") == [("bash", "-c", "rm x", "name")]
    assert parse_script("bash -c 'ls &&'").error is not None


def test_assignments_are_kept() -> None:
    script = parse_script("PATH=. ls; X=1")
    cmds = {c.argv: c.assignments for c in script.commands}
    assert cmds == {("ls",): ("PATH",), (): ("X",)}
    # before a shell, they hold for every command of its script
    script = parse_script("PATH=. bash -c 'ls; Y=2 cat'")
    cmds = {c.argv: c.assignments for c in script.commands}
    assert cmds == {("ls",): ("PATH",), ("cat",): ("PATH", "Y")}


@pytest.mark.parametrize(
    "source",
    ["ls 'unterminated", "echo $(", "ls &&", "if true; then", "ls; ;", "a <> b", "echo \0"],
)
def test_what_cannot_be_parsed_says_so(source: str) -> None:
    script = parse_script(source)
    assert script.error is not None
    assert script.parts == ()


def test_limits_make_a_script_unparsable_not_a_crash() -> None:
    deep = "echo " + "$(" * (MAX_DEPTH + 5) + "x" + ")" * (MAX_DEPTH + 5)
    assert "nested" in (parse_script(deep).error or "")
    many = "; ".join(["ls"] * (MAX_PARTS + 1))
    assert "parts" in (parse_script(many).error or "")
    long = "echo " + "a" * MAX_SCRIPT_CHARS
    assert "longer" in (parse_script(long).error or "")

    def nested_sh(levels: int) -> str:
        source = "rm x"
        for _ in range(levels):
            source = f"sh -c {shlex.quote(source)}"
        return source

    assert argvs(nested_sh(MAX_UNWRAP)) == [("rm", "x")]
    assert "sh -c" in (parse_script(nested_sh(MAX_UNWRAP + 1)).error or "")


def test_argv_without_a_shell_is_taken_as_given() -> None:
    script = parse_argv(["ls", "$(rm x)", "*.py", "&&", "rm"])
    assert [c.argv for c in script.commands] == [("ls", "$(rm x)", "*.py", "&&", "rm")]
    assert all(w.literal for w in script.commands[0].words)
    assert script.writes == ()


def test_argv_of_a_shell_is_parsed() -> None:
    script = parse_argv(["bash", "-lc", "ls && rm x > out"], cwd="sub")
    assert sorted(c.argv for c in script.commands) == [("ls",), ("rm", "x")]
    assert [w.path for w in script.writes] == ["sub/out"]


def test_argv_env_is_an_assignment() -> None:
    (cmd,) = parse_argv(["ls"], env=["PATH"]).commands
    assert cmd == Command(cmd.words, ("PATH",))


@pytest.mark.parametrize("source", ["echo \ud800 x", "rm \ud800\udc00", "ls \udcff"])
def test_text_that_is_not_unicode_is_unparsable_not_a_crash(source: str) -> None:
    # JSON lets the model send lone surrogates; no shell can be given them as text.
    assert "not valid" in (parse_script(source).error or "")
    assert "not valid" in (parse_argv(["ls", source]).error or "")
