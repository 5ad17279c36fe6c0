"""Check a chat-format training file the way OpenAI's fine-tuning checks it.

Each line is one JSON object ``{"messages": [...]}`` (optionally ``tools``/``parallel_tool_calls``,
which this trainer does not use and so refuses); each message has a ``role`` (system,
developer, user, assistant) and string ``content``; an example must hold at least one
assistant message with content; an assistant message may carry ``weight`` 0 or 1 (0: not
learned). A file needs at least :data:`MIN_EXAMPLES` examples. The first bad line is named
with its number and what to fix, like OpenAI's "Invalid file format" errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from dataclasses import dataclass

__all__ = ["MIN_EXAMPLES", "BadTrainingFile", "ChatFile", "check_line", "read_chat_file"]

MIN_EXAMPLES = 10
ROLES = ("system", "developer", "user", "assistant")
_MESSAGE_KEYS = {"role", "content", "name", "weight"}


class BadTrainingFile(ValueError):
    """A training file that cannot be used; ``line`` is 1-based (None: the whole file)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass
class ChatFile:
    examples: list[list[dict[str, str]]]  # messages; developer → system; weight 0 kept as "0"


def check_line(raw: bytes, number: int) -> list[dict[str, str]]:
    """The messages of one line, or :class:`BadTrainingFile` naming what is wrong."""

    def bad(message: str) -> BadTrainingFile:
        return BadTrainingFile(message, number)

    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"not valid JSON ({exc})") from None
    if not isinstance(item, dict):
        raise bad("each line must be a JSON object with a 'messages' list")
    extra = set(item) - {"messages"}
    if extra:
        raise bad(f"unrecognized key(s) {sorted(extra)}: only 'messages' is supported")
    messages = item.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list")
    out: list[dict[str, str]] = []
    learned = 0
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"{where} must be an object with 'role' and 'content'")
        unknown = set(m) - _MESSAGE_KEYS
        if unknown:
            raise bad(f"{where} has unrecognized key(s) {sorted(unknown)}")
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}")
        content = m.get("content")
        if not isinstance(content, str) or (role == "assistant" and not content.strip()):
            raise bad(f"{where}.content must be a non-empty string")
        weight = m.get("weight", 1)
        if weight not in (0, 1) or isinstance(weight, bool):
            raise bad(f"{where}.weight must be 0 or 1")
        if "weight" in m and role != "assistant":
            raise bad(f"{where}.weight is only allowed on assistant messages")
        if role == "assistant" and weight == 1:
            learned += 1
        message = {"role": "system" if role == "developer" else role, "content": content}
        if weight == 0:
            message["weight"] = "0"  # context only: the trainer does not learn it
        out.append(message)
    if learned == 0:
        raise bad("an example needs at least one assistant message to learn from")
    if out[-1]["role"] != "assistant":
        raise bad("the last message must be the assistant's")
    return out


async def read_chat_file(
    lines: AsyncIterable[tuple[int, bytes]], *, min_examples: int = MIN_EXAMPLES
) -> ChatFile:
    """Every example of a file, checked; blank lines are skipped."""
    examples = []
    async for number, raw in lines:
        if not raw.strip():
            continue
        examples.append(check_line(raw, number))
    if len(examples) < min_examples:
        raise BadTrainingFile(
            f"the file has {len(examples)} example(s); at least {min_examples} are required"
        )
    return ChatFile(examples)
