def pytest_configure(config):
    # Keras' own conftest registers this marker; its test files use it.
    config.addinivalue_line(
        "markers", "requires_trainable_backend: Keras' marker for training tests"
    )
