"""One module per screen of the app (each a pane of the main tabs, or a modal)."""
