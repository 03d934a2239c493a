"""Errors meant for the user: the CLI prints their message on one line and exits 2."""


class ScratchGPTError(Exception):
    """Base class: bad input, missing file, incompatible checkpoint ... — never a bug."""


class ConfigError(ScratchGPTError, ValueError):
    """A configuration value has the wrong type or is out of range."""


class CheckpointError(ScratchGPTError):
    """A checkpoint or tokenizer file is missing, truncated, corrupt or mismatched."""


class DataError(ScratchGPTError):
    """Input data cannot be read or has the wrong shape."""


class DeviceError(ScratchGPTError):
    """An op got arrays on two devices at once, or on a device it has no implementation for."""


class DistError(ScratchGPTError):
    """A multi-process (MPI) run cannot start or continue: mpi4py missing, ranks disagree, a peer died."""
