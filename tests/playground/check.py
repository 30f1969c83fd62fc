"""Drives the playground in headless Chromium against a running rbee-host and checks what a
user sees. Usage: check.py URL SCENARIO [ARGS...]; exits 0 when every check holds.

Scenarios: echo, llm, sd, audio WAV TRANSCRIPT, key KEY, models."""

import base64
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

from browser import chromium, open_page, poll


def header(page, name):
    """A value of the header's status, e.g. header(page, "Plugin")."""
    item = page.locator("#status div").filter(has=page.locator("dt", has_text=re.compile(f"^{name}$")))
    return item.locator("dd").text_content()


def wait_loaded(page):
    """Waits for the model picker and the header's status."""
    page.locator("#model option").first.wait_for(state="attached")
    poll("the header's status", lambda: page.locator("#status dd").count() == 6)


def job_state(url, job_id):
    """`GET /v1/jobs/{id}`'s state."""
    with urllib.request.urlopen(f"{url}/v1/jobs/{job_id}") as answer:
        return json.load(answer)["state"]


def png(width, height, pixel):
    """A PNG file (RGB) of `pixel(x, y)`."""
    rows = b"".join(b"\0" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png_size(src):
    """The width and height of a `data:image/png;base64,` URL's image."""
    assert src.startswith("data:image/png;base64,"), src[:40]
    data = base64.b64decode(src.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def check_echo(page, url):
    """The generated form of the echo plugin submits and shows the raw events; the raw JSON
    editor, errors, the API tab's curl and the theme toggle work."""
    wait_loaded(page)
    assert header(page, "Plugin") == "echo-cpu", header(page, "Plugin")
    assert header(page, "State") == "ready", header(page, "State")
    text = page.get_by_role("textbox", name="text")
    assert text.get_attribute("required") is not None, "text is required in the schema"
    assert page.locator(".slider input[type=range]").count() == 1, "delay_ms is bounded: a slider"
    assert page.get_by_role("checkbox", name="from_thread").is_visible()
    assert page.get_by_role("spinbutton", name="fail_after").is_visible()

    text.fill("hello there from the playground")
    page.get_by_role("spinbutton", name="delay_ms").fill("20")
    page.get_by_role("button", name="Run").click()
    page.locator(".events .end").wait_for()
    tokens = [json.loads(t)["text"] for t in page.locator(".events .token code").all_text_contents()]
    assert tokens == ["hello ", "there ", "from ", "the ", "playground"], tokens
    assert page.locator(".events .started").count() == 1
    assert json.loads(page.locator(".events .end code").text_content())["stop_reason"] == "completed"
    assert page.locator(".jobstate").text_content() == "Ended: completed"

    page.get_by_text("Raw JSON").click()
    raw = page.get_by_role("textbox", name="Extra parameters as JSON")
    raw.fill("{not json")
    page.get_by_role("button", name="Run").click()
    assert "Raw JSON:" in page.locator(".raw .error").text_content()
    raw.fill('{"fail_after": 2}')
    page.get_by_role("button", name="Run").click()
    page.locator(".events .error").wait_for()
    assert page.locator(".events .token").count() == 2
    assert page.locator(".jobstate .note").text_content().startswith("Failed: ")

    raw.fill("")
    page.get_by_role("button", name="Run").click()
    page.locator(".events .end").wait_for()
    page.get_by_role("tab", name="API").click()
    curl = page.locator("#panel-api pre").first.text_content()
    assert '"text": "hello there from the playground"' in curl, curl
    ran = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert "event: end" in ran.stdout, f"the curl snippet did not run:\n{curl}\n{ran.stdout}{ran.stderr}"
    assert "No OpenAI-compatible call for echo" in page.locator("#panel-api").text_content()

    page.get_by_role("tab", name="Playground").click()
    dark = page.locator("html").get_attribute("data-theme") != "dark"
    page.get_by_role("button", name="Dark theme").click()
    assert page.locator("html").get_attribute("data-theme") == ("dark" if dark else "light")
    assert page.get_by_role("button", name="Dark theme").get_attribute("aria-pressed") == str(dark).lower()


def check_llm(page, url):
    """A chat on SmolLM2 streams its reply; a long generation is stopped with the stop button
    and ends as cancelled; each reply shows its stop reason and tokens/s."""
    wait_loaded(page)
    # Greedy from the start: a sampled first reply changes the history the long story follows,
    # and now and then the story came out too short to be stopped.
    page.get_by_role("spinbutton", name="temperature").fill("0")
    message = page.get_by_role("textbox", name="Message")
    message.fill("What is the capital of France? Answer in one sentence.")
    message.press("Enter")
    first = page.locator(".msg.assistant").first
    poll("the first reply to end", lambda: first.get_attribute("data-stop-reason"), 60)
    assert first.locator(".text").text_content().strip(), "an empty reply"
    meta = first.locator(".meta").text_content()
    assert re.search(r"Stop: (eos|max_tokens) · \d+ tokens · [\d.]+ tokens/s", meta), meta

    page.get_by_role("spinbutton", name="max_tokens").fill("3000")
    message.fill("Write a very long story about a dragon who learns to count to one thousand.")
    page.get_by_role("button", name="Send").click()
    reply = page.locator(".msg.assistant").nth(1)
    text = reply.locator(".text")
    lengths = set()
    poll("the reply to stream", lambda: lengths.add(len(text.text_content())) or len(lengths - {0}) >= 3, 60)
    page.get_by_role("button", name="Stop").click()
    poll("the stopped reply to end", lambda: reply.get_attribute("data-stop-reason"), 30)
    assert reply.get_attribute("data-stop-reason") == "cancelled", reply.get_attribute("data-stop-reason")
    meta = reply.locator(".meta").text_content()
    assert re.search(r"Stop: cancelled · \d+ tokens · [\d.]+ tokens/s", meta), meta
    assert page.locator(".jobstate .note").text_content() == "Ended: cancelled"
    assert job_state(url, reply.get_attribute("data-job-id")) == "cancelled"
    assert page.get_by_role("button", name="Stop").is_disabled()

    page.get_by_role("tab", name="API").click()
    python = page.locator("#panel-api pre").nth(1).text_content()
    assert "client.chat.completions.create(" in python and "stream=True" in python, python
    assert '"content": "Write a very long story' in python and "max_tokens=3000" in python, python


def check_sd(page, url):
    """Stable Diffusion on the tiny checkpoint: step progress and live previews while it runs,
    then the final image; inpainting with a painted mask."""
    wait_loaded(page)
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a bee on a sunflower")
    page.get_by_role("spinbutton", name="steps").fill("150")
    page.get_by_role("button", name="Generate").click()
    note = page.locator(".jobstate .note")
    step = poll("a step in progress", lambda: re.fullmatch(r"Step (\d+) of 150", note.text_content() or ""), 60)
    assert int(step.group(1)) < 150
    preview = page.locator(".output img.preview")
    poll("a live preview", lambda: preview.count() and preview.get_attribute("src"), 60)
    png_size(preview.get_attribute("src"))
    page.locator(".result img").wait_for(timeout=60000)
    assert png_size(page.locator(".result img").get_attribute("src")) == (64, 64)
    assert note.text_content() == "Ended: completed"
    assert page.locator(".image .meta").text_content().startswith("Stop: completed")

    page.get_by_role("combobox", name="Task").select_option("inpainting")
    with tempfile.NamedTemporaryFile(suffix=".png") as start:
        start.write(png(64, 64, lambda x, y: (x * 4, y * 4, 128)))
        start.flush()
        page.get_by_label("Start image").set_input_files(start.name)
        page.get_by_role("textbox", name="Prompt", exact=True).fill("a bee")
        page.get_by_role("button", name="Generate").click()
        assert "Paint the area" in page.locator(".image .meta").text_content()
        mask = page.get_by_role("img", name="Mask: paint the area to repaint")
        box = mask.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.5, steps=6)
        page.mouse.up()
        page.get_by_role("spinbutton", name="steps").fill("4")
        page.get_by_role("button", name="Generate").click()
        page.locator(".result img").wait_for(timeout=60000)
    assert png_size(page.locator(".result img").get_attribute("src")) == (64, 64)
    page.get_by_role("tab", name="API").click()
    curl = page.locator("#panel-api pre").first.text_content()
    assert "\"task\": \"inpainting\"" in curl and "base64 -w0 'mask.png'" in curl, curl
    assert page.get_by_role("link", name="mask.png").is_visible()


def check_audio(page, url, wav, transcript):
    """An uploaded speech clip is transcribed, with timed segments."""
    wait_loaded(page)
    page.get_by_label("Audio file").set_input_files(wav)
    page.get_by_role("button", name="Transcribe").click()
    meta = page.locator(".audio .meta")
    poll("the transcript", lambda: meta.text_content().startswith("Stop:") and meta.text_content(), 60)
    assert "Stop: completed" in meta.text_content() and "language en" in meta.text_content(), meta.text_content()

    def words(text):
        return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())

    expected = words(open(transcript).read())
    assert words(page.locator(".transcript").text_content()) == expected, page.locator(".transcript").text_content()
    segment = page.locator(".segments li").first
    assert re.match(r"0:00\.\d – 0:\d\d\.\d", segment.locator("time").text_content()), segment.text_content()
    page.get_by_role("tab", name="API").click()
    python = page.locator("#panel-api pre").nth(1).text_content()
    assert "client.audio.transcriptions.create(" in python and 'open("hello_world.wav", "rb")' in python, python


def check_key(page, url, key):
    """With an API key, the page asks for it, refuses a wrong one clearly, and works once the
    right one is entered (also after a reload: the tab keeps it)."""
    panel = page.get_by_role("region", name="API key required")
    panel.wait_for()
    assert page.locator("#main").is_hidden(), "the playground shows without a key"
    page.get_by_label("API key", exact=True).fill("wrong")
    page.get_by_role("button", name="Use key").click()
    error = page.get_by_role("alert").filter(has_text="refused")
    error.wait_for()
    assert "401 invalid_api_key" in error.text_content(), error.text_content()
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use key").click()
    wait_loaded(page)
    assert panel.is_hidden()
    for attempt in ["before", "after"]:
        page.get_by_role("textbox", name="text").fill(f"{attempt} a reload")
        page.get_by_role("button", name="Run").click()
        page.locator(".events .end").wait_for()
        if attempt == "before":
            page.reload()
            wait_loaded(page)
    page.get_by_role("tab", name="API").click()
    curl = page.locator("#panel-api pre").first.text_content()
    assert "Bearer $RBEE_API_KEY" in curl and key not in curl, curl


def check_models(page, url):
    """The model picker lists every model of a models file, each with its plugin in the header,
    its own view and form, and it sets `model` on the request."""
    wait_loaded(page)
    plugins = {"smol": "llm-cpu", "tiny-sd": "sd-cpu", "whisper": "audio-cpu", "echo": "echo-cpu"}
    views = {
        "smol": ("textbox", "Message"),
        "tiny-sd": ("textbox", "Prompt"),
        "whisper": ("button", "Transcribe"),
        "echo": ("button", "Run"),
    }
    ids = sorted(page.locator("#model option").evaluate_all("options => options.map(o => o.value)"))
    assert ids == sorted(plugins), ids
    picker = page.get_by_role("combobox", name="Model")
    for model, (role, name) in views.items():
        picker.select_option(model)
        page.get_by_role(role, name=name, exact=True).wait_for()
        poll(f"the header to show {model}'s plugin", lambda: header(page, "Plugin") == plugins[model])
        assert f"model={model}" in page.url, page.url
    picker.select_option("tiny-sd")
    tasks = page.get_by_role("combobox", name="Task").locator("option").all_text_contents()
    assert tasks == ["image-generation", "image-to-image", "inpainting"], tasks
    picker.select_option("echo")
    page.get_by_role("textbox", name="text").fill("picked")
    page.get_by_role("button", name="Run").click()
    page.locator(".events .end").wait_for(timeout=60000)
    page.get_by_role("tab", name="API").click()
    assert '"model": "echo"' in page.locator("#panel-api pre").first.text_content()
    poll("echo to show as loaded", lambda: "echo · loaded" in page.locator("#model").text_content(), 10)


SCENARIOS = {
    "echo": check_echo,
    "llm": check_llm,
    "sd": check_sd,
    "audio": check_audio,
    "key": check_key,
    "models": check_models,
}


def main():
    url, scenario, *args = sys.argv[1:]
    started = time.monotonic()
    with chromium(viewport={"width": 1280, "height": 900}) as context:
        context.set_default_timeout(30000)
        page = open_page(context, url)
        SCENARIOS[scenario](page, url, *args)
        assert not page.faults, "\n".join(page.faults)
    print(f"playground {scenario}: ok in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
