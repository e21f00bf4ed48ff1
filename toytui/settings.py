"""The few choices toytui remembers between runs, in a small JSON file.

The file lives in ``platformdirs.user_config_dir("toytorch")``; the environment
variable ``TOYTUI_CONFIG_DIR`` points it elsewhere (the tests set it to a temporary
folder so they never touch the user's real settings). A missing or unreadable file
gives the defaults: a broken settings file must never stop the app from starting.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

SETTINGS_FILE = "toytui.json"
TOKENIZER_FILE = "toytui-tokenizer.json"


def config_dir() -> Path:
    """The folder of toytui's settings (TOYTUI_CONFIG_DIR wins over platformdirs)."""
    override = os.environ.get("TOYTUI_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("toytorch"))


@dataclass
class Settings:
    """What the app restores on start: last corpus, tokenizer, checkpoint and theme."""

    corpus: str | None = None
    tokenizer_kind: str | None = None
    tokenizer_corpus: str | None = None
    tokenizer_vocab_size: int | None = None
    checkpoint: str | None = None
    theme: str = "textual-dark"

    @classmethod
    def load(cls) -> Settings:
        """Read the settings file; unknown keys are ignored, bad files give defaults."""
        try:
            data = json.loads((config_dir() / SETTINGS_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self) -> None:
        """Write the settings atomically (temporary file, then rename)."""
        folder = config_dir()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (SETTINGS_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), "utf-8")
        tmp.replace(folder / SETTINGS_FILE)

    @staticmethod
    def tokenizer_path() -> Path:
        """Where the last trained tokenizer is kept so the next run can reload it."""
        return config_dir() / TOKENIZER_FILE
