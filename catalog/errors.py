"""The project's exceptions: one base class, a few kinds a person can act on."""


class PosterecError(Exception):
    """Base of every error the project raises on purpose."""


class DatasetError(PosterecError):
    """A dataset is missing, malformed or fails its checksum."""


class UnknownMovieError(PosterecError, KeyError):
    """A movie id that the catalogue or model does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownUserError(PosterecError, KeyError):
    """A user id that the dataset or model does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ArtifactError(PosterecError):
    """A model artifact is missing, corrupt or does not match its manifest."""


class ScrapeError(PosterecError):
    """Fetching posters failed in a way that stops the whole run."""
