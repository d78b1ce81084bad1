"""Turn parsed chats into fine-tuning data that teaches a model to answer as the persona."""

from training.dataset.samples import BUBBLE_SEPARATOR, CONVERSATION_START, Sample, Turn

__all__ = ["BUBBLE_SEPARATOR", "CONVERSATION_START", "Sample", "Turn"]
