"""WebUI's paste rules as restated in /work/shared/civitai-api-notes.md, written independently of
the project's own reader so tests can check what the real WebUI would read back.

``read(text)`` mirrors A1111 1.10's ``parse_generation_parameters`` for the parts the notes give:
the last line is parameters only with at least three ``key: value`` matches of WebUI's regex,
values are JSON-unquoted, ``Size: WxH`` splits into width and height.
"""

from __future__ import annotations

import json
import re

WEBUI_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def _unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def read(text):
    """``{"Prompt", "Negative prompt", <label>: value...}`` as WebUI reads ``text`` on paste."""
    res = {}
    prompt, negative, done_prompt = "", "", False
    *lines, lastline = text.strip().split("\n")
    if len(WEBUI_PARAM_RE.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_prompt = True
            line = line[16:].strip()
        if done_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res["Prompt"] = prompt
    res["Negative prompt"] = negative
    for k, v in WEBUI_PARAM_RE.findall(lastline):
        res[k] = _unquote(v)
        m = re.match(r"^(\d+)x(\d+)$", res[k]) if k == "Size" else None
        if m:
            res["Size-1"], res["Size-2"] = m.group(1), m.group(2)
    return res
