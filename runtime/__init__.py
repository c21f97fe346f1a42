"""itemloop.runtime: the agent loop, model clients, events, session store and CLI.

    from itemloop.runtime import OpenAIModel, Runtime, Toolset, ToolsetConfig

Names are imported lazily so that `itemloop --help` does not pay for them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from itemloop.tools.config import ComputerConfig, SandboxConfig, ToolsetConfig
    from itemloop.tools.custom import custom_tool
    from itemloop.tools.function import function_tool
    from itemloop.tools.toolset import Toolset

    from .config import RunConfig, build_runtime
    from .events import Event, RunFinished
    from .loop import Runtime
    from .model import Model, ModelRequest, ModelResponse
    from .openai_model import OpenAIModel
    from .scripted import ScriptedModel, choose_model
    from .session import SessionStore

_EXPORTS = {
    "Runtime": ".loop",
    "RunConfig": ".config",
    "build_runtime": ".config",
    "Toolset": "itemloop.tools.toolset",
    "ToolsetConfig": "itemloop.tools.config",
    "SandboxConfig": "itemloop.tools.config",
    "ComputerConfig": "itemloop.tools.config",
    "Model": ".model",
    "ModelRequest": ".model",
    "ModelResponse": ".model",
    "OpenAIModel": ".openai_model",
    "ScriptedModel": ".scripted",
    "choose_model": ".scripted",
    "SessionStore": ".session",
    "Event": ".events",
    "RunFinished": ".events",
    "function_tool": "itemloop.tools.function",
    "custom_tool": "itemloop.tools.custom",
}

__all__ = [
    "ComputerConfig",
    "Event",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "OpenAIModel",
    "RunConfig",
    "RunFinished",
    "Runtime",
    "SandboxConfig",
    "ScriptedModel",
    "SessionStore",
    "Toolset",
    "ToolsetConfig",
    "build_runtime",
    "choose_model",
    "custom_tool",
    "function_tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'itemloop.runtime' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
