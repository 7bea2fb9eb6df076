"""What a value becomes: every function of jobs.values returns a bounded, storable value for
any input, and never raises."""

import traceback

import pytest

from jobs import values


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    def __repr__(self):
        raise RuntimeError("no repr")


class StrReturnsInt:
    def __str__(self):
        return 42  # noqa: PLE0307 (on purpose: str() raises TypeError)


def recursive_list():
    items = []
    items.append(items)
    return items


def recursive_dict():
    mapping = {}
    mapping["self"] = mapping
    return mapping


def deeply_nested():
    nested = []
    for _ in range(100_000):
        nested = [nested]
    return nested


HOSTILE = {
    "huge int": 10**5000,
    "unprintable": Unprintable(),
    "str returns int": StrReturnsInt(),
    "recursive list": recursive_list(),
    "recursive dict": recursive_dict(),
    "deeply nested": deeply_nested(),
    "NUL and lone surrogate": "a\x00b\ud800c",
    "NUL in a key": {"k\x00": "\udfff"},
    "unprintable in a list": [Unprintable(), 10**5000],
    "nan": float("nan"),
    "bytes": b"\x00\xff" * 10,
}


def storable(text: str) -> bool:
    text.encode("utf-8")  # raises on a lone surrogate
    return "\x00" not in text


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_safe_str_and_safe_repr_are_bounded_storable_text_for_anything(value):
    for text in (values.safe_str(value, 300), values.safe_repr(value, 300)):
        assert isinstance(text, str) and storable(text)
        assert len(text) <= 300 + len(" [… 99999999 more characters cut]")


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_capped_result_is_json_a_database_stores(value, settings):
    import json

    settings.JOBS_RESULT_MAX_BYTES = 1000
    stored = values.capped_result(value)
    text = json.dumps(stored, allow_nan=False, ensure_ascii=False)
    assert storable(text) and "\\u0000" not in text
    assert len(text) < 1200


def test_a_result_that_cannot_be_stored_as_it_is_becomes_a_marked_preview(settings):
    settings.JOBS_RESULT_MAX_BYTES = 1000
    assert values.capped_result(10**5000) == {"repr": "<int of about 5001 digits>", "note": "not JSON-serializable"}
    big = values.capped_result("x" * 50 * 1024 * 1024)
    assert big["note"] == f"truncated from {50 * 1024 * 1024} characters" and big["preview"].startswith("x" * 1000)
    assert values.capped_result({"k\x00": "a\ud800"}) == {"k\ufffd": "a\ufffd"}
    assert values.capped_result({"fine": [1, 2.5, None]}) == {"fine": [1, 2.5, None]}


def exception_text(exc: BaseException) -> str:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 (only to format it)
        return "".join(traceback.format_exception(caught))


def test_an_exception_with_a_huge_message_keeps_its_type(settings):
    settings.JOBS_TRACEBACK_MAX_CHARS = 20000
    text = exception_text(ValueError("L" * 5_000_000))
    stored = values.failure_text(text)
    assert len(stored) <= 20000 + 100 and stored.startswith(values.TRACEBACK_HEADER)
    for source in (text, stored):
        error_type, message = values.parse_exc_string(source)
        assert error_type == "ValueError"
        assert message.startswith("L" * 1000) and "more characters cut]" in message
        assert len(message) <= values.ERROR_MESSAGE_MAX_CHARS + 50


def test_a_deep_traceback_keeps_its_type_line_and_its_last_frames(settings):
    settings.JOBS_TRACEBACK_MAX_CHARS = 2000
    frames = "".join(f'  File "m.py", line {n}, in f{n}\n    f{n + 1}()\n' for n in range(300))
    text = f"{values.TRACEBACK_HEADER}{frames}  File \"m.py\", line 300, in f300\n    raise KeyError(\"the bottom\")\n" \
           "KeyError: 'the bottom'\n"
    stored = values.failure_text(text)
    assert len(stored) <= 2100 and "characters of traceback cut" in stored
    assert 'raise KeyError("the bottom")' in stored
    assert values.parse_exc_string(stored) == ("KeyError", "'the bottom'")


def test_a_chained_exception_is_read_from_its_last_traceback():
    try:
        try:
            raise KeyError("first")
        except KeyError:
            raise RuntimeError("Traceback (most recent call last):\nFakeError: in the message")
    except RuntimeError as exc:
        text = exception_text(exc)
    assert values.parse_exc_string(text) == (
        "RuntimeError", "Traceback (most recent call last):\nFakeError: in the message")


def test_a_type_name_longer_than_its_column_is_cut_not_lost():
    name = "E" * 400 + "Error"
    error_type, message = values.parse_exc_string(f"{values.TRACEBACK_HEADER}  File \"x\"\nmod.{name}: why\n")
    assert error_type == name[:255] and message == "why"


@pytest.mark.parametrize("exc_string, expected", [
    ("Work-horse terminated unexpectedly; waitpid returned 0; ",
     ("WorkHorseExited", "work horse exited with code 0 before the job finished")),
    ("Work-horse terminated unexpectedly; waitpid returned 768; ",
     ("WorkHorseExited", "work horse exited with code 3 before the job finished")),
    ("Work-horse terminated unexpectedly; waitpid returned 11 (signal 11); ",
     ("WorkHorseKilled", "work horse killed by signal 11 (SIGSEGV) before the job finished")),
    ("Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ",
     ("WorkHorseKilled", "work horse killed by signal 9 (SIGKILL) before the job finished")),
    ("WorkerShutdown: the worker shut down; the job was stopped after 3 s",
     ("WorkerShutdown", "the worker shut down; the job was stopped after 3 s")),
    ("the attempt failed while its hook could not write", ("Error", "the attempt failed while its hook could not write")),
    ("ValueError: a\x00b\ud800", ("ValueError", "a\ufffdb\ufffd")),
])
def test_parse_exc_string_names_what_happened(exc_string, expected):
    assert values.parse_exc_string(exc_string) == expected


@pytest.mark.parametrize("value", [None, *HOSTILE.values()], ids=["none", *HOSTILE.keys()])
def test_failure_text_and_parse_exc_string_take_anything(value):
    text = values.failure_text(value, 500)
    assert storable(text) and len(text) <= 600
    error_type, message = values.parse_exc_string(value)
    assert storable(error_type) and len(error_type) <= 255 and storable(message)


def test_progress_is_clamped_and_its_message_storable():
    assert values.progress_fraction(float("nan")) is None
    assert values.progress_fraction("not a number") is None
    assert values.progress_fraction(float("inf")) == 1.0 and values.progress_fraction(-3) == 0.0
    message = values.progress_message("step\x00" * 100)
    assert storable(message) and len(message) == 255 and message.endswith("…")
    assert values.progress_message(10**5000) == "<int of about 5001 digits>"
