"""`RunConfig`: everything that decides what a run does, as plain data.

The model and its server, the loop's limits, compaction, and the run's tools
(`tools.config.ToolsetConfig`). The command line builds one from its flags;
the same schema is what a session records and a batch task line holds, so a
setting is parsed, checked and defaulted in one place. `build_model`,
`build_compactor` and `build_runtime` turn it into the live objects.

Secrets are never part of it: the API key comes from `OPENAI_API_KEY` when
the model client is built.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import pydantic

from itemloop.tools.config import ToolsetConfig

from .defaults import (
    DEFAULT_MAX_TURNS,
    DEFAULT_MODEL_MAX_TIME_S,
    DEFAULT_MODEL_TIMEOUT_S,
    default_model,
)

if TYPE_CHECKING:
    from itemloop.tools.toolset import Toolset

    from .approvals import Approver
    from .compactor import Compactor
    from .loop import Runtime
    from .model import Model
    from .session import SessionStore

CompactStrategy = Literal["auto", "remote", "local", "server"]


class RunConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    model: str = pydantic.Field(default_factory=default_model)
    base_url: str | None = None
    """Any Responses-compatible server (None: $OPENAI_BASE_URL, else OpenAI)."""
    script: Path | None = None
    """A scripted model: turns replayed from this JSON Lines file instead of a server."""
    instructions: str | None = None
    stream: bool = True
    model_timeout_s: float = pydantic.Field(default=DEFAULT_MODEL_TIMEOUT_S, gt=0)
    """Limit on connecting to the model server and on its silence."""
    model_max_time_s: float = pydantic.Field(default=DEFAULT_MODEL_MAX_TIME_S, gt=0)
    """Limit on one model request in total."""
    previous_response_id: bool = False
    """Stateful mode: responses stored server-side, only new items sent."""
    max_turns: int = pydantic.Field(default=DEFAULT_MAX_TURNS, ge=0)
    compact_threshold: int | None = pydantic.Field(default=None, gt=0)
    compact_strategy: CompactStrategy = "auto"
    tools: ToolsetConfig = ToolsetConfig()


class NoModel(ValueError):
    """Nothing to talk to: no key, no server, no script."""


def build_model(config: RunConfig) -> Model:
    """The model client `config` names (raises `NoModel`, or `ScriptError` for a bad script)."""
    if config.script is not None:
        from .scripted import ScriptedModel

        return ScriptedModel.from_file(config.script)
    key = os.environ.get("OPENAI_API_KEY")
    base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
    if not key and not base_url:
        raise NoModel(
            "no model to talk to: set OPENAI_API_KEY (and --base-url for a server other than "
            "OpenAI's), or pass --script FILE to replay a scripted model. "
            "To see itemloop work offline, run: itemloop demo"
        )
    from .openai_model import OpenAIModel

    return OpenAIModel(
        config.model,
        base_url=base_url,
        api_key=key or "not-needed",
        stream=config.stream,
        store=config.previous_response_id,
        timeout_s=config.model_timeout_s,
        max_time_s=config.model_max_time_s,
    )


def build_compactor(config: RunConfig, model: Model) -> Compactor:
    from .compaction import make_compactor

    return make_compactor(
        model,
        threshold=config.compact_threshold,
        strategy=config.compact_strategy,
        model_name=config.model,
    )


def build_runtime(
    config: RunConfig,
    *,
    model: Model | None = None,
    toolset: Toolset | None = None,
    session: SessionStore | Path | None = None,
    approver: Approver | None = None,
) -> Runtime:
    """The `Runtime` of `config` (not started: use it with `async with`). Its policy
    (`tools.policy`, `tools.approval`) is read now, so a bad one fails before anything
    starts; `approver` answers the calls it asks about (None: the run pauses)."""
    from itemloop.tools.toolset import Toolset

    from .loop import Runtime
    from .policy_gate import PolicyGate, load_policy

    policy = load_policy(config.tools)
    model = model if model is not None else build_model(config)
    toolset = toolset if toolset is not None else Toolset(config.tools, model_name=config.model)
    return Runtime(
        model,
        toolset,
        instructions=config.instructions,
        max_turns=config.max_turns,
        session=session,
        compactor=build_compactor(config, model),
        previous_response_id=config.previous_response_id,
        gate=PolicyGate(policy, toolset),
        approver=approver,
    )


# -- recording a run's settings in its session ------------------------------------------
#
# A journal is a file people copy, attach to bug reports and keep for months:
# secrets must not be in it. The values of environment variables (commands'
# and MCP servers') and of MCP HTTP headers are recorded as null; on resume
# an environment variable is taken again from itemloop's own environment, and
# a header must be given again on the command line.

_SECRET_MAPS: Final = ("env", "headers")


def recordable(config: RunConfig) -> dict[str, Any]:
    """`config` as JSON-able data for the journal, with secret values left out."""
    data = config.model_dump(mode="json")
    tools = data["tools"]
    _blank(tools["sandbox"]["options"], "env")
    for server in tools["mcp_servers"]:
        for key in _SECRET_MAPS:
            _blank(server, key)
    return data


def _blank(owner: dict[str, Any], key: str) -> None:
    owner[key] = dict.fromkeys(owner.get(key) or {})


def from_record(data: dict[str, Any], environ: Mapping[str, str] | None = None) -> RunConfig:
    """The `RunConfig` a journal recorded, its left-out secrets taken from `environ`
    (default: this process's environment). Raises `ValueError` saying what to give."""
    environ = os.environ if environ is None else environ
    data = copy.deepcopy(data)
    tools = data.get("tools", {})
    missing: list[str] = []
    env = tools.get("sandbox", {}).get("options", {}).get("env") or {}
    _fill(env, environ, missing, "--env {key}")
    for server in tools.get("mcp_servers", ()):
        name = server.get("name", "?")
        _fill(server.get("env") or {}, environ, missing, f"--mcp-env {name}:{{key}}")
        _fill(server.get("headers") or {}, {}, missing, f"--mcp-header '{name}:{{key}}: ...'")
    if missing:
        raise ValueError(
            "the session's settings name secrets that are not recorded in the journal; set "
            "them in the environment or give them again: " + ", ".join(missing)
        )
    return RunConfig.model_validate(data)


def _fill(
    values: dict[str, Any], environ: Mapping[str, str], missing: list[str], flag: str
) -> None:
    for key, value in values.items():
        if value is None:
            if key in environ:
                values[key] = environ[key]
            else:
                missing.append(flag.format(key=key))
