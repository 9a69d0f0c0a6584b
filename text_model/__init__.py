"""text_model stage."""
