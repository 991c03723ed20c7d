"""The shape of the code: imports point one way, and no stage spells out another's options as loose parameters."""

from __future__ import annotations

import ast
import sys
from dataclasses import fields
from pathlib import Path

from gimg.options import SECTIONS, EvaluateOptions, SampleOptions, ServeOptions

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gimg"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The gimg modules a file imports, anywhere in it (functions and TYPE_CHECKING blocks included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in known and target != name}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other in a circle, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_imports_itself_in_a_circle():
    graph = import_graph()
    assert graph["gimg.report"] >= {"gimg.analyze", "gimg.figures"}, "the walker must see real imports"
    assert find_cycle(graph) is None


def test_analysis_knows_nothing_of_its_renderers():
    graph = import_graph()
    assert not graph["gimg.analyze"] & {"gimg.figures", "gimg.report"}


def test_analysis_knows_nothing_of_the_labels_it_may_be_corrected_with():
    graph = import_graph()
    assert "gimg.analyze" in graph["gimg.validation"]
    labels = {"gimg.validation", "gimg.labelreport", "gimg.labelserver"}
    for module in ("gimg.analyze", "gimg.correction", "gimg.studyrates"):
        assert not graph[module] & labels, module


def test_the_fused_pass_is_composed_above_the_stages():
    graph = import_graph()
    assert "gimg.faces" not in graph["gimg.classify"] and "gimg.classify" not in graph["gimg.faces"]
    assert {"gimg.faces", "gimg.classify"} <= graph["gimg.pipeline"]


def test_options_load_nothing_heavy():
    heavy = {"numpy", "pandas", "cv2", "dlib", "onnxruntime", "scipy", "matplotlib", "PIL", "requests"}
    for module in ("options.py", "registry.py", "errors.py"):
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        names |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not names & heavy, module


PLAIN = {"str", "int", "float", "bool", "Path", "None"}


def plain(argument: ast.arg) -> bool:
    """Whether a parameter takes a plain value, as an option does (no annotation, or str, int, Path...)."""
    if argument.annotation is None:
        return True
    text = ast.unparse(argument.annotation).replace("'", "").replace('"', "")
    return set(text.replace(" ", "").split("|")) <= PLAIN


def loose_option_parameters() -> list[tuple[str, str, list[str]]]:
    """(file, function, names) for each function that takes two or more fields of one options class one by one."""
    groups = [{item.name for item in fields(section)}
              for section in [*SECTIONS.values(), EvaluateOptions, SampleOptions, ServeOptions]]
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "options.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = node.args
                names = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs] if plain(a)}
                for group in groups:
                    if len(names & group) >= 2:
                        found.append((path.name, node.name, sorted(names & group)))
    return found


def test_no_function_spells_out_an_options_class(tmp_path, monkeypatch):
    assert loose_option_parameters() == []
    spelled = tmp_path / "gimg" / "spelled.py"
    spelled.parent.mkdir()
    spelled.write_text("def run(out, detector: str = 'hog', upsample: int = 1): ...\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", spelled.parent)
    assert loose_option_parameters() == [("spelled.py", "run", ["detector", "upsample"])]
