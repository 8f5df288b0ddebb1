"""Models: the model zoo, search, training, evaluation, the promotion gate, the saved reference."""
