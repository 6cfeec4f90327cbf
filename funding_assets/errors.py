"""The one error type users see for bad input or bad settings."""


class FundingInputError(ValueError):
    """Bad input or a bad setting. The message names the file, row or setting at fault.

    Raised before anything is written, so a failing partition keeps its previous rows.
    """
