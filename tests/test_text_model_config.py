import pytest

from text_model import CONFIGS, TextModelConfig, get_config


def test_reference_config_is_the_classic_design():
    ref = get_config("reference")
    assert (ref.vector_dim, ref.head, ref.batch_size, ref.epochs) == (200, "dot", 256, 5)
    assert ref.cnn_windows == (2, 3, 4, 5)
    assert not ref.use_biases and ref.validation_fraction == 0


def test_best_is_the_default_and_uses_biases_and_early_stopping():
    best = TextModelConfig()
    assert best == CONFIGS["best"]
    assert best.use_biases and best.early_stopping_patience > 0 and best.validation_fraction > 0


def test_round_trip_through_a_dict():
    ref = get_config("reference")
    assert TextModelConfig.from_dict(ref.to_dict()) == ref


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match="unknown text_model config keys: colour"):
        TextModelConfig.from_dict({"colour": "blue"})


@pytest.mark.parametrize("bad", [{"head": "cosine"}, {"dropout": 1.0}, {"cnn_windows": ()},
                                 {"vector_dim": 0}, {"validation_fraction": 0.0, "early_stopping_patience": 2}])
def test_bad_values_are_rejected(bad):
    with pytest.raises(ValueError):
        TextModelConfig(**bad)


def test_unknown_config_name():
    with pytest.raises(ValueError, match="best, reference"):
        get_config("worst")


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TextModelConfig().epochs = 3  # type: ignore[misc]
