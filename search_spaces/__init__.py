"""Search spaces: the `SearchSpace` interface, the built-in spaces and the loader for user spaces."""

from search_spaces.base import SearchSpace
from search_spaces.registry import available_spaces, get_space

__all__ = ["SearchSpace", "available_spaces", "get_space"]
