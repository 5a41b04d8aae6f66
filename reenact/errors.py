"""The one exception type whose message is shown to users as a single line."""


class ReenactError(Exception):
    """A problem the user can act on: bad input, missing file, wrong checkpoint.

    The CLI prints ``str(error)`` on one line and exits non-zero, without a traceback
    unless ``--debug`` is given. Messages name the file and the problem.
    """
