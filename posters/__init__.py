"""posters stage."""
