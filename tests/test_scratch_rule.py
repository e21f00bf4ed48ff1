"""The scratch rule, read from the source: engine modules use tensor operations,
autograd and nn.Module / nn.Parameter / containers only.

The checker walks each module's syntax tree (not its text, so docstrings and comments
that name torch.nn layers are fine): it resolves import aliases (relative imports
against the file's own package) and attribute chains, e.g. ``from torch import nn``
then ``nn.Linear`` resolves to ``torch.nn.Linear``, and rejects
- any import of torch.nn.functional, torch.nn.modules, torch._C._nn, tokenizers,
  tiktoken, and any toytorch module outside the engine (toytorch.errors is allowed),
  so the engine cannot route through a helper that uses them;
- any ``torch.nn.<Name>`` other than the allowed containers below;
- torch's fused neural-network kernels: ``torch.<name>`` from the list below or with a
  backend prefix (native_, cudnn_, ...), everything private (``torch._*``), everything
  under ``torch.ops``, the NN functions of ``torch.special``, and the tensor methods
  ``.softmax()`` / ``.log_softmax()`` (also as ``torch.Tensor.softmax(x)``): those are
  the very things toytorch writes;
- any ``F.<name>`` attribute, the customary alias of torch.nn.functional;
- the ways around a static check: ``getattr`` with a computed name (except on
  ``self``), ``sys.modules``, ``exec`` / ``eval`` / ``compile`` / ``__import__`` /
  ``vars`` / ``globals``, ``importlib.import_module`` with a computed or forbidden
  name, and the rest of importlib (loading code by path).

Known limit: it is a static check of names, not a sandbox; an object handed in from
outside the engine at run time is out of its sight.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = [
    "toytorch/func.py",
    "toytorch/layers",
    "toytorch/models",
    "toytorch/tokenizers",
]

FORBIDDEN_MODULES = (
    "torch.nn.functional",
    "torch.nn.modules",
    "torch._C._nn",
    "tokenizers",
    "tiktoken",
    "toytui",  # the project's other code is outside the engine too
    "benchmarks",
)
ALLOWED_NN = {
    "Module",
    "Parameter",
    "ModuleList",
    "ModuleDict",
    "ParameterList",
    "ParameterDict",
    "Buffer",
}
FUSED_TORCH = {
    "softmax", "log_softmax", "layer_norm", "native_layer_norm", "group_norm",
    "batch_norm", "instance_norm", "rms_norm", "lstm", "lstm_cell", "gru", "gru_cell",
    "rnn_tanh", "rnn_relu", "rnn_tanh_cell", "rnn_relu_cell", "embedding",
    "embedding_bag", "dropout", "feature_dropout", "alpha_dropout", "conv1d",
    "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
    "max_pool1d", "max_pool2d", "avg_pool1d", "adaptive_avg_pool1d",
    "adaptive_max_pool1d", "max_pool2d_with_indices", "max_pool3d", "conv_transpose3d",
    "conv_tbc", "bilinear", "pixel_shuffle", "binary_cross_entropy_with_logits",
    "kl_div", "ctc_loss", "cosine_embedding_loss",
    "hinge_embedding_loss", "margin_ranking_loss", "poisson_nll_loss",
    "triplet_margin_loss", "prelu", "selu", "celu", "rrelu", "hardshrink",
    "threshold", "embedding_renorm_",
}  # fmt: skip
# Private names (torch._softmax, ...) are refused by prefix, and so are backend
# kernels (torch.native_batch_norm, torch.cudnn_convolution, ...), so this list need
# not be complete for them.
FUSED_PREFIXES = ("native_", "cudnn_", "miopen_", "mkldnn_", "fbgemm_", "quantized_")
FUSED_METHODS = {"softmax", "log_softmax"}
# Where the engine's own imports may land: the engine itself and the error type
ENGINE_MODULES = (
    "toytorch.func",
    "toytorch.layers",
    "toytorch.models",
    "toytorch.tokenizers",
    "toytorch.errors",
)
DYNAMIC_CODE = {"exec", "eval", "compile", "__import__", "vars", "globals"}


def _under(name: str, modules: tuple[str, ...]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def _forbidden_module(name: str) -> bool:
    """A forbidden library, or a toytorch module outside the engine."""
    if _under(name, FORBIDDEN_MODULES) or name == "<beyond toytorch>":
        return True
    return (
        _under(name, ("toytorch",))
        and name != "toytorch"
        and not _under(name, ENGINE_MODULES)
    )


def _torch_kernel(parts: list[str]) -> str | None:
    """Why ``torch.<parts[1]>...`` is one of torch's own NN kernels, else None."""
    name = parts[1]
    if name == "ops":
        return "torch.ops (raw operator table)"
    if name.startswith("_") and name != "__version__":  # also torch.__dict__[...]
        return "private torch API"
    if name in FUSED_TORCH or name.startswith(FUSED_PREFIXES):
        return "torch's fused kernel"
    if len(parts) > 2 and name == "special" and parts[2] in FUSED_TORCH | FUSED_METHODS:
        return "torch.special's fused kernel"
    if len(parts) > 2 and name == "Tensor" and parts[2] in FUSED_METHODS:
        return "tensor method called through torch.Tensor"
    return None


class _Checker(ast.NodeVisitor):
    """Collects (line, message) for every violation in one module."""

    def __init__(self, package: str) -> None:
        self.package = package  # the module's package, for relative imports
        self.aliases: dict[str, str] = {}  # local name -> dotted module/object path
        self.problems: list[tuple[int, str]] = []

    def _flag(self, node: ast.AST, message: str) -> None:
        self.problems.append((getattr(node, "lineno", 0), message))

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if _forbidden_module(a.name):
                self._flag(node, f"import {a.name}")
            if a.asname:
                self.aliases[a.asname] = a.name
            else:  # `import torch.nn` binds `torch`
                top = a.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._absolute(node.module or "", node.level)
        if _forbidden_module(base):
            self._flag(node, f"from {base} import ...")
        for a in node.names:
            full = f"{base}.{a.name}"
            self.aliases[a.asname or a.name] = full
            self._check_dotted(node, full)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = self._resolve(node)
        if dotted is not None:
            self._check_dotted(node, dotted)
        elif node.attr in FUSED_METHODS:  # method on a tensor expression
            self._flag(node, f"tensor method .{node.attr}()")
        if isinstance(node.value, ast.Name) and node.value.id == "F":
            self._flag(node, f"F.{node.attr} (torch.nn.functional alias)")
        # Only the outermost attribute of a chain is checked: skip the inner parts
        inner = node.value
        while isinstance(inner, ast.Attribute):
            inner = inner.value
        self.visit(inner)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":  # __builtins__["exec"] and the like
            self._flag(node, "__builtins__ hides code from this check")

    def visit_Call(self, node: ast.Call) -> None:
        func_name = self._resolve(node.func)
        if func_name is None and isinstance(node.func, ast.Name):
            func_name = node.func.id  # a builtin
        if func_name is not None:
            func_name = func_name.removeprefix("builtins.")
        if func_name in DYNAMIC_CODE or func_name == "importlib.__import__":
            self._flag(node, f"{func_name}() hides code from this check")
        elif func_name == "importlib.import_module":
            self._check_import_module(node)
        elif func_name == "getattr":
            self._check_getattr(node)
        self.generic_visit(node)

    def _check_import_module(self, node: ast.Call) -> None:
        arg = node.args[0] if node.args else None
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            self._flag(node, "importlib.import_module with a computed name")
        elif _forbidden_module(arg.value):
            self._flag(node, f"dynamic import of {arg.value}")

    def _check_getattr(self, node: ast.Call) -> None:
        """getattr(obj, "name") is obj.name; a computed name could be anything."""
        if len(node.args) < 2:
            return
        obj, name = node.args[:2]
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            # a module's own attributes (its parameters, sub-layers) are fine
            if not (isinstance(obj, ast.Name) and obj.id == "self"):
                self._flag(node, "getattr with a computed name")
            return
        dotted = self._resolve(obj)
        if dotted is not None:
            self._check_dotted(node, f"{dotted}.{name.value}")
        elif name.value in FUSED_METHODS:
            self._flag(node, f"tensor method .{name.value}() through getattr")

    def _absolute(self, module: str, level: int) -> str:
        """The absolute name of ``from <dots><module> import``, from self.package."""
        if not level:
            return module
        parts = self.package.split(".")
        if level - 1 >= len(parts):  # leaves the toytorch package altogether
            return "<beyond toytorch>"
        base = parts[: len(parts) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    def _resolve(self, node: ast.AST) -> str | None:
        """Dotted path of an attribute chain rooted at an imported name, else None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.aliases:
            return None
        return ".".join([self.aliases[node.id], *reversed(parts)])

    def _check_dotted(self, node: ast.AST, dotted: str) -> None:
        parts = dotted.split(".")
        if _forbidden_module(dotted):
            where = " (outside the engine)" if parts[0] == "toytorch" else ""
            self._flag(node, dotted + where)
        elif parts[0] == "importlib" and dotted != "importlib.import_module":
            self._flag(node, f"{dotted} (loads code this check cannot see)")
        elif parts[:2] == ["sys", "modules"]:
            self._flag(node, "sys.modules (reaches any loaded module)")
        elif parts[:2] == ["torch", "nn"] and len(parts) > 2:
            if parts[2] not in ALLOWED_NN:
                self._flag(node, f"{dotted} (only {sorted(ALLOWED_NN)} from torch.nn)")
        elif len(parts) >= 2 and parts[0] == "torch" and (why := _torch_kernel(parts)):
            self._flag(node, f"{dotted} ({why})")


def check_source(
    source: str, package: str = "toytorch.layers"
) -> list[tuple[int, str]]:
    """Violations of the scratch rule in one module's source, as (line, message).

    ``package`` is the module's package, against which relative imports resolve.
    """
    checker = _Checker(package)
    checker.visit(ast.parse(source))
    return checker.problems


def _package_of(file: Path) -> str:
    """The package a file's relative imports start from: toytorch/layers/x.py and
    toytorch/layers/__init__.py both resolve against toytorch.layers."""
    return ".".join(file.relative_to(ROOT).parts[:-1])


def _engine_files() -> list[Path]:
    files = []
    for entry in ENGINE:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [f for f in files if f.is_file()]


@pytest.mark.parametrize("entry", ENGINE)
def test_every_engine_entry_exists_and_holds_python(entry):
    # a renamed or emptied folder must not let the rule pass by checking nothing
    path = ROOT / entry
    assert path.exists(), f"engine entry {entry} is missing"
    found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert any(f.is_file() and f.suffix == ".py" for f in found), (
        f"engine entry {entry} holds no .py file"
    )


def test_relative_imports_resolve_against_the_files_package():
    assert _package_of(ROOT / "toytorch/func.py") == "toytorch"
    assert _package_of(ROOT / "toytorch/layers/basic.py") == "toytorch.layers"
    assert _package_of(ROOT / "toytorch/layers/__init__.py") == "toytorch.layers"
    # the same line is fine or not depending on where the file lives
    assert check_source("from .data import load", "toytorch") != []
    assert check_source("from .data import load", "toytorch.tokenizers") == []
    assert check_source("from . import errors", "toytorch") == []


def test_engine_modules_follow_the_scratch_rule():
    files = _engine_files()
    assert ROOT / "toytorch/func.py" in files  # the walk does reach the engine
    problems = [
        f"{f.relative_to(ROOT)}:{line}: {msg}"
        for f in files
        for line, msg in check_source(f.read_text(encoding="utf-8"), _package_of(f))
    ]
    assert not problems, "scratch rule broken:\n" + "\n".join(problems)


FORBIDDEN_SNIPPETS = [
    "import torch.nn.functional as F",
    "import torch.nn.functional",
    "from torch.nn import functional",
    "from torch.nn import functional as Fn",
    "from torch.nn.functional import relu",
    "import torch\ny = torch.nn.functional.relu(x)",
    "y = F.gelu(x)",
    "from torch import nn\nlayer = nn.Linear(3, 4)",
    "import torch.nn as tnn\nlayer = tnn.LSTM(3, 4)",
    "import torch\nlayer = torch.nn.LayerNorm(4)",
    "from torch.nn import Embedding",
    "from torch import nn\nnn.init.normal_(w)",
    "import torch.nn.modules.linear",
    "from torch.nn.modules import Linear",
    "import torch\ntorch._C._nn.linear(x, w)",
    "import tokenizers",
    "from tokenizers import Tokenizer",
    "import tiktoken",
    "import torch\ny = torch.softmax(x, -1)",
    "import torch\ny = torch.layer_norm(x, (4,))",
    "import torch as T\nout = T.lstm(x, hx, params, True, 1, 0.0, True, False, False)",
    "import torch\ny = torch.conv2d(x, w)",
    "y = x.softmax(-1)",
    "y = (a @ b).log_softmax(dim=-1)",
    "m = __import__('torch.nn.functional')",
    "import importlib\nm = importlib.import_module('tiktoken')",
    # raw operator table, private and backend kernels
    "import torch\ny = torch.ops.aten.convolution(x, w, None, [1], [0], [1], 0)",
    "import torch\ny = torch.ops.aten._softmax(x, -1, False)",
    "import torch\ny = torch._softmax(x, -1, False)",
    "import torch\ny = torch._convolution(x, w)",
    "import torch\ny = torch.native_batch_norm(x, w, b, m, v, True, 0.1, 1e-5)",
    "import torch\ny = torch._transformer_encoder_layer_fwd(x)",
    "from torch import _softmax",
    "from torch.ops import aten",
    "import torch\ny = torch.special.softmax(x, -1)",
    "import torch\ny = torch.special.log_softmax(x, -1)",
    "import torch\ny = torch.Tensor.softmax(x, -1)",
    "from torch import Tensor\ny = Tensor.log_softmax(x, -1)",
    # computed names and dynamic code
    "import torch\nf = getattr(torch, 'soft' + 'max')",
    "import torch\nf = getattr(torch, 'softmax')",
    "f = getattr(x, name)",
    "y = getattr(x, 'softmax')(-1)",
    "import sys\nF = sys.modules['torch.nn.functional']",
    "from sys import modules\nF = modules['torch.nn.functional']",
    "exec('import torch.nn.functional as F')",
    "y = eval('F.relu(x)')",
    "code = compile(src, 'x', 'exec')",
    "m = __import__('torch')",
    "import builtins\nbuiltins.exec(src)",
    "import torch\nf = torch.__dict__['softmax']",
    "import torch\nf = vars(torch)['softmax']",
    "f = globals()['F']",
    "run = __builtins__['exec']",
    "import importlib\nm = importlib.__import__('torch.nn.functional')",
    "import importlib.util\nspec = importlib.util.spec_from_file_location('m', p)",
    "from importlib import util",
    "from importlib import import_module\nm = import_module('tokenizers')",
    "import importlib\nm = importlib.import_module(name)",
    "import importlib as il\nm = il.import_module('torch.nn.' + 'functional')",
    # toytorch modules outside the engine
    "from toytorch import data",
    "from toytorch.training import loop",
    "import toytorch.cli.main",
    "import toytorch\ny = toytorch.reporting.Reporter()",
    "from ..training import loop",
    "from .. import data",
    "from ...toytui import app",
    "from toytui.app import ToyTUI",
    "import importlib\nm = importlib.import_module('toytorch.vision.data')",
]


@pytest.mark.parametrize("snippet", FORBIDDEN_SNIPPETS)
def test_checker_catches_forbidden_code(snippet):
    assert check_source(snippet), f"not caught: {snippet!r}"


ALLOWED_SNIPPETS = [
    "import torch\nfrom torch import nn\n\nclass L(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n"
    "        self.w = nn.Parameter(torch.zeros(3))\n"
    "        self.blocks = nn.ModuleList()\n",
    "import torch\ny = torch.addmm(b, x, w.t()).exp().sum(-1)",
    "from toytorch import func\ny = func.softmax(x, -1)",
    "from .basic import Linear\nlayer = Linear(3, 4)",
    '"""Twin of nn.Linear and torch.nn.functional.gelu (words only)."""',
    "import torch\nopt = torch.optim.AdamW(params)",
    "from torch.utils.data import DataLoader",
    "import torch\nx = torch.randn(2).unfold(0, 1, 1)",
    "from .. import func\nfrom ..errors import ToytorchError",
    "from ..models.base import check_choice\nfrom ..tokenizers import Tokenizer",
    "from toytorch.errors import ToytorchError\nimport toytorch.layers.basic",
    "import torch\nv = torch.__version__\nw = getattr(self, f'weight_l{k}')",
    "import torch\nf = getattr(torch, 'exp')\nn = getattr(act, '__name__', 'x')",
    "import regex\nSPLIT = regex.compile('a|b')",
    "import importlib\nm = importlib.import_module('toytorch.func')",
]


@pytest.mark.parametrize("snippet", ALLOWED_SNIPPETS)
def test_checker_allows_scratch_code(snippet):
    assert check_source(snippet) == []
