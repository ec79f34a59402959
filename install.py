"""WebUI runs this file (with ``import launch`` available) before loading the extension.

It installs only the runtime packages WebUI lacks, without version pins that could upgrade or
downgrade anything WebUI already has, and never touches WebUI's own gradio, fastapi or pydantic.
"""

from __future__ import annotations

from typing import Callable, Dict, List

# import name -> pip requirement (for the standalone app, requirements.txt lists the same set)
REQUIREMENTS: Dict[str, str] = {
    "requests": "requests",
    "urllib3": "urllib3",
    "PIL": "Pillow",
    "piexif": "piexif",
    "tqdm": "tqdm",
}
# WebUI owns these; the extension adapts to whatever versions it ships.
NEVER_INSTALL = ("gradio", "fastapi", "pydantic")


def missing(is_installed: Callable[[str], bool]) -> List[str]:
    """The pip requirements whose package WebUI does not have."""
    wanted = []
    for module, requirement in REQUIREMENTS.items():
        if requirement.lower().startswith(NEVER_INSTALL):
            continue
        if not is_installed(module):
            wanted.append(requirement)
    return wanted


def install(launch_module) -> List[str]:
    """Install what is missing with WebUI's own ``launch.run_pip``; returns what was asked."""
    wanted = missing(launch_module.is_installed)
    for requirement in wanted:
        launch_module.run_pip(
            f"install {requirement}", f"Civitai Gallery requirement: {requirement}"
        )
    return wanted


if __name__ == "__main__":
    try:
        import launch
    except ImportError:  # run by hand outside WebUI: use pip -r requirements.txt instead
        launch = None
    if launch is not None:
        install(launch)
