"""A Hugging Face Space from an exported model (``textgan export --space``): the folder's own
``app.py`` serves the page of ``textgan demo`` over the model beside it.

textgan is not on PyPI, so a Space cannot install it: the folder carries a ``textgan/``
package of exactly the modules the page imports, copied from this installed package (the files
are textgan's own, chosen by reading their module-level imports, so there is one source of
truth), with a generated ``__init__.py``. Modules a function imports lazily (the metrics, the
baseline, the figures, training) stay out: the Space path of the page never calls them, and
the Space shows samples without floors (docs/demo.md).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import textgan
from textgan.errors import UserError
from textgan.files import TMP_PREFIX, atomic_write_bytes, fsync_dir
from textgan.sharing import hub

APP = "app.py"
REQUIREMENTS = "requirements.txt"
PAGE_MODULE = "textgan.sharing.demo"
# What the Space's pip installs beside gradio: textgan's own pins of the page's imports.
RUNTIME = ("torch", "numpy", "safetensors")
_PACKAGE_DIR = Path(textgan.__file__).resolve().parent


def module_file(module: str) -> Path | None:
    """The source file of textgan module ``module`` (None for a name that is not a module)."""
    base = _PACKAGE_DIR.joinpath(*module.split(".")[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def module_imports(module: str) -> set[str]:
    """The textgan modules ``module`` imports when it is loaded: its module-level imports
    (not those inside functions, nor those only for type checkers) and their packages."""
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in _loaded(tree.body):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    modules = {m for m in found if m.split(".")[0] == "textgan" and module_file(m)}
    return modules | {p for m in modules for p in _packages(m)}


def _loaded(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """The statements of ``body`` that run on import, into module-level blocks."""
    for node in body:
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _loaded(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _loaded(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                yield from _loaded(handler.body)
        else:
            yield node


def _packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def page_modules() -> list[str]:
    """Every textgan module that importing the page loads, sorted."""
    seen, todo = set(), [PAGE_MODULE, *_packages(PAGE_MODULE)]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(module_imports(module) - seen)
    return sorted(seen)


def package_files() -> dict[str, bytes]:
    """The Space's ``textgan/`` package: each page module's file, and a new ``__init__.py``
    (the installed one offers the whole library lazily, training included)."""
    files = {}
    for module in page_modules():
        path = module_file(module)
        relative = path.relative_to(_PACKAGE_DIR.parent).as_posix()
        files[relative] = path.read_bytes()
    files["textgan/__init__.py"] = (
        f'"""textgan\'s demo page and the inference modules it imports, copied from textgan '
        f'{textgan.__version__} by `textgan export --space`."""\n\n'
        f"__version__ = {textgan.__version__!r}\n"
    ).encode()
    return files


def requirements(gradio_version: str) -> str:
    """``requirements.txt``: textgan's own pins of torch, numpy and safetensors, and the
    Gradio this page was built with."""
    pins = []
    for requirement in metadata.requires("textgan") or []:
        spec, _, marker = (part.strip() for part in requirement.partition(";"))
        if _project(spec) in RUNTIME and not marker:
            pins.append(spec)
    missing = set(RUNTIME) - {_project(p) for p in pins}
    if missing:
        raise RuntimeError(f"textgan's metadata does not declare {sorted(missing)}")
    return "\n".join([*pins, f"gradio=={gradio_version}"]) + "\n"


def _project(spec: str) -> str:
    """The project name of a requirement such as ``torch>=2.4``, lower case."""
    return re.match(r"[A-Za-z0-9_.-]*", spec).group(0).lower()


def app_source(name: str) -> str:
    """``app.py``: the page of the model in the Space's folder."""
    return (
        '"""A Hugging Face Space: textgan\'s demo page over the model in this folder. Written\n'
        "by `textgan export --space`; textgan/ holds the modules the page imports.\n"
        '"""\n\n'
        "from pathlib import Path\n\n"
        "from textgan.sharing.demo import space_blocks\n\n"
        f"demo = space_blocks(Path(__file__).resolve().parent, {name!r})\n\n"
        'if __name__ == "__main__":\n'
        "    demo.launch()  # a Space sets the address through GRADIO_SERVER_NAME and _PORT\n"
    )


def space_card(card: str, gradio_version: str) -> str:
    """The model card with the front matter a Space needs, and a line on what it shows."""
    from huggingface_hub import RepoCard

    parsed = RepoCard(card)
    parsed.data.sdk = "gradio"
    parsed.data.sdk_version = gradio_version
    parsed.data.app_file = APP
    parsed.text = parsed.text.rstrip("\n") + (
        "\n\n## Space\n\n"
        f"`{APP}` serves textgan's demo page over this model (`python {APP}` runs it locally): "
        "samples by argmax or a temperature, with the noise truncation. It shows no JS or "
        "known words: their floors need the training corpus, which this folder does not "
        "carry (`textgan demo` shows them where the corpus is prepared).\n"
    )
    return str(parsed)


def export_space(
    run_dir: str | Path,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    raw: bool = False,
    name: str | None = None,
    command: str = "",
) -> Path:
    """``textgan.sharing.export.export_run`` into the new folder ``out``, plus the Space's files:
    the whole folder appears at once (written beside ``out``, then renamed)."""
    from textgan.sharing.demo import import_gradio
    from textgan.sharing.export import export_run, refuse_existing

    version = import_gradio().__version__
    out = Path(out)
    refuse_existing(out)
    tmp = out.parent / f"{TMP_PREFIX}{out.name}.space.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        folder = export_run(
            run_dir,
            tmp / "model",
            checkpoint=checkpoint,
            raw=raw,
            name=name or out.name,
            command=command,
        )
        card = (folder / hub.CARD).read_text(encoding="utf-8")
        files = {
            **package_files(),
            APP: app_source(name or out.name).encode(),
            REQUIREMENTS: requirements(version).encode(),
            hub.CARD: space_card(card, version).encode(),
        }
        for relative, data in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / relative, data)
        for sub in {(folder / r).parent for r in files}:
            fsync_dir(sub)
        folder.replace(out)
        fsync_dir(out.parent)
    except OSError as err:
        raise UserError(f"cannot write the Space folder {out}: {err.strerror or err}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
