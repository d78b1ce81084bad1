"""Fine-tuning datasets, trainers, the model registry and evaluation runs.

Imports `style`, never `bot`. The ML stack (torch, transformers, peft, trl) is the
`[train]` extra and is imported lazily inside the functions that need it.
"""

__all__: list[str] = []
