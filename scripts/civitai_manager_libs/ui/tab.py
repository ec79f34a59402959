"""Layout of the Civitai Gallery tab and the wiring of its events (the handlers: ``ui/actions.py``
browsing, ``ui/download_job.py`` the bulk download, ``ui/save_options.py`` the save options). The
same function builds the tab inside WebUI (A1111 / Forge) and in the standalone app.

Stable element ids (tests and ``style.css`` rely on them): ``civitai_gallery_query``,
``civitai_gallery_nsfw``, ``civitai_gallery_load``, ``civitai_gallery_gallery``,
``civitai_gallery_info``, ``civitai_gallery_download_all``, ``civitai_gallery_retry_failed``,
``civitai_gallery_cancel``, ``civitai_gallery_status``, ``civitai_gallery_preview``,
``civitai_gallery_tasks``, and the save options ``civitai_gallery_formats``,
``civitai_gallery_output``, ``civitai_gallery_template``, ``civitai_gallery_thumbnails``; the tab
itself is ``civitai_gallery_tab``.
"""

from __future__ import annotations

from typing import Dict

import gradio as gr

from . import actions as action
from . import download_job
from . import filters_row
from . import follow_panel
from . import library
from . import resources_panel
from . import save_options
from . import widgets
from .. import setting
from .jobs import TASK_COLUMNS
from .gradio_compat import component, listen
from .i18n import choice_value, choices, t
from .messages import say
from ..records import NSFW_LEVELS

TAB_TITLE = "Civitai Gallery"
TAB_ID = "civitai_gallery_tab"
QUERY_HINT = "123, https://civitai.com/models/123?modelVersionId=456, /images/789, @username"
# Bulk downloads may run long; a few may run at once and clicks are not swallowed by the page
# (trigger_mode "multiple"), so a second click reaches the job lock and gets "a download is
# already running" instead of waiting in the queue to start a duplicate later.
DOWNLOAD_CONCURRENCY = 4


def build_tab_contents(webui: bool = False) -> Dict[str, gr.components.Component]:
    """Create the tab's components inside the current Blocks context and wire their events.

    With ``webui=True`` the send-to-txt2img / img2img buttons are added (WebUI's infotext
    paste machinery). Returns the components by short name (for tests and the host).
    """
    c: Dict[str, gr.components.Component] = {"mode": library.mode_radio()}  # Civitai | Library
    with component(
        gr.Column, elem_id="civitai_gallery_root", elem_classes=["civitai-gallery"]
    ) as c["root"]:
        with gr.Row():
            c["query"] = component(
                gr.Textbox,
                label=t("Model id, Civitai link or username"),
                placeholder=QUERY_HINT,
                elem_id="civitai_gallery_query",
                lines=1,
                max_lines=1,
                scale=5,
            )
            c["load"] = component(
                gr.Button, t("Load"), variant="primary", elem_id="civitai_gallery_load", scale=1
            )
        with gr.Row():
            c["version"] = component(
                gr.Dropdown,
                choices=choices(gr.Dropdown, [action.ALL_VERSIONS]),
                value=choice_value(gr.Dropdown, action.ALL_VERSIONS),
                label=t("Version"),
                visible=False,
                elem_id="civitai_gallery_version",
            )
            c["nsfw"] = component(
                gr.CheckboxGroup,
                choices=list(NSFW_LEVELS),  # Civitai's names, the same in every language
                value=list(setting.get("images.default_nsfw_filter")),
                label=t("NSFW levels"),
                elem_id="civitai_gallery_nsfw",
                scale=2,
                min_width=300,
            )
            c["sort"] = component(
                gr.Dropdown,
                choices=choices(gr.Dropdown, action.SORTS),
                value=choice_value(gr.Dropdown, action.DEFAULT_SORT),
                label=t("Sort"),
                elem_id="civitai_gallery_sort",
            )
            c["period"] = component(
                gr.Dropdown,
                choices=choices(gr.Dropdown, action.PERIODS),
                value=choice_value(gr.Dropdown, action.PERIODS[0]),
                label=t("Period"),
                elem_id="civitai_gallery_period",
            )
        c.update(filters_row.build())
        c["page"] = component(
            gr.Markdown,
            say("start_hint"),
            elem_id="civitai_gallery_page",
        )
        with gr.Row():
            with component(gr.Column, scale=3):
                c["gallery"] = widgets.thumbnail_grid("Images", "civitai_gallery_gallery")
                with gr.Row():
                    c["prev"] = component(
                        gr.Button,
                        t("< Previous"),
                        interactive=False,
                        elem_id="civitai_gallery_prev",
                    )
                    c["next"] = component(
                        gr.Button, t("Next >"), interactive=False, elem_id="civitai_gallery_next"
                    )
            with component(gr.Column, scale=2):
                c["preview"] = widgets.selected_image(
                    "civitai_gallery_preview", show_download_button=True, buttons=["download"]
                )
                c["info"] = widgets.data_box(
                    "Generation data",
                    "civitai_gallery_info",
                    placeholder=t("Select an image to see its generation data."),
                )
                if webui:
                    c.update(_webui_paste_buttons(c["info"]))
                with component(
                    gr.Accordion,
                    t("Full metadata"),
                    open=False,  # closed: the Resources panel stays in view
                    elem_id="civitai_gallery_metadata_box",
                ):
                    c["metadata"] = component(
                        gr.JSON, label=t("Full metadata"), elem_id="civitai_gallery_metadata"
                    )
                resources_panel.build(c)
        with component(
            gr.Accordion, t("What a download saves"), open=True, elem_id="civitai_gallery_save_box"
        ):
            with gr.Row():
                c["formats"] = component(
                    gr.CheckboxGroup,
                    choices=list(save_options.METADATA_CHOICES),
                    value=lambda: save_options.option_value("formats"),
                    label=t("Generation data (json / txt sidecars, exif: embedded infotext)"),
                    elem_id="civitai_gallery_formats",
                    scale=2,
                )
                c["thumbnails"] = component(
                    gr.Checkbox,
                    value=lambda: save_options.option_value("thumbnails"),
                    label=t("Also write thumbnails (.thumbnails/)"),
                    elem_id="civitai_gallery_thumbnails",
                    scale=1,
                )
            with gr.Row():
                c["output"] = component(
                    gr.Textbox,
                    value=lambda: save_options.option_value("output"),
                    label=t("Output folder"),
                    lines=1,
                    max_lines=1,
                    elem_id="civitai_gallery_output",
                    scale=3,
                )
                c["template"] = component(
                    gr.Textbox,
                    value=lambda: save_options.option_value("template"),
                    label=t(
                        "Path template (no extension): {model_id} {model_name} {version_id} "
                        "{version_name} {id} {creator} {nsfw_level} {post_id} {post_title} "
                        "{created_at} {date:%Y-%m} {base_model} {type} {width} {height} "
                        "{collection_id} {collection_name} {tag}; format specs: {id:>010}"
                    ),
                    lines=1,
                    max_lines=1,
                    elem_id="civitai_gallery_template",
                    scale=2,
                )
            c.update(follow_panel.pacing_options())
        c["template_preview"] = component(
            gr.Textbox,
            value="",
            label=t("Where the selected image goes"),
            lines=2,
            max_lines=4,
            interactive=False,
            elem_id="civitai_gallery_template_preview",
        )
        with gr.Row():
            c["download_all"] = component(
                gr.Button,
                t("Download all examples"),
                variant="primary",
                elem_id="civitai_gallery_download_all",
            )
            c["retry_failed"] = component(
                gr.Button, t("Retry failed"), elem_id="civitai_gallery_retry_failed"
            )
            c["cancel"] = component(
                gr.Button, t("Cancel"), variant="stop", elem_id="civitai_gallery_cancel"
            )
            c.update(follow_panel.follow_button())
        c["status"] = component(
            gr.Textbox,
            label=t("Status"),
            interactive=False,
            lines=2,
            elem_id="civitai_gallery_status",
        )
        with component(
            gr.Accordion, t("Recent tasks"), open=True, elem_id="civitai_gallery_tasks_box"
        ):
            c["tasks"] = component(
                gr.Dataframe,
                # a callable: the archive's history on every page load
                value=download_job.recent_tasks,
                headers=[t(name) for name in TASK_COLUMNS],
                datatype=["str"] * len(TASK_COLUMNS),
                interactive=False,
                wrap=True,
                max_height=320,
                elem_id="civitai_gallery_tasks",
            )
            c["refresh"] = component(
                gr.Button, t("Refresh"), size="sm", elem_id="civitai_gallery_refresh_tasks"
            )
        c.update(follow_panel.build())
        if not webui:  # inside WebUI these live on WebUI's Settings page
            from . import app_settings

            c.update(app_settings.build())
        c["state"] = gr.State(action.GalleryView())
    library.build(c, webui)  # the Library mode: saved images, searched offline (ui/library.py)
    _wire(c)
    library.wire(c)
    return c


def _wire(c: Dict[str, gr.components.Component]) -> None:
    page_outputs = [c[name] for name in action.PAGE_OUTPUTS]
    filters = filters_row.inputs(c)
    load_inputs = [c["query"], c["nsfw"], c["sort"], c["period"], c["state"]] + filters
    # a page change moves the selection to the new page's image (see action._page_outputs)
    paged = [
        listen(trigger, action.load_gallery, load_inputs, page_outputs + [c["version"]])
        for trigger in (c["load"].click, c["query"].submit)
    ]
    version_event = getattr(c["version"], "input", None) or c["version"].change
    paged.append(
        listen(
            version_event,
            action.select_version,
            [c["version"], c["nsfw"], c["sort"], c["period"], c["state"]] + filters,
            page_outputs,
        )
    )
    paged.append(listen(c["next"].click, action.next_page, [c["state"]], page_outputs))
    paged.append(listen(c["prev"].click, action.prev_page, [c["state"]], page_outputs))
    select_outputs = [c["state"], c["preview"], c["info"], c["metadata"]]
    if "send_picture" in c:  # inside WebUI: the send buttons need the note and the picture
        from . import send_to

        outputs = select_outputs + [c["send_note"], c["send_picture"]]
        selected = listen(c["gallery"].select, send_to.select_for_webui, [c["state"]], outputs)
        buttons = [c["send_to_txt2img"], c["send_to_img2img"]]
        listen(c["info"].change, send_to.buttons_state, [c["info"]], buttons)
        follow = [c["state"], c["info"], c["metadata"]]
        paged = [event.then(send_to.follow_page, follow, outputs[2:]) for event in paged]
    else:
        selected = listen(c["gallery"].select, action.select_image, [c["state"]], select_outputs)
    resources_panel.wire(c, selected)
    preview_inputs = [c["template"], c["state"]]
    selected.then(action.template_preview, preview_inputs, [c["template_preview"]])
    listen(c["template"].change, action.template_preview, preview_inputs, [c["template_preview"]])
    for event in paged:
        resources_panel.chain(c, event)
    # A job reports its progress on Status only; the tasks table follows when it ends.
    jobs_queue = dict(
        concurrency_limit=DOWNLOAD_CONCURRENCY,
        concurrency_id="civitai_gallery_jobs",
        trigger_mode="multiple",
    )
    for button, handler, inputs in (
        (
            c["download_all"],
            download_job.download_all,
            [c["query"], c["nsfw"], c["state"]] + filters,
        ),
        (c["retry_failed"], download_job.retry_failed, None),
    ):
        event = listen(
            button.click,
            handler,
            inputs,
            [c["status"]],
            **jobs_queue,
        )
        listen(event.then, download_job.refresh_tasks, None, [c["tasks"]])
    follow_panel.wire(c, jobs_queue)
    listen(c["cancel"].click, download_job.cancel_download, None, None, concurrency_limit=None)
    listen(c["refresh"].click, download_job.refresh_tasks, None, [c["tasks"]])
    _wire_save_options(c)


def _wire_save_options(c: Dict[str, gr.components.Component]) -> None:
    """Each save option is stored when the user changes it (a text box when it loses the focus
    or on Enter); the handler answers with the value in force (the old one after a refusal)."""
    savers = {
        "formats": save_options.save_formats,
        "thumbnails": save_options.save_thumbnails,
        "output": save_options.save_output,
        "template": save_options.save_template,
    }
    for name, saver in savers.items():
        control = c[name]
        if name in ("output", "template"):
            triggers = [control.blur, control.submit]
        else:
            triggers = [getattr(control, "input", None) or control.change]
        for trigger in triggers:
            listen(trigger, saver, [control], [control])


def _webui_paste_buttons(info: gr.Textbox) -> Dict[str, gr.components.Component]:
    """WebUI's send-to-txt2img / img2img buttons, fed with the infotext box; img2img also gets
    the picture (``send_to.send_components``, made below the buttons)."""
    from .send_to import paste_buttons, send_components

    extra: Dict[str, gr.components.Component] = {}

    def picture() -> gr.components.Component:
        extra.update(send_components())
        return extra["send_picture"]

    buttons = paste_buttons("civitai_gallery_send_row", info, picture)
    return {**extra, **{f"send_to_{name}": button for name, button in buttons.items()}}
