"""Small reusable widgets and helpers for the toytui screens."""
