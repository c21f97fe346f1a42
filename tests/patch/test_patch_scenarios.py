"""Scenario tests: files in a workspace, one apply_patch operation, the files after.

Each scenario runs through `ApplyPatchExecutor` over the real workspace file
operations. A failing scenario must leave every file byte-for-byte unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from patch_sandbox import call, execute

from itemloop.tools.apply_patch import ApplyPatchExecutor

Files = dict[str, bytes]


@dataclass(frozen=True)
class Scenario:
    name: str
    files: Files
    op: str
    path: str
    diff: str | None
    after: Files | None = None
    """Expected files afterwards (the whole workspace); `None` for a failure."""
    errors: tuple[str, ...] = ()
    """Fragments the failure text must contain."""
    summary: str | None = None
    gone: tuple[str, ...] = field(default_factory=tuple)


PY = b"import os\n\n\ndef f():\n    return 1\n\n\ndef g():\n    return 2\n"
TWIN = (
    b"class A:\n    def run(self):\n        return 1\n\n"
    b"class B:\n    def run(self):\n        return 1\n"
)


# Stacked `@@` anchors: cases after openai-agents' apply_diff tests and the
# examples in Codex CLI's apply_patch instructions, written for these files.
TARGET = b"class Target\n    def helper():\n        pass\n\n    def desired():\n        return 1\n"
SEARCH = (
    b"class BaseClass\n    def search():\n        pass\n\n"
    b"class Subclass\n    def search():\n        pass\n"
)
NESTED = (
    b"class Outer:\n    class Inner:\n        def f(self):\n            return 0\n\n"
    b"    def f(self):\n        return 0\n\n"
    b"def f():\n    return 0\n"
)
RUNS = b"def run():\n    a = 1\n\ndef run():\n    b = 1\n\ndef run():\n    c = 1\n"


def _with(files: Files, **changes: bytes) -> Files:
    return {**files, **{k.replace("__", "/").replace("_DOT_", "."): v for k, v in changes.items()}}


SCENARIOS = [
    # --- V4A ------------------------------------------------------------------
    Scenario(
        "v4a replace a line",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@ def f():\n-    return 1\n+    return 10\n",
        {"app.py": PY.replace(b"return 1", b"return 10")},
        summary="M app.py: 1 hunk, +1 -1",
    ),
    Scenario(
        "v4a anchor tells identical blocks apart",
        {"m.py": TWIN},
        "update_file",
        "m.py",
        "@@ class B:\n     def run(self):\n-        return 1\n+        return 2\n",
        {
            "m.py": TWIN[: TWIN.index(b"class B")]
            + b"class B:\n    def run(self):\n        return 2\n"
        },
    ),
    Scenario(
        "v4a stacked anchors",
        {"m.py": TWIN},
        "update_file",
        "m.py",
        "@@ class B:\n@@     def run(self):\n-        return 1\n+        return 3\n",
        {
            "m.py": TWIN[: TWIN.index(b"class B")]
            + b"class B:\n    def run(self):\n        return 3\n"
        },
    ),
    Scenario(
        "v4a two hunks",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@\n def f():\n-    return 1\n+    return 11\n"
        "@@\n def g():\n-    return 2\n+    return 22\n",
        {"app.py": PY.replace(b"return 1", b"return 11").replace(b"return 2", b"return 22")},
        summary="M app.py: 2 hunks, +2 -2",
    ),
    Scenario(
        "v4a hunks out of order still apply",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@\n def g():\n-    return 2\n+    return 22\n"
        "@@\n def f():\n-    return 1\n+    return 11\n",
        {"app.py": PY.replace(b"return 1", b"return 11").replace(b"return 2", b"return 22")},
    ),
    Scenario(
        "v4a end of file marker appends",
        {"t.txt": b"a\nb\n"},
        "update_file",
        "t.txt",
        "@@\n b\n+c\n*** End of File\n",
        {"t.txt": b"a\nb\nc\n"},
    ),
    Scenario(
        "v4a envelope and code fence are tolerated",
        {"t.txt": b"a\nb\n"},
        "update_file",
        "t.txt",
        "```diff\n*** Begin Patch\n*** Update File: t.txt\n@@\n a\n-b\n+c\n*** End Patch\n```\n",
        {"t.txt": b"a\nc\n"},
    ),
    Scenario(
        "v4a order tells repeated context apart",
        {"t.txt": b"x\n1\nx\n2\n"},
        "update_file",
        "t.txt",
        "@@\n x\n-1\n+one\n@@\n x\n-2\n+two\n",
        {"t.txt": b"x\none\nx\ntwo\n"},
    ),
    Scenario(
        "v4a missing anchor with unique context applies",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@ def renamed():\n def g():\n-    return 2\n+    return 3\n",
        {"app.py": PY.replace(b"return 2", b"return 3")},
    ),
    # --- stacked @@ anchors ------------------------------------------------------
    Scenario(
        "stacked anchors: the tool description's two classes",
        {"s.py": SEARCH},
        "update_file",
        "s.py",
        "@@ class BaseClass\n@@     def search():\n-        pass\n+        raise NotImplementedError()\n"
        "\n"
        "@@ class Subclass\n@@     def search():\n-        pass\n+        return []\n",
        {
            "s.py": b"class BaseClass\n    def search():\n        raise NotImplementedError()\n\n"
            b"class Subclass\n    def search():\n        return []\n"
        },
        summary="M s.py: 2 hunks, +2 -2",
    ),
    Scenario(
        "stacked anchors: a trailing bare @@",
        {"m.py": TWIN},
        "update_file",
        "m.py",
        "@@ class B:\n@@\n     def run(self):\n-        return 1\n+        return 4\n",
        {"m.py": TWIN[: TWIN.rindex(b"1")] + b"4\n"},
    ),
    Scenario(
        "stacked anchors: three levels",
        {"n.py": NESTED},
        "update_file",
        "n.py",
        "@@ class Outer:\n@@     class Inner:\n@@         def f(self):\n"
        "-            return 0\n+            return 1\n",
        {"n.py": NESTED.replace(b"            return 0", b"            return 1")},
    ),
    Scenario(
        "stacked anchors: a pure insertion goes after the innermost one",
        {"m.py": TWIN},
        "update_file",
        "m.py",
        "@@ class B:\n@@     def run(self):\n+        log()\n",
        {
            "m.py": TWIN.replace(
                b"B:\n    def run(self):\n", b"B:\n    def run(self):\n        log()\n"
            )
        },
    ),
    Scenario(
        "stacked anchors: matched ignoring indentation",
        {"m.py": TWIN},
        "update_file",
        "m.py",
        "@@ class B:\n@@ def run(self):\n-        return 1\n+        return 5\n",
        {"m.py": TWIN[: TWIN.rindex(b"1")] + b"5\n"},
    ),
    Scenario(
        "stacked anchors: a later hunk may point back above an earlier one",
        {"s.py": SEARCH},
        "update_file",
        "s.py",
        "@@ class Subclass\n@@     def search():\n-        pass\n+        return 2\n"
        "@@ class BaseClass\n@@     def search():\n-        pass\n+        return 1\n",
        {
            "s.py": b"class BaseClass\n    def search():\n        return 1\n\n"
            b"class Subclass\n    def search():\n        return 2\n"
        },
    ),
    Scenario(
        "lone anchor: an earlier copy of it counts when hunks are out of order",
        {"r.py": RUNS},
        "update_file",
        "r.py",
        "@@\n-    b = 1\n+    b = 2\n@@ def run():\n-    a = 1\n+    a = 2\n",
        {"r.py": RUNS.replace(b"a = 1", b"a = 2").replace(b"b = 1", b"b = 2")},
    ),
    # --- unified ---------------------------------------------------------------
    Scenario(
        "unified with headers",
        {"app.py": PY},
        "update_file",
        "app.py",
        "--- a/app.py\n+++ b/app.py\n@@ -4,2 +4,2 @@\n def f():\n-    return 1\n+    return 5\n",
        {"app.py": PY.replace(b"return 1", b"return 5")},
    ),
    Scenario(
        "unified without headers",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@ -8,2 +8,3 @@\n def g():\n-    return 2\n+    x = 2\n+    return x\n",
        {"app.py": PY.replace(b"    return 2", b"    x = 2\n    return x")},
        summary="M app.py: 1 hunk, +2 -1",
    ),
    Scenario(
        "unified git style",
        {"app.py": PY},
        "update_file",
        "app.py",
        "diff --git a/app.py b/app.py\nindex 1234567..89abcde 100644\n--- a/app.py\n"
        "+++ b/app.py\n@@ -1,3 +1,4 @@\n import os\n+import sys\n \n \n",
        {"app.py": PY.replace(b"import os\n", b"import os\nimport sys\n")},
    ),
    Scenario(
        "unified with wrong counts and line numbers",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@ -40,7 +40,9 @@\n def g():\n-    return 2\n+    return 6\n",
        {"app.py": PY.replace(b"return 2", b"return 6")},
    ),
    Scenario(
        "unified line numbers tell repeated context apart",
        {"t.txt": b"x\ny\nz\nx\ny\nz\n"},
        "update_file",
        "t.txt",
        "@@ -4,3 +4,3 @@\n x\n-y\n+Y\n z\n",
        {"t.txt": b"x\ny\nz\nx\nY\nz\n"},
    ),
    Scenario(
        "unified removes the final newline",
        {"t.txt": b"a\nb\n"},
        "update_file",
        "t.txt",
        "@@ -1,2 +1,2 @@\n a\n-b\n+b\n\\ No newline at end of file\n",
        {"t.txt": b"a\nb"},
    ),
    Scenario(
        "unified adds the final newline",
        {"t.txt": b"a\nb"},
        "update_file",
        "t.txt",
        "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
        {"t.txt": b"a\nb\n"},
    ),
    Scenario(
        "unified blank context lines without their space",
        {"t.txt": b"a\n\nb\n"},
        "update_file",
        "t.txt",
        "@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n",
        {"t.txt": b"a\n\nc\n"},
    ),
    # --- forgiving matches -----------------------------------------------------
    Scenario(
        "trailing whitespace in the file is kept on context lines",
        {"t.txt": b"a  \nb\t\nc \n"},
        "update_file",
        "t.txt",
        "@@\n a\n-b\n+B\n c\n",
        {"t.txt": b"a  \nB\nc \n"},
    ),
    Scenario(
        "trailing whitespace in the diff does not reach the file",
        {"t.txt": b"a\nb\nc\n"},
        "update_file",
        "t.txt",
        "@@\n a  \n-b \n+B\n c\t\n",
        {"t.txt": b"a\nB\nc\n"},
    ),
    Scenario(
        "tabs in the file, spaces in the diff: added lines get tabs",
        {"m.go": b"func f() {\n\tx := 1\n\treturn x\n}\n"},
        "update_file",
        "m.go",
        "@@\n func f() {\n     x := 1\n-    return x\n"
        "+    if x > 0 {\n+        return x\n+    }\n+    return 0\n",
        {"m.go": b"func f() {\n\tx := 1\n\tif x > 0 {\n\t\treturn x\n\t}\n\treturn 0\n}\n"},
    ),
    Scenario(
        "two-space file, four-space diff",
        {"a.js": b"if (a) {\n  b();\n  c();\n}\n"},
        "update_file",
        "a.js",
        "@@\n if (a) {\n     b();\n-    c();\n+    if (d) {\n+        e();\n+    }\n",
        {"a.js": b"if (a) {\n  b();\n  if (d) {\n    e();\n  }\n}\n"},
    ),
    Scenario(
        "diff lost the base indentation",
        {"m.py": b"class A:\n    def f(self):\n        x = 1\n        return x\n"},
        "update_file",
        "m.py",
        "@@\n x = 1\n-return x\n+if x:\n+    return x\n+return 0\n",
        {
            "m.py": b"class A:\n    def f(self):\n        x = 1\n        if x:\n"
            b"            return x\n        return 0\n"
        },
    ),
    Scenario(
        "curly quotes and dashes in the file are kept",
        {"t.md": "He said “hi” — twice\nend\n".encode()},
        "update_file",
        "t.md",
        '@@\n He said "hi" - twice\n-end\n+fin\n',
        {"t.md": "He said “hi” — twice\nfin\n".encode()},
    ),
    Scenario(
        "non-breaking spaces in the file",
        {"t.txt": "a\u00a0b\nc\n".encode()},
        "update_file",
        "t.txt",
        "@@\n a b\n-c\n+d\n",
        {"t.txt": "a\u00a0b\nd\n".encode()},
    ),
    # --- line endings and final newlines ----------------------------------------
    Scenario(
        "crlf file stays crlf",
        {"w.txt": b"a\r\nb\r\nc\r\n"},
        "update_file",
        "w.txt",
        "@@\n a\n-b\n+B\n+B2\n c\n",
        {"w.txt": b"a\r\nB\r\nB2\r\nc\r\n"},
    ),
    Scenario(
        "crlf diff on an lf file",
        {"t.txt": b"a\nb\n"},
        "update_file",
        "t.txt",
        "@@\r\n a\r\n-b\r\n+c\r\n",
        {"t.txt": b"a\nc\n"},
    ),
    Scenario(
        "mixed line endings are kept line by line",
        {"m.txt": b"a\r\nb\nc\r\nd\r\n"},
        "update_file",
        "m.txt",
        "@@\n b\n-c\n+C\n d\n",
        {"m.txt": b"a\r\nb\nC\r\nd\r\n"},
    ),
    Scenario(
        "no final newline is kept",
        {"t.txt": b"a\nb"},
        "update_file",
        "t.txt",
        "@@\n a\n-b\n+c\n",
        {"t.txt": b"a\nc"},
    ),
    Scenario(
        "appending keeps the final newline",
        {"t.txt": b"a\nb\n"},
        "update_file",
        "t.txt",
        "@@\n b\n+c\n",
        {"t.txt": b"a\nb\nc\n"},
    ),
    Scenario(
        "byte order mark is kept",
        {"b.txt": "\ufeffa\nb\n".encode()},
        "update_file",
        "b.txt",
        "@@\n a\n-b\n+c\n",
        {"b.txt": "\ufeffa\nc\n".encode()},
    ),
    # --- create and delete -------------------------------------------------------
    Scenario(
        "create ends with a newline",
        {},
        "create_file",
        "new.py",
        "+print('hi')\n+print('bye')\n",
        {"new.py": b"print('hi')\nprint('bye')\n"},
        summary="A new.py: +2",
    ),
    Scenario(
        "create without final newline when the diff says so",
        {},
        "create_file",
        "n.txt",
        "+a\n+b\n\\ No newline at end of file\n",
        {"n.txt": b"a\nb"},
    ),
    Scenario(
        "create in new directories",
        {},
        "create_file",
        "pkg/sub/mod.py",
        "+x = 1\n",
        {"pkg/sub/mod.py": b"x = 1\n"},
    ),
    Scenario(
        "create from a unified diff",
        {},
        "create_file",
        "u.txt",
        "--- /dev/null\n+++ b/u.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n",
        {"u.txt": b"one\ntwo\n"},
    ),
    Scenario(
        "create with a crlf diff",
        {},
        "create_file",
        "w.txt",
        "+a\r\n+b\r\n",
        {"w.txt": b"a\r\nb\r\n"},
    ),
    Scenario(
        "create: a last bare '+' is the final newline, not a blank line",
        {},
        "create_file",
        "hello.txt",
        "+hello\n+world\n+\n",
        {"hello.txt": b"hello\nworld\n"},
        summary="A hello.txt: +2",
    ),
    Scenario(
        "create: a last bare '+' in a crlf diff",
        {},
        "create_file",
        "w.txt",
        "+hello\r\n+world\r\n+\r\n",
        {"w.txt": b"hello\r\nworld\r\n"},
    ),
    Scenario(
        "create: a blank last line needs two bare '+'",
        {},
        "create_file",
        "b.txt",
        "+a\n+\n+\n",
        {"b.txt": b"a\n\n"},
    ),
    Scenario(
        "create from a unified diff keeps its blank last line",
        {},
        "create_file",
        "u.txt",
        "@@ -0,0 +1,3 @@\n+one\n+two\n+\n",
        {"u.txt": b"one\ntwo\n\n"},
    ),
    Scenario(
        "create an empty file",
        {},
        "create_file",
        "pkg/__init__.py",
        "",
        {"pkg/__init__.py": b""},
    ),
    Scenario(
        "delete a file",
        {"old.txt": b"bye\n", "keep.txt": b"k\n"},
        "delete_file",
        "old.txt",
        None,
        {"keep.txt": b"k\n"},
        summary="D old.txt",
    ),
    Scenario(
        "delete a binary file",
        {"blob.bin": b"\x00\x01\x02"},
        "delete_file",
        "blob.bin",
        None,
        {},
    ),
    Scenario(
        "update an empty file",
        {"e.txt": b""},
        "update_file",
        "e.txt",
        "@@\n+first\n",
        {"e.txt": b"first\n"},
    ),
    # --- failures ------------------------------------------------------------------
    Scenario(
        "stacked anchor not in the file",
        {"t.py": TARGET},
        "update_file",
        "t.py",
        "@@ class Target\n@@     def missing():\n-        pass\n+        return 99\n",
        errors=(
            "update_file t.py failed; the file is unchanged",
            "hunk 1 of 1",
            "'    def missing():' is not in the file after line 1 ('class Target',",
            "5|     def desired():",
            "2|     def helper():",
        ),
    ),
    Scenario(
        "missing anchor followed by a bare @@",
        {"t.py": TARGET},
        "update_file",
        "t.py",
        "@@     def missing():\n@@\n-        pass\n+        return 99\n",
        errors=("'    def missing():' is not in the file", "5|     def desired():"),
    ),
    Scenario(
        "bare @@ followed by a missing anchor",
        {"t.py": TARGET},
        "update_file",
        "t.py",
        "@@\n@@ def missing():\n-        pass\n+        return 99\n",
        errors=("'def missing():' is not in the file",),
    ),
    Scenario(
        "stacked anchors: the outer one is missing",
        {"t.py": TARGET},
        "update_file",
        "t.py",
        "@@ class Targt\n@@     def helper():\n-        pass\n+        return 99\n",
        errors=("'class Targt' is not in the file", "1| class Target"),
    ),
    Scenario(
        "stacked anchors: the inner one is only above the outer one",
        {
            "s.py": SEARCH.replace(
                b"    def search():\n        pass\n\nclass",
                b"    def find():\n        pass\n\nclass",
            )
        },
        "update_file",
        "s.py",
        "@@ class Subclass\n@@     def find():\n-        pass\n+        return 1\n",
        errors=(
            "'    def find():' is not in the file after line 5 ('class Subclass',",
            "It occurs only above that line, at line 2.",
        ),
    ),
    Scenario(
        "stacked anchors found, but the hunk is above them",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@ import os\n@@ def g():\n-    return 1\n+    return 10\n",
        errors=("hunk 1 of 1", "at line 5, above its @@ line 'def g():' (line 8)"),
    ),
    Scenario(
        "lone anchor found, but the hunk is above it",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@ def g():\n-    return 1\n+    return 10\n",
        errors=("hunk 1 of 1", "at line 5, above its @@ line 'def g():' (line 8)"),
    ),
    Scenario(
        "create on an existing file",
        {"a.txt": b"x\n"},
        "create_file",
        "a.txt",
        "+y\n",
        errors=("create_file a.txt", "already exists", "update_file"),
    ),
    Scenario(
        "update a missing file",
        {},
        "update_file",
        "nope.txt",
        "@@\n-a\n+b\n",
        errors=("update_file nope.txt", "does not exist", "create_file"),
    ),
    Scenario(
        "delete a missing file",
        {},
        "delete_file",
        "nope.txt",
        None,
        errors=("delete_file nope.txt", "does not exist"),
    ),
    Scenario(
        "update a binary file",
        {"img.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
        "update_file",
        "img.png",
        "@@\n-a\n+b\n",
        errors=("update_file img.png", "binary file"),
    ),
    Scenario(
        "update a file that is not utf-8",
        {"l1.txt": "café\n".encode("latin-1")},
        "update_file",
        "l1.txt",
        "@@\n-café\n+cafe\n",
        errors=("binary file", "not UTF-8"),
    ),
    Scenario(
        "update a directory",
        {"d/x.txt": b"x\n"},
        "update_file",
        "d",
        "@@\n-a\n+b\n",
        errors=("update_file d", "is a directory"),
    ),
    Scenario(
        "path with ..",
        {"a.txt": b"a\n"},
        "update_file",
        "../outside.txt",
        "@@\n-a\n+b\n",
        errors=("update_file ../outside.txt", "leaves the workspace"),
    ),
    Scenario(
        "absolute path",
        {},
        "create_file",
        "/tmp/itemloop-escape.txt",
        "+x\n",
        errors=("create_file /tmp/itemloop-escape.txt", "absolute"),
    ),
    Scenario(
        "context not in the file: nearest lines shown",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@\n def g():\n-    return 3\n+    return 4\n",
        errors=(
            "update_file app.py failed; the file is unchanged",
            "hunk 1 of 1",
            "|     return 3",
            "most similar lines 8-9 of the file",
            "9|     return 2",
            "First difference: line 9 is '    return 2', the diff expects '    return 3'",
        ),
    ),
    Scenario(
        "second hunk fails: nothing is written",
        {"app.py": PY},
        "update_file",
        "app.py",
        "@@\n def f():\n-    return 1\n+    return 11\n"
        "@@\n def h():\n-    return 2\n+    return 22\n",
        errors=("hunk 2 of 2", "did not match", "8| def g():"),
    ),
    Scenario(
        "ambiguous context fails with the candidate lines",
        {"t.txt": b"x\ny\nx\ny\n"},
        "update_file",
        "t.txt",
        "@@\n x\n-y\n+z\n",
        errors=("matches the file in 2 places", "lines 1, 3", "@@"),
    ),
    Scenario(
        "ambiguous after the previous hunk",
        {"t.txt": b"h\nx\ny\nx\ny\n"},
        "update_file",
        "t.txt",
        "@@\n-h\n+H\n@@\n x\n-y\n+z\n",
        errors=("hunk 2 of 2", "2 places", "lines 2, 4"),
    ),
    Scenario(
        "overlapping hunks",
        {"t.txt": b"a\nb\nc\n"},
        "update_file",
        "t.txt",
        "@@ -1,2 +1,2 @@\n a\n-b\n+B\n@@ -2,2 +2,2 @@\n-b\n+X\n c\n",
        errors=("hunk 2 of 2", "matches at line 2, but hunk 1", "merge the two"),
    ),
    Scenario(
        "unified diff of two files",
        {"a.txt": b"a\n"},
        "update_file",
        "a.txt",
        "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+b\n"
        "--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-a\n+b\n",
        errors=("one apply_patch operation edits one file",),
    ),
    Scenario(
        "create diff with a context line",
        {},
        "create_file",
        "c.txt",
        "+a\n b\n",
        errors=("create_file c.txt failed; nothing was created", "may only add lines", "' b'"),
    ),
    Scenario(
        "hunk line without a prefix",
        {"t.txt": b"a\nb\n"},
        "update_file",
        "t.txt",
        "@@\n a\nb\n+c\n",
        errors=("diff line 3", "'b'", "' ' (context)"),
    ),
    Scenario(
        "no newline marker that does not fit the end of the file",
        {"t.txt": b"a\nb\nc\n"},
        "update_file",
        "t.txt",
        "@@ -1,1 +1,1 @@\n-a\n+A\n\\ No newline at end of file\n",
        errors=("this line at the end of the file", "drop the marker"),
    ),
]


def _write(root: Path, files: Files) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _read(root: Path) -> Files:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_there_are_enough_scenarios() -> None:
    assert len(SCENARIOS) >= 40
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, workspace: Path, executor: ApplyPatchExecutor) -> None:
    _write(workspace, scenario.files)
    before = _read(workspace)
    result = execute(executor, call(scenario.op, scenario.path, scenario.diff))
    output = result.output["output"]
    if scenario.after is None:
        assert not result.ok, output
        for fragment in scenario.errors:
            assert fragment in output, f"{fragment!r} not in:\n{output}"
        assert _read(workspace) == before
    else:
        assert result.ok, output
        assert _read(workspace) == scenario.after
        if scenario.summary is not None:
            assert output == scenario.summary
            assert result.summary == scenario.summary
