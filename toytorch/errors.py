"""The one exception type that front ends show to a person as a one-line message."""


class ToytorchError(Exception):
    """A problem with the user's input or files, reported without a traceback.

    Raise it with a message that names the bad value and says what would be accepted,
    e.g. ``ToytorchError("corpus 'x.txt' is empty: it needs at least 65 tokens")``.
    """
