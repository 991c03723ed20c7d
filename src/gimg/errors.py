"""The exceptions gimg's library raises; the CLI turns them into one line and exit code 2."""


class GimgError(Exception):
    """A problem the user can fix; its message says what to do."""


class MissingInputError(GimgError):
    """A stage was run before the stage it reads from, or an input file is absent."""


class EngineError(GimgError):
    """A search engine could not give results for a term (blocked, consent page, markup changed)."""


class ModelError(GimgError):
    """A model file is missing or cannot be loaded, or the requested device is absent."""


class OptionError(GimgError, ValueError):
    """An option value outside its choices or range: a GimgError for the CLI, a ValueError for library callers."""
