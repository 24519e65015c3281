"""Every fault QuickArt reports is a QuickArtError: one sentence a TD can act on.

The docstring of each class is its default message; callers add the shot, frame or
file that went wrong. The message is what the status CLI shows and what is stored on
the job row, so it names the thing and, where there is one, the fix.
"""


#: the longest message kept: messages quote people's input (file names, YAML values, sheet cells),
#: and a job row, a status line or a log line must stay readable whatever that input is
MAX_MESSAGE_CHARS = 2000


def quoted(value, limit: int = 80) -> str:
    """repr() of a value taken from input, cut to `limit` characters, for quoting in a message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class QuickArtError(Exception):
    """QuickArt failed."""

    #: False for faults that a retry cannot fix (bad input); the queue fails those at once.
    retryable = False

    def __init__(self, message: str | None = None):
        message = message or (self.__doc__ or "").strip()
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}... (message cut at {MAX_MESSAGE_CHARS:,} characters)"
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(QuickArtError):
    """The configuration is invalid."""


class NamingError(QuickArtError):
    """A path does not match the studio naming convention."""


class ShotFolderInvalid(QuickArtError):
    """The shot folder is not usable."""


class ImageError(QuickArtError):
    """An image could not be read."""


class TimingError(QuickArtError):
    """The shot's timing or exposure sheet is invalid or contradicts the keys on disk."""


class DropError(QuickArtError):
    """A drop could not be accepted."""


class DropChanged(DropError):
    """The shot's files changed since this drop was taken: a newer drop replaces it."""


class UnsafeArchive(DropError):
    """A zip drop was refused because it is unsafe."""


class PipelineError(QuickArtError):
    """A pipeline file is invalid."""


class UnknownStage(PipelineError):
    """A pipeline names a stage that does not exist."""


class StageFailed(QuickArtError):
    """A stage failed."""


class StageCrashed(StageFailed):
    """A stage raised an unexpected exception (a bug, or a fault a retry may clear)."""

    retryable = True


class ModelLoadError(QuickArtError):
    """A model file is missing or does not match its manifest."""


class OutputError(QuickArtError):
    """Outputs could not be written."""

    retryable = True


class JobNotFound(QuickArtError):
    """No such job."""


class InvalidTransition(QuickArtError):
    """The job is not in a state that allows this."""
