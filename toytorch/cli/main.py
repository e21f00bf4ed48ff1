"""Entry point of the ``toytorch`` command: builds the typer app and turns errors into
one-line messages.

Each command group lives in its own module and is registered here, so every command is
reached by its name however many there are.
"""

import os
import sys

import typer
from rich.console import Console

from toytorch.cli.corpora import corpora_app
from toytorch.cli.generate import generate_command
from toytorch.cli.tokenizer import tokenizer_app
from toytorch.cli.train import train_command
from toytorch.cli.vision import classify_command, data_app, eval_command
from toytorch.errors import ToytorchError

app = typer.Typer(
    name="toytorch",
    help="Train tokenizers and language models from scratch, and generate text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(tokenizer_app, name="tokenizer")
app.add_typer(corpora_app, name="corpora")
app.command("train")(train_command)
app.command("generate")(generate_command)
app.command("classify")(classify_command)
app.command("eval")(eval_command)
app.add_typer(data_app, name="data")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def main() -> None:
    """Run the CLI; a ToytorchError becomes 'error: ...' on stderr and exit status 1.

    An OSError that no command turned into a ToytorchError (a folder that cannot be
    written, a full disk) is reported the same way: it is the user's environment, not a
    bug, so it gets the operating system's reason and the path, not a traceback.
    """
    try:
        sys.exit(app(standalone_mode=False))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("interrupted", markup=False)
        sys.exit(130)
    except typer.TyperException as e:
        _usage_error(e)
    except ToytorchError as e:
        err_console.print(f"error: {e}", markup=False)
        sys.exit(1)
    except BrokenPipeError:
        # the reader went away (``toytorch ... | head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        err_console.print(f"error: {e.strerror or e}{where}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        sys.exit(130)


def _usage_error(e: typer.TyperException) -> None:
    """Show a command-line usage error in one line (typer would draw a box), or the
    help of a command group called without a subcommand."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help())
        sys.exit(0)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    err_console.print(f"error: {e.format_message()}{hint}", markup=False)
    sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
