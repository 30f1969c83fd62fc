"""Schemathesis hooks for fuzzing rbee-host: keep each generated job small enough to finish in
a moment on a CPU, and leave out the echo plugin's deliberate failures.

Only values the document accepts are shrunk, so a case meant to be refused stays refused. The
host's handling of plugin failures has its own tests (tests/tests/echo_jobs.rs).
"""

import schemathesis

# Parameter -> (largest value a fuzzed job keeps, the document's maximum or None).
CAPS = {
    "delay_ms": (20, 60000),  # echo: a pause per word
    "max_tokens": (8, 32768),  # llm
    "max_completion_tokens": (8, 32768),
    "steps": (2, 150),  # sd
    "n": (2, 8),
    "num_images": (2, 8),
    "width": (128, None),  # sd: multiples of 8, no maximum
    "height": (128, None),
}

# Echo parameters that make a job fail or panic on purpose.
FAILURES = ("fail_after", "panic_after")


def shrink(values):
    """Shrinks the documented-valid sizes in a dict of job parameters or request fields."""
    if not isinstance(values, dict):
        return
    for name, (cap, maximum) in CAPS.items():
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        in_range = value > cap and (maximum is None or value <= maximum)
        if in_range and (name not in ("width", "height") or value % 8 == 0):
            values[name] = cap
    for name in FAILURES:
        value = values.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            del values[name]
    size = values.get("size")
    if isinstance(size, str) and "x" in size:
        width, _, height = size.partition("x")
        if width.isdigit() and height.isdigit():
            values["size"] = f"{min(int(width), 128)}x{min(int(height), 128)}"


@schemathesis.hook
def map_case(context, case):
    if isinstance(case.body, dict):
        shrink(case.body)
        shrink(case.body.get("params"))
    return case
