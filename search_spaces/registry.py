"""Find a search space by name."""

from __future__ import annotations

from search_spaces.base import SearchSpace


def _builtin():
    # Imported lazily so that `import search_spaces` stays cheap.
    from search_spaces.fbnet import FBNet
    from search_spaces.nasbench201 import NasBench201

    return {"fbnet": FBNet, "nasbench201": NasBench201}


def available_spaces() -> list[str]:
    return sorted(_builtin())


def get_space(name: str, dataset: str | None = None) -> SearchSpace:
    """The space called `name`, for `dataset` where the space has accuracy tables.

    Raises ValueError with the known names when `name` is unknown.
    """
    spaces = _builtin()
    if name not in spaces:
        raise ValueError(f"unknown search space {name!r}; known spaces: {', '.join(sorted(spaces))}")
    cls = spaces[name]
    return cls(dataset) if dataset is not None else cls()
