"""The project's user-error types: the only exceptions the CLI turns into one `augmix: error:` line.

Anything else (a bug, a library failure) keeps its traceback and a non-zero exit status, so a genuine
defect never looks like a user mistake.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix: the message names the problem (a dotted params key, a file, a flag)."""


class ConfigError(UserError, ValueError):
    """A params file or value that does not match the schema; the message names the dotted key."""


class DataError(UserError, RuntimeError):
    """A dataset, archive or folder that is missing, corrupt or malformed; the message names the file."""


class CheckpointError(UserError, RuntimeError):
    """A model file that cannot be loaded as asked: truncated, not a checkpoint, wrong architecture."""


class PipelineError(UserError, RuntimeError):
    """An orchestrator (DVC, Snakemake, torchrun) that is missing or failed."""


class Interrupted(UserError):
    """SIGINT or SIGTERM ended a stage; its checkpoint is kept and the tracking run marked KILLED."""
