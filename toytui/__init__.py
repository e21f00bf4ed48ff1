"""toytui: a Textual app for the whole toytorch job."""
