"""What a value becomes when it is stored: the one home of the rule.

A job may produce anything: a result, an exception, a progress message. What reaches a row
is always something every database column takes, and bounded: text without NUL or lone
surrogates, JSON that PostgreSQL's jsonb accepts, an error type that fits its column. What
cannot be stored as it is becomes a bounded preview, marked as one. Every function here is
total: it returns for any input (a huge int that ``str()`` refuses, a ``__repr__`` that
raises, recursion, 50 MB of text) and never raises.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import signal

from .conf import jobs_setting

# The error_type columns are CharField(max_length=255).
ERROR_TYPE_MAX_CHARS = 255
# An error message is cut to this many characters (the traceback keeps its own bound).
ERROR_MESSAGE_MAX_CHARS = 4000
# The progress_message column is CharField(max_length=255).
PROGRESS_MESSAGE_MAX_CHARS = 255

TRACEBACK_HEADER = "Traceback (most recent call last):\n"
# RQ's text for a work horse that ended without finishing its job (rq/worker/worker_classes.py).
HORSE_ENDED = re.compile(r"^Work-horse terminated unexpectedly; waitpid returned (-?\d+)")
# What no column holds: NUL, and surrogates (in a str they are always lone: UTF-8 cannot encode them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# A Python exception line: its (dotted) type, then ": message" or nothing.
_TYPE_LINE = re.compile(rf"([A-Za-z_][\w.]{{0,{ERROR_TYPE_MAX_CHARS * 2}}})(?::[ ]?|$)")
# Without a traceback around it, only a name that looks like an exception counts as one.
_BARE_TYPE_LINE = re.compile(rf"([A-Za-z_][\w.]{{0,{ERROR_TYPE_MAX_CHARS * 2}}}"
                             r"(?:Error|Exception|Exit|Interrupt|Warning|Lost|Shutdown))(?::[ ]?|$)")


def type_name(value: object) -> str:
    """The name of the value's type, for a message; never raises."""
    try:
        name = type(value).__name__
        return name if isinstance(name, str) else "object"
    except Exception:  # noqa: BLE001
        return "object"


def storable_text(text: str) -> str:
    """`text` as any database column can hold it: NUL and lone surrogates become U+FFFD."""
    if not isinstance(text, str):
        text = safe_str(text)
    elif type(text) is not str:  # a subclass may override what slicing and encoding do
        text = str.__str__(text)
    if "\x00" in text or not text.isascii():
        text = _UNSTORABLE.sub("\ufffd", text)
    return text


def cut(text: str, limit: int, *, keep: str = "head") -> str:
    """`text` (storable) at most about `limit` characters, the cut marked; `keep` "head" or "tail"."""
    text = storable_text(text)
    if len(text) <= limit:
        return text
    marker = f"[… {len(text) - limit} more characters cut]"
    return text[:limit] + " " + marker if keep == "head" else marker + " " + text[-limit:]


def _huge_int(value: int) -> str:
    # Python 3.11 refuses str() of an int past 4300 digits (sys.set_int_max_str_digits).
    digits = int(abs(value).bit_length() * math.log10(2)) + 1
    return f"<int of about {digits} digits>"


class _Repr(reprlib.Repr):
    """reprlib's bounded repr (depth, items, lengths), safe for huge ints too."""

    def repr_int(self, value, level):
        try:
            return super().repr_int(value, level)
        except ValueError:
            return _huge_int(value)

    def repr1(self, value, level):
        try:
            return super().repr1(value, level)
        except Exception:  # noqa: BLE001
            return f"<{type_name(value)} object (repr failed)>"


_REPR = _Repr()
_REPR.maxstring = _REPR.maxother = 2000
_REPR.maxlong = 2000
_REPR.maxlevel = 8
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 100


def safe_repr(value: object, limit: int = 2000) -> str:
    """A bounded, storable repr of any value; never raises."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 (RecursionError included)
        text = f"<{type_name(value)} object (repr failed)>"
    return cut(text, limit)


def safe_str(value: object, limit: int | None = None) -> str:
    """str(value) bounded and storable, or a marked stand-in when str() fails; never raises."""
    if type(value) is str:
        text = value
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        text = _huge_int(value)
    else:
        try:
            text = str(value)
            if not isinstance(text, str):
                raise TypeError("__str__ returned a non-string")
            text = str.__str__(text)
        except Exception:  # noqa: BLE001
            text = safe_repr(value, limit or 2000)
            text = f"<{type_name(value)}: str() failed; repr: {text}>"
    return storable_text(text) if limit is None else cut(text, limit)


def capped_result(value):
    """The return value as stored JSON, or a bounded preview (marked with "note") if too
    large or not JSON; what jsonb cannot hold (NUL, lone surrogates) becomes U+FFFD."""
    limit = jobs_setting("JOBS_RESULT_MAX_BYTES")
    if isinstance(value, (str, bytes, bytearray)) and len(value) > limit * 4:
        # Do not serialise 50 MB to keep 64 kB of it.
        return {"preview": cut(value if isinstance(value, str) else safe_repr(value[:limit], limit), limit),
                "note": f"truncated from {len(value)} characters"}
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except Exception:  # noqa: BLE001 (TypeError, ValueError: a huge int, NaN; RecursionError)
        return {"repr": safe_repr(value, limit), "note": "not JSON-serializable"}
    if len(text) > limit:
        return {"preview": cut(text, limit), "note": f"truncated from {len(text)} bytes"}
    if "\\u0000" in text or not text.isascii():
        # PostgreSQL's jsonb holds neither NUL nor a lone surrogate: store the nearest it can.
        try:
            return json.loads(storable_text(text).replace("\\u0000", "\\ufffd"))
        except Exception:  # noqa: BLE001
            return {"preview": cut(text, limit), "note": "not storable as JSON"}
    return value


def error_text(error: BaseException, limit: int = 500) -> str:
    """'Type: message' of an exception, for a log line or a stored note; never raises."""
    return cut(f"{type_name(error)}: {safe_str(error, limit)}", limit)


def unreadable_result(error: BaseException) -> dict:
    """The stored result of a job whose return value was saved but cannot be read back (unpickled)."""
    return {"repr": f"<the return value could not be read back: {error_text(error)}>", "note": "not readable"}


def progress_message(message: object) -> str:
    """A progress message as its column holds it: text, storable, at most 255 characters."""
    text = safe_str(message)
    return text if len(text) <= PROGRESS_MESSAGE_MAX_CHARS else text[:PROGRESS_MESSAGE_MAX_CHARS - 1] + "…"


def progress_fraction(fraction: object) -> float | None:
    """A progress fraction clamped to 0..1; None for what is not a number."""
    if fraction is None:
        return None
    try:
        value = float(fraction)
    except Exception:  # noqa: BLE001
        return None
    if math.isnan(value):
        return None
    return min(max(value, 0.0), 1.0)


# --- failures -------------------------------------------------------------------------

def _exception_start(text: str) -> int:
    """Where the exception part (type line and message) of the last traceback in `text`
    begins: the first unindented line after that traceback's frames; -1 if there is none."""
    header = text.rfind(TRACEBACK_HEADER)
    # A message may quote a traceback: the real one's header is at the start or after a
    # chained exception's separator ("...occurred:\n\n").
    while header > 0 and not text.startswith(":\n\n", header - 3):
        header = text.rfind(TRACEBACK_HEADER, 0, header)
    if header < 0:
        return -1
    position = header + len(TRACEBACK_HEADER)
    while position < len(text) and text[position] in " \t":
        newline = text.find("\n", position)
        if newline < 0:
            return -1
        position = newline + 1
    return position if position < len(text) else -1


def failure_text(exc_string: object, limit: int | None = None) -> str:
    """A failure's traceback as stored: storable and bounded, with the exception's type line
    always kept (the frames' tail and the message's head are cut, each marked)."""
    text = storable_text(exc_string if isinstance(exc_string, str) else safe_str(exc_string))
    limit = limit or jobs_setting("JOBS_TRACEBACK_MAX_CHARS")
    if len(text) <= limit:
        return text
    start = _exception_start(text)
    if start < 0:
        return cut(text, limit, keep="tail")
    frames, exception = text[:start], text[start:]
    exception = cut(exception, max(min(ERROR_MESSAGE_MAX_CHARS, limit // 2), 1))
    budget = max(limit - len(exception) - len(TRACEBACK_HEADER), 0)
    if len(frames) > budget + len(TRACEBACK_HEADER):
        tail = frames[len(frames) - budget:]
        tail = tail[tail.find("\n") + 1:] if "\n" in tail else ""
        frames = f"{TRACEBACK_HEADER}  [… {len(frames) - len(tail)} characters of traceback cut]\n{tail}"
    return frames + exception


def parse_exc_string(exc_string: object, timeout: int | None = None) -> tuple[str, str]:
    """(error_type, error_message) from the text RQ records for a failure, each bounded on its own."""
    text = storable_text(exc_string if isinstance(exc_string, str) else safe_str(exc_string)).strip()
    if not text:
        return "UnknownError", "the job failed without an error message"
    horse = HORSE_ENDED.match(text)
    if horse:
        return horse_ended(int(horse.group(1)))
    if text.startswith("Job stopped by user"):
        return "Stopped", "stopped by an operator"
    start = _exception_start(text + "\n")
    exception = text[start:] if start >= 0 else text
    match = (_TYPE_LINE if start >= 0 else _BARE_TYPE_LINE).match(exception)
    if match and len(match.group(1)) <= ERROR_TYPE_MAX_CHARS * 2:
        error_type = match.group(1).rsplit(".", 1)[-1][:ERROR_TYPE_MAX_CHARS]
        if error_type == "JobTimeoutException":
            return error_type, f"timed out after {timeout} s" if timeout else "timed out"
        return error_type, cut(exception[match.end():].strip(), ERROR_MESSAGE_MAX_CHARS)
    last = text[text.rfind("\n") + 1:]
    return "Error", cut(last, ERROR_MESSAGE_MAX_CHARS)


def horse_ended(status: int) -> tuple[str, str]:
    """(error_type, message) for a work horse that ended before its job did, from its wait status."""
    try:
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                name = f" ({signal.Signals(number).name})"
            except ValueError:
                name = ""
            return "WorkHorseKilled", f"work horse killed by signal {number}{name} before the job finished"
        if os.WIFEXITED(status):
            return "WorkHorseExited", (f"work horse exited with code {os.WEXITSTATUS(status)} "
                                       "before the job finished")
    except (OverflowError, ValueError):
        pass
    return "WorkHorseKilled", f"work horse ended (wait status {status}) before the job finished"
