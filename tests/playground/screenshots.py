"""Screenshots of each playground view in the light and the dark theme, for README.md.
Usage: screenshots.py URL OUTDIR KEY WAV, against a host serving every test model (echo,
smollm2, tiny-sd, whisper-tiny.en, and embeddings when present) with API key KEY."""

import base64
import os
import sys
import tempfile

from browser import chromium, open_page

VIEWPORT = {"width": 1024, "height": 700}
PHONE = {"width": 390, "height": 760}


def shoot(page, out, name):
    """`OUTDIR/NAME-light.png` and `OUTDIR/NAME-dark.png` of what the viewport shows."""
    for theme in ["light", "dark"]:
        page.emulate_media(color_scheme=theme)
        page.screenshot(path=os.path.join(out, f"{name}-{theme}.png"))
        print(f"wrote {name}-{theme}.png")
    page.emulate_media(color_scheme="light")


def pick(page, model, task=None):
    """Chooses a model (and a task) with the header's pickers."""
    page.get_by_role("combobox", name="Model").select_option(model)
    if task:
        page.get_by_role("combobox", name="Task").select_option(task)


def chat(page, out):
    pick(page, "smollm2")
    page.get_by_role("spinbutton", name="temperature").fill("0")
    page.get_by_role("spinbutton", name="max_tokens").fill("64")
    message = page.get_by_role("textbox", name="Message")
    for number, question in enumerate(["What is the capital of France? Answer in one sentence.",
                                       "Write a short poem about bees."]):
        message.fill(question)
        message.press("Enter")
        page.locator(".msg.assistant[data-stop-reason]").nth(number).wait_for(timeout=120000)
    shoot(page, out, "chat")
    page.get_by_role("tab", name="API").click()
    page.locator("#panel-api .snippet").nth(1).scroll_into_view_if_needed()
    shoot(page, out, "api")
    page.get_by_role("tab", name="Playground").click()


def image(page, out):
    pick(page, "tiny-sd", "image-generation")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a bee on a sunflower, watercolour")
    page.get_by_role("spinbutton", name="n", exact=True).fill("2")
    page.get_by_role("spinbutton", name="steps").fill("20")
    page.get_by_role("button", name="Generate").click()
    page.locator(".result img").nth(1).wait_for(timeout=120000)
    shoot(page, out, "image")
    start = base64.b64decode(page.locator(".result img").first.get_attribute("src").split(",", 1)[1])
    pick(page, "tiny-sd", "inpainting")
    with tempfile.TemporaryDirectory() as scratch:
        file = os.path.join(scratch, "start.png")
        with open(file, "wb") as out_file:
            out_file.write(start)
        page.get_by_label("Start image").set_input_files(file)
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a red flower in the middle")
    mask = page.get_by_role("img", name="Mask: paint the area to repaint")
    box = mask.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.35)
    page.mouse.down()
    for x, y in [(0.7, 0.4), (0.65, 0.6), (0.35, 0.62)]:
        page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=8)
    page.mouse.up()
    shoot(page, out, "inpainting")


def transcription(page, out, wav):
    pick(page, "whisper-tiny.en")
    page.get_by_label("Audio file").set_input_files(wav)
    page.get_by_role("button", name="Transcribe").click()
    page.locator(".audio .meta", has_text="Stop:").wait_for(timeout=120000)
    shoot(page, out, "transcription")


def embedding(page, out):
    pick(page, "embeddings")
    page.get_by_role("textbox", name="First text").fill("A bee lands on a flower.")
    page.get_by_role("textbox", name="Second text").fill("An insect visits a blossom.")
    page.get_by_role("button", name="Embed").click()
    page.locator(".figures dt").first.wait_for(timeout=120000)
    shoot(page, out, "embedding")


def events(page, out):
    pick(page, "echo")
    page.get_by_role("textbox", name="text").fill("Hello from the rbee playground")
    page.get_by_role("spinbutton", name="delay_ms").fill("40")
    page.get_by_role("button", name="Run").click()
    page.locator(".events .end").wait_for(timeout=60000)
    shoot(page, out, "events")


def main():
    url, out, key, wav = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    with chromium(viewport=VIEWPORT) as context:
        context.set_default_timeout(30000)
        page = open_page(context, url)
        page.get_by_role("region", name="API key required").wait_for()
        shoot(page, out, "key")
        page.get_by_label("API key", exact=True).fill(key)
        page.get_by_role("button", name="Use key").click()
        page.locator("#status dd").first.wait_for()
        chat(page, out)
        image(page, out)
        transcription(page, out, wav)
        if page.locator("#model option[value=embeddings]").count():
            embedding(page, out)
        events(page, out)
        page.set_viewport_size(PHONE)
        pick(page, "smollm2")
        page.get_by_role("textbox", name="Message").fill("Name three flowers bees love.")
        page.get_by_role("textbox", name="Message").press("Enter")
        page.locator(".msg.assistant[data-stop-reason]").wait_for(timeout=120000)
        shoot(page, out, "phone-chat")
        assert not page.faults, "\n".join(page.faults)


if __name__ == "__main__":
    main()
