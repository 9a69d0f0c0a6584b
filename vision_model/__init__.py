"""vision_model stage."""
