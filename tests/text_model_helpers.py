"""A tiny text_model configuration for fast tests on the planted fixture."""
from text_model import TextModelConfig

TINY = TextModelConfig(
    name="tiny", user_embedding_dim=8, demographic_embedding_dim=2, movie_embedding_dim=8,
    genre_embedding_dim=4, word_embedding_dim=8, cnn_filters=4, vector_dim=8, dropout=0.1,
    batch_size=64, epochs=4, learning_rate=1e-2, lr_decay=1.0, validation_fraction=0.1,
    early_stopping_patience=0, l2=0.0, bias_l2=0.0,
)
