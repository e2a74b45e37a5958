"""Errors raised by the kerasdl data loaders."""


class DatasetNotFoundError(FileNotFoundError):
    """A data set is neither on disk nor allowed to be downloaded.

    Raised instead of starting a download: kerasdl never downloads implicitly.
    The message names the data set, the directory searched, how to get the
    data and an offline alternative.
    """


class DatasetFormatError(ValueError):
    """A data file exists but is not what it should be (truncated, corrupt, wrong format)."""
