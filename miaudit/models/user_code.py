"""The user's own code, named by an audit file: find it, fingerprint it, check its
signature, and import it only when the user trusts it.

An audit file travels (it is mailed, committed, attached to a ticket), so a file that names
Python code never runs it by itself: :func:`load_function` needs ``trust_code=True``
(``--trust-code``). What ran is recorded: every code file the function's module imports from
its own folder, with its sha256, so that a report says which training code produced the
references and a cache entry is keyed by that code (change the code, and its models are
trained again).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miaudit.errors import InvalidAuditInput

__all__ = [
    "CodeReference",
    "check_call",
    "code_files",
    "load_function",
    "parse_code_reference",
]


@dataclass(frozen=True)
class CodeReference:
    """Where a function lives: ``file`` (a ``.py`` path) or ``module`` (an importable dotted
    name), and the function's (possibly dotted) name inside it."""

    function: str
    file: Path | None = None
    module: str | None = None

    def __str__(self) -> str:
        where = str(self.file) if self.file is not None else self.module
        return f"{where}:{self.function}"


def parse_code_reference(text: Any, *, base_dir: Path | None, field: str) -> CodeReference:
    """``path/to/file.py:function`` (relative to ``base_dir``, the audit file's folder) or
    ``package.module:function``; checked without importing anything.

    Raises
    ------
    InvalidAuditInput
        Naming ``field``: not of that form, or a file that does not exist.
    """
    if not isinstance(text, str) or text.count(":") < 1:
        raise InvalidAuditInput(
            f"{field}: give 'file.py:function' or 'package.module:function', got {text!r}"
        )
    where, _, function = text.rpartition(":")
    if not function.replace(".", "_").isidentifier() or not where:
        raise InvalidAuditInput(
            f"{field}: {text!r} must end in ':function_name' after a file or module"
        )
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise InvalidAuditInput(f"{field}: code file {str(path)!r} does not exist")
        if path.suffix != ".py":
            raise InvalidAuditInput(f"{field}: code file {str(path)!r} is not a .py file")
        return CodeReference(function=function, file=path.resolve())
    if not all(part.isidentifier() for part in where.split(".")):
        raise InvalidAuditInput(f"{field}: {where!r} is neither a .py file nor a module name")
    return CodeReference(function=function, module=where)


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return f"miaudit_user_{digest}_{path.stem.replace('-', '_')}"


def load_function(reference: CodeReference, *, trust_code: bool, field: str) -> Callable:
    """Import the module of ``reference`` and return its function.

    A file is imported under a private module name, with its folder first on ``sys.path``
    while it imports (so that its own sibling modules import as they do for its author).

    Raises
    ------
    InvalidAuditInput
        Without ``trust_code``; or the module cannot be imported (its error is quoted), or
        it has no such function, or that is not callable.
    """
    from miaudit.errors import UntrustedFileError

    if not trust_code:
        raise UntrustedFileError(
            f"{field}: the audit file names Python code ({reference}), which miaudit runs "
            "only when you say you trust it: pass --trust-code (trust_code=True in Python) "
            "if you wrote it or trust its author"
        )
    if reference.file is not None:
        name = _module_name(reference.file)
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, reference.file)
            if spec is None or spec.loader is None:
                raise InvalidAuditInput(f"{field}: cannot import {str(reference.file)!r}")
            module = importlib.util.module_from_spec(spec)
            folder = str(reference.file.parent)
            sys.path.insert(0, folder)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(name, None)
                raise InvalidAuditInput(
                    f"{field}: importing {str(reference.file)!r} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            finally:
                if folder in sys.path:
                    sys.path.remove(folder)
    else:
        try:
            module = importlib.import_module(reference.module)
        except Exception as exc:
            raise InvalidAuditInput(
                f"{field}: importing module {reference.module!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    target: Any = module
    for part in reference.function.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise InvalidAuditInput(f"{field}: {reference} has no {reference.function!r}")
    if not callable(target):
        raise InvalidAuditInput(f"{field}: {reference} is not callable")
    return target


def check_call(
    fn: Callable, params: Mapping[str, Any], *, field: str, positional: int, required: tuple
) -> None:
    """Refuse, before any training, a function that cannot be called as miaudit will call
    it: ``fn(<positional> arrays, *, <required keywords>, **params)``.

    Raises
    ------
    InvalidAuditInput
        Naming ``field``: a keyword miaudit passes that the function lacks (``seed``), a
        parameter it does not accept, or a required parameter that ``params`` leaves out.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C function: its call will say what is wrong
    problems = []
    accepted = signature.parameters
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    for name in required:
        if name not in accepted and not var_keyword:
            problems.append(
                f"the function takes no {name!r} argument; its signature must be "
                f"{getattr(fn, '__name__', 'train')}(x, y, *, {name}, ...)"
            )
    clash = sorted(set(params) & set(required))
    if clash:
        problems.append(f"params may not set {clash}: miaudit passes them")
    unknown = sorted(set(params) - set(accepted))
    if unknown and not var_keyword:
        takes = [n for n in list(accepted)[positional:] if n not in required]
        problems.append(f"params {unknown} are not arguments of the function (it takes {takes})")
    bound = {**dict.fromkeys(required), **params}
    try:
        signature.bind(*([None] * positional), **{k: v for k, v in bound.items()})
    except TypeError as exc:
        if not problems:
            problems.append(f"it cannot be called as fn(x, y, seed=..., **params): {exc}")
    if problems:
        raise InvalidAuditInput(f"{field}: " + "; ".join(problems))


def _imports_of(path: Path) -> list[tuple[str, int]]:
    """``(dotted name, level)`` of every import statement in ``path`` (relative imports
    have level > 0), read with ``ast``: nothing is run."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.append((base, node.level))
            found += [
                (f"{base}.{alias.name}" if base else alias.name, node.level) for alias in node.names
            ]
    return found


def _resolve(name: str, level: int, importer: Path, root: Path) -> Path | None:
    folder = importer.parent
    for _ in range(max(level - 1, 0)):
        folder = folder.parent
    start = folder if level else root
    parts = [p for p in name.split(".") if p]
    if not parts:
        return None
    candidate = start.joinpath(*parts)
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path.resolve()
    return None


def code_files(entry: Path, root: Path | None = None) -> dict[str, str]:
    """sha256 of ``entry`` and of every ``.py`` file under ``root`` (default: its folder)
    that it imports, directly or through those files; keys are paths relative to ``root``.

    Imports are read with ``ast``, so the set is the same before and after the code runs,
    whichever branches it takes.
    """
    entry = entry.resolve()
    root = (root or entry.parent).resolve()
    found: dict[Path, str] = {}
    stack = [entry]
    while stack:
        path = stack.pop()
        if path in found:
            continue
        found[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        for name, level in _imports_of(path):
            resolved = _resolve(name, level, path, root)
            if resolved is not None and resolved.is_relative_to(root) and resolved not in found:
                stack.append(resolved)
    return {
        (str(p.relative_to(root)) if p.is_relative_to(root) else str(p)): digest
        for p, digest in sorted(found.items())
    }


def qualified_name(fn: Callable) -> str:
    """``module:qualname`` of a function, as reports name it."""
    return f"{getattr(fn, '__module__', None) or '?'}:{getattr(fn, '__qualname__', repr(fn))}"


def function_code(fn: Callable) -> tuple[str, dict[str, str]]:
    """``(name, {file: sha256})`` of a function given in Python: its qualified name, and the
    code files its module imports from the module's folder (:func:`code_files`). A function
    without a source file (typed into a console) is fingerprinted by its source text.

    Raises
    ------
    InvalidAuditInput
        When neither a file nor the source text can be found; pass ``code_version=``.
    """
    name = qualified_name(fn)
    try:
        source_file = inspect.getsourcefile(fn)
    except TypeError:
        source_file = None
    if source_file and Path(source_file).is_file():
        return name, code_files(Path(source_file))
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        raise InvalidAuditInput(
            f"PythonRecipe: cannot find the source of {name} to fingerprint it; pass "
            "code_version='...' (a string that changes whenever the training code does)"
        ) from None
    return name, {"<source>": hashlib.sha256(text.encode()).hexdigest()}
