"""What the test folders share: real servers to test against, data files, record factories.

`pyproject.toml` puts `tests/` on the test path, so a test imports `utils.<module>`.
"""
