"""Every command of ``python main.py``: its name, its one line of help and the module that runs
it. ``python main.py --help``, the dispatch in ``main.py`` and ``cli/command.py``, and the "did you
mean" for a mistyped command all read this table, so a new command cannot be left out of any of
them. Importing it costs nothing (no other module of the package)."""

from __future__ import annotations

from typing import Dict, Tuple

from ..util.suggest import did_you_mean

PROG = "python main.py"

# name -> (one line of help, ``module`` under cli/ with ``main(argv, out)``, or ``module:function``)
COMMANDS: Dict[str, Tuple[str, str]] = {
    "download": ("download the images of a model, version, user, image, url or filter", "command"),
    "tasks": ("show the task history kept in an output folder", "command"),
    "retry-failed": ("download again every image that failed in an output folder", "command"),
    "export": (
        "a training set (captions, imagefolder, jsonl) from downloaded images",
        "export_cmd",
    ),
    "list": ("list a target's images into Parquet / JSON Lines for img2dataset", "list_cmd"),
    "search": (
        "search the saved images by prompt, models, creator, tags (offline)",
        "library_cmd:search_main",
    ),
    "index": (
        "build the search index of output folders saved by older versions",
        "library_cmd:index_main",
    ),
    "doctor": ("check that Civitai's answers still match what this tool expects", "doctor_cmd"),
    "resources": (
        "the models an image was made with; --download fetches the missing",
        "resources_cmd",
    ),
}
# what follows the name in the help's list
_ARGS = {"download": "KIND VALUE", "list": "KIND VALUE", "search": "QUERY", "resources": "IMAGE"}

EXIT_CODES = (
    "exit codes of the commands: 0 all done, 1 some images failed, 2 bad usage or input,\n"
    "4 Civitai could not be reached, 130 interrupted (run the same command again to resume)"
)


def commands_help() -> str:
    """The commands section of ``python main.py --help``: one line per command."""
    heads = {name: f"{name} {_ARGS.get(name, '')}".strip() for name in COMMANDS}
    width = max(len(head) for head in heads.values()) + 2
    lines = [f"commands (each has its own --help, e.g. {PROG} download --help):"]
    lines += [f"  {heads[name]:<{width}}{text}" for name, (text, _module) in COMMANDS.items()]
    lines += ["", f"e.g. {PROG} download model 4201 --output images", "", EXIT_CODES]
    return "\n".join(lines) + "\n"


def unknown_command(word: str) -> str:
    """The error line for ``python main.py WORD`` when WORD is no command."""
    return (
        f"error: {PROG}: unknown command {word!r}{did_you_mean(word, COMMANDS)} "
        f"(see {PROG} --help)"
    )
