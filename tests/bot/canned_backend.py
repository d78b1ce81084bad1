"""A backend that always answers, to stand last in a fallback chain behind the one tested."""

from __future__ import annotations

from bot.backends.base import Prompt, Reply


class RetrievalStub:
    """Answers every prompt with a canned reply, as the retrieval backend would."""

    name = "retrieval"

    async def reply(self, prompt: Prompt) -> Reply:
        return Reply(bubbles=("haha yes",), backend=self.name)
