"""The loyalty program of this deployment, read from ``PROGRAM_FILE`` (or the bundled demo).

The CLI loads it right after the settings, before any server starts, so a broken program file stops
``loyalty serve`` at once with one line naming the file, the line and the field (exit code 78), rather
than when the first customer earns points. Nothing is kept globally: whoever loads it hands it on.
"""

from __future__ import annotations

from app.settings import Settings
from loyalty.program import Program, load_program


def load_program_for(settings: Settings) -> Program:
    """The program in ``settings.program_file``, or the demo program when it is unset.

    :raises loyalty.program.ProgramError: the file is unreadable or invalid.
    """
    return load_program(settings.program_file)
