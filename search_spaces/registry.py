"""Find a search space: a built-in name, a file (`path/to/file.py:ClassName`), a module
(`package.module:ClassName`) or an installed package's entry point in the group `hwnas.search_spaces`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path

from search_spaces.base import SearchSpace, name_problem

ENTRY_POINT_GROUP = "hwnas.search_spaces"


def _builtin():
    # Imported lazily so that `import search_spaces` stays cheap.
    from search_spaces.fbnet import FBNet
    from search_spaces.nasbench201 import NasBench201

    return {"fbnet": FBNet, "nasbench201": NasBench201}


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_spaces() -> list[str]:
    return sorted(set(_builtin()) | set(_entry_points()))


def _load_file(path: Path):
    try:
        found = path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system, which is_file raises on
        raise ValueError(f"search space file {str(path)[:80]!r}: {exc.strerror or exc}") from None
    if not found:
        raise ValueError(f"search space file not found: {path}")
    module_name = f"hwnas_user_space_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:  # no loader for its suffix, e.g. a CSV or a file without one
        raise ValueError(f"cannot load {path}: Python loads modules from .py files; give the file that defines "
                         "the space")
    module = importlib.util.module_from_spec(spec)
    # Marks a module no other process can import by name: parallel runners ship it by value.
    module.__hwnas_user_file__ = str(path)
    # Registered before exec so that pickling (e.g. to Ray workers) can find the module by name.
    sys.modules[module_name] = module
    # As `python file.py` would, put the file's folder on the path while it loads, so that a space
    # spread over several files can import the modules beside it at its top level. Taken off again
    # afterwards: left there, its files would shadow any later import of the same name.
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ValueError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    except SystemExit as exc:  # a script's sys.exit(): the run ended silently, with its status
        del sys.modules[module_name]
        raise ValueError(f"cannot load {path}: it calls sys.exit({exc.code!r}) while being imported; a space file "
                         "must only define things (put script code under `if __name__ == \"__main__\":`)") from None
    finally:
        if added:
            sys.path.remove(folder)
    return module


# This project's packages: importable by every worker, so never shipped by value, even from a space
# file kept at the repository's root.
PROJECT_PACKAGES = frozenset({"nas", "predictor", "profiler", "search_spaces"})


def user_code_error(exc: BaseException) -> str | None:
    """One line for `exc` where a search space's own code raised it, naming the space's method that
    was running and the line of the user's files that raised (or called what raised). None for any
    other, so that a bug of ours keeps its traceback.

    The user's code is found by what runs, not by where files lie: a frame running a method that a
    space class defines (not `SearchSpace` or a built-in space: a user's space installed in
    site-packages counts, a library on PYTHONPATH does not), and the frames below it in that file's
    folder (a list comprehension, a helper module beside it). Our calls into a space turn its
    ValueErrors into messages of their own; this is for the rest (an IndexError in a decode, a
    KeyError in an accuracy look-up), which would otherwise end a run in a traceback.
    """
    try:
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frames.append((tb.tb_frame, tb.tb_lineno))
            tb = tb.tb_next
        entry = next((frame for frame, _ in frames if _runs_a_user_method(frame)), None)
        if entry is None:
            return None
        folder = Path(entry.f_code.co_filename).resolve().parent
        code, line = next((f.f_code, n) for f, n in reversed(frames)
                          if Path(f.f_code.co_filename).resolve().is_relative_to(folder))
        return (f"the search space's code raised {type(exc).__name__}: {exc} (in {entry.f_code.co_name}, "
                f"{code.co_filename}:{line})")
    except Exception:  # noqa: BLE001 - called while handling an error: never hide that one
        return None


def _runs_a_user_method(frame) -> bool:
    """Whether `frame` runs a method (or property) that a user's SearchSpace subclass defines."""
    space = frame.f_locals.get("self")
    if not isinstance(space, SearchSpace):
        return False
    ours = {SearchSpace, *_builtin().values()}
    for cls in type(space).__mro__:
        if cls in ours or not issubclass(cls, SearchSpace):
            continue
        for attr in vars(cls).values():
            fn = getattr(attr, "fget", attr)        # a property's getter
            fn = getattr(fn, "__func__", fn)        # a classmethod's or staticmethod's function
            if getattr(fn, "__code__", None) is frame.f_code:
                return True
    return False


def modules_beside(module) -> list:
    """The modules and packages that the space file `module` was loaded from imported from its own
    folder (the module itself included): no Ray worker can import them by name, so they are pickled by
    value with it. Empty for a module not loaded from a file.

    Matched by their top-level name's file lying directly in that folder, not anywhere below it: a
    virtual environment kept beside the file holds torch, which must not be shipped by value.
    """
    file = getattr(module, "__hwnas_user_file__", None)
    if not file:
        return []
    folder = Path(file).resolve().parent
    found = [module]
    for name, mod in list(sys.modules.items()):
        if "." in name or name in PROJECT_PACKAGES or mod is module:
            continue
        where = getattr(mod, "__file__", None)
        if where and Path(where).resolve() in (folder / f"{name}.py", folder / name / "__init__.py"):
            found.append(mod)
    return found


def _load_class(spec: str) -> type:
    where, _, cls_name = spec.rpartition(":")
    if not where or not cls_name.isidentifier():
        raise ValueError(f"search space {spec!r} is not path/to/file.py:ClassName or package.module:ClassName")
    if where.endswith(".py") or "/" in where or Path(where).suffix == ".py":
        module = _load_file(Path(where))
    else:
        try:
            module = importlib.import_module(where)
        except (Exception, SystemExit) as exc:  # ImportError; TypeError for `..x`; whatever it raises or exits with
            raise ValueError(f"cannot import module {where!r} for search space {spec!r}: "
                             f"{type(exc).__name__}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ValueError(f"{where} has no class {cls_name!r}")
    return cls


def _check(cls, spec: str) -> type:
    if not (inspect.isclass(cls) and issubclass(cls, SearchSpace)):
        raise ValueError(f"{spec!r} is not a SearchSpace subclass (see search_spaces/base.py)")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ValueError(f"{spec!r} does not implement the SearchSpace method(s): {missing}")
    return cls


def _check_name(space: SearchSpace, spec: str) -> None:
    """The space's name is part of profile file names, `<device>--<space>.json`: a '/' wrote into a
    subfolder, and a '--' would be split at the wrong place when the folder is listed."""
    problem = name_problem(space.name) or ("must not hold '--'" if "--" in space.name else None)
    if problem:
        raise ValueError(f"{spec!r} has name {space.name!r}, which {problem}: a space's name is part of file names")


def get_space(name: str, dataset: str | None = None) -> SearchSpace:
    """The space called `name` (built-in or entry point), or loaded from `file.py:Class` / `module:Class`.

    Raises ValueError with a message a user can act on when it cannot be found or loaded.
    """
    builtin = _builtin()
    if name in builtin:
        cls = builtin[name]
    elif ":" in name:
        cls = _check(_load_class(name), name)
    else:
        eps = _entry_points()
        if name not in eps:
            raise ValueError(f"unknown search space {name!r}; known spaces: {', '.join(available_spaces())}; "
                             "or give your own as path/to/file.py:ClassName or package.module:ClassName")
        try:
            loaded = eps[name].load()
        except (Exception, SystemExit) as exc:  # the installed package's import fails, or it lacks the class it names
            raise ValueError(f"cannot load search space {name!r} from its entry point {eps[name].value!r}: "
                             f"{type(exc).__name__}: {exc}") from None
        cls = _check(loaded, name)
    if dataset is not None and not cls.datasets:
        # Accepted, it would be recorded in the results as if it meant something.
        raise ValueError(f"search space {name} declares no datasets (its `datasets` is empty): leave out "
                         f"--dataset {dataset}")
    if dataset is not None and dataset not in cls.datasets:
        raise ValueError(f"unknown dataset {dataset!r} for {name}; choose from {', '.join(cls.datasets)}")
    try:
        space = cls(dataset) if dataset is not None else cls()
    except Exception as exc:  # a user's constructor may raise anything (a missing data file, say)
        raise ValueError(f"cannot construct {name}: {type(exc).__name__}: {exc}") from None
    space._spec = name
    _check_name(space, name)
    space.check()
    return space
