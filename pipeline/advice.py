"""What the user should do next, in the CLI's words (flags, environment variables).

The library's errors say what went wrong; only the command line knows which flag or variable
the user has, so the advice that names them lives here, next to it.
"""

from __future__ import annotations

from pipeline.errors import BALANCE_CODES, CODE_BUDGET, DAILY_LIMIT_CODE, ApiError


def fatal_advice(error: ApiError, token_variable: str = "COZE_API_TOKEN") -> str:
    """What the user should do after a fatal answer; names the host, never the token."""
    host = error.host or "the API host"
    if error.code == 4100:
        return (
            f"{host} refused the token in {token_variable} (code 4100: invalid or expired). "
            "Check the token; note that a coze.cn token does not work on api.coze.com and a "
            "coze.com token does not work on api.coze.cn (choose the host with --base-url)."
        )
    if error.code == 4101:
        return (
            f"The token in {token_variable} lacks the createSpeech permission on {host} "
            "(code 4101): create a token with that permission."
        )
    if error.code in BALANCE_CODES:
        return (
            f"The account behind {token_variable} has an insufficient balance on {host} "
            f"(code {error.code}): top it up, then run the same command again to resume."
        )
    if error.code == CODE_BUDGET:
        return (
            f"{error.message}. Nothing more was sent; finished chunks are kept: raise "
            "--budget-characters or run the same command again to resume."
        )
    if error.code == DAILY_LIMIT_CODE:
        return (
            f"The daily usage limit was reached on {host} (code 4008). Finished chunks are "
            "kept: run the same command again tomorrow to resume where this run stopped."
        )
    return f"The run was stopped by {host}: {error.message} (code {error.code})."
