"""The scratch rule, read from the source: engine modules use tensor operations,
autograd and nn.Module / nn.Parameter / containers only.

The checker walks each module's syntax tree (not its text, so docstrings and comments
that name torch.nn layers are fine): it resolves import aliases and attribute chains,
e.g. ``from torch import nn`` then ``nn.Linear`` resolves to ``torch.nn.Linear``, and
rejects
- any import of torch.nn.functional, torch.nn.modules, torch._C._nn, tokenizers,
  tiktoken (also through ``__import__`` / ``importlib.import_module``);
- any ``torch.nn.<Name>`` other than the allowed containers below;
- torch's fused neural-network kernels reached as ``torch.<name>`` (torch.softmax,
  torch.layer_norm, torch.lstm, torch.conv2d, ...) and the tensor methods
  ``.softmax()`` / ``.log_softmax()``: those are the very things toytorch writes;
- any ``F.<name>`` attribute, the customary alias of torch.nn.functional.
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
    "embedding_bag", "dropout", "feature_dropout", "alpha_dropout",
    "_native_multi_head_attention", "conv1d", "conv2d", "conv3d", "convolution",
    "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
    "adaptive_avg_pool1d", "adaptive_max_pool1d", "max_pool2d_with_indices",
}  # fmt: skip
FUSED_METHODS = {"softmax", "log_softmax"}


def _forbidden_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES)


class _Checker(ast.NodeVisitor):
    """Collects (line, message) for every violation in one module."""

    def __init__(self) -> None:
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
        if node.level:  # relative import of toytorch's own modules
            return
        base = node.module or ""
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

    def visit_Call(self, node: ast.Call) -> None:
        func_name = (
            self._resolve(node.func)
            if isinstance(node.func, ast.Attribute)
            else (node.func.id if isinstance(node.func, ast.Name) else None)
        )
        if func_name in ("__import__", "importlib.import_module") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if _forbidden_module(arg.value):
                    self._flag(node, f"dynamic import of {arg.value}")
        self.generic_visit(node)

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
            self._flag(node, dotted)
        elif parts[:2] == ["torch", "nn"] and len(parts) > 2:
            if parts[2] not in ALLOWED_NN:
                self._flag(node, f"{dotted} (only {sorted(ALLOWED_NN)} from torch.nn)")
        elif len(parts) >= 2 and parts[0] == "torch" and parts[1] in FUSED_TORCH:
            self._flag(node, f"{dotted} (torch's fused kernel)")


def check_source(source: str) -> list[tuple[int, str]]:
    """Violations of the scratch rule in one module's source, as (line, message)."""
    checker = _Checker()
    checker.visit(ast.parse(source))
    return checker.problems


def _engine_files() -> list[Path]:
    files = []
    for entry in ENGINE:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [f for f in files if f.is_file()]


def test_engine_modules_follow_the_scratch_rule():
    files = _engine_files()
    assert ROOT / "toytorch/func.py" in files  # the walk does reach the engine
    problems = [
        f"{f.relative_to(ROOT)}:{line}: {msg}"
        for f in files
        for line, msg in check_source(f.read_text(encoding="utf-8"))
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
]


@pytest.mark.parametrize("snippet", ALLOWED_SNIPPETS)
def test_checker_allows_scratch_code(snippet):
    assert check_source(snippet) == []
