"""Every sentence the tab writes at run time (toasts, status lines, page header, progress, the
Resources panel, the tasks table), by name, as English templates: :func:`say` gives one in the
user's language (through :func:`.i18n.t`, whose files key on these English templates).

Labels, choices, info lines and placeholders are given to the components where they are built
(also through ``t``); the test of the localization files walks both: the built components and
this table.
"""

from __future__ import annotations

from typing import Any, Dict

from .i18n import t

MESSAGES: Dict[str, str] = {
    # -- errors and their advice -----------------------------------------------------------------
    "network": "Civitai could not be reached ({error}). Check your network connection, or the "
    "Civitai address in {where}, then try again.",
    "busy": "{error} Civitai is busy; wait a minute and try again.",
    "api": "{error} Try again later.",
    "bug": "Something went wrong ({error}); the details are in the console log.",
    "nothing_downloaded": "Nothing downloaded: {reason}",
    "tick_level": "Tick at least one NSFW level (None, Soft, Mature or X).",
    "load_first_version": "Load a model first, then pick one of its versions.",
    "load_first": "Load a model, creator or link first.",
    "last_page": "This is the last page.",
    "first_page": "This is the first page.",
    "enter_output": "Enter the folder the downloads are saved in.",
    "tick_format": "Tick at least one metadata format (json, txt or exif); the choice was kept.",
    "enter_number": "Enter a whole number of 0 or more for {name}.",
    # -- where a setting is changed --------------------------------------------------------------
    "where_app": "Settings below (saved in {path})",
    "where_webui": "WebUI's Settings, section Civitai Gallery",
    # -- browsing --------------------------------------------------------------------------------
    "start_hint": "Enter a model, link or username and press Load.",
    "title_model": "{name} (model {id})",
    "title_model_version": "model {id} (version {version})",
    "title_version": "model version {id}",
    "title_user": "creator '{name}'",
    "title_filter": "images matching a filter link",
    "title_image": "image {id}",
    "title_other": "{kind} {id}",
    "page_one_image": "**{title}**: page {page}, 1 image",
    "page_images": "**{title}**: page {page}, {count} images",
    "page_empty": "**{title}**: page {page}, no images for the chosen NSFW levels",
    "page_empty_filters": "**{title}**: page {page}, no images for the chosen NSFW levels and "
    "filters",
    "hidden": "{total} hidden by filters ({details})",
    "sort_ignored": "Civitai ignores the sort '{sort}' when listing all versions of a model: the "
    "images come newest first. Pick one version to get them sorted that way.",
    "thumbs_failed": "{count} images of this page could not be downloaded; check your network "
    "connection.",
    "preview_failed": "The full-size picture of image #{id} could not be downloaded; the "
    "thumbnail is shown.",
    "no_generation_data": "This image carries no generation data: its author hid it, or it was "
    "not made with Stable Diffusion.",
    # -- follow and sync (ui/follow_panel.py) ----------------------------------------------------
    "follow_none": "This output folder follows nothing yet: load a target and press Follow.",
    "never": "never",
    "follow_image": "A single image has nothing new to sync; follow a model, creator, "
    "collection, post, tag or link.",
    "followed": "Following {key}: Sync now downloads what is new in it.",
    "follow_updated": "{key} was followed already; its options are updated.",
    "pick_followed": "Pick a followed target first.",
    "unfollowed": "Unfollowed {key}; its files stay.",
    "syncing": "Syncing {key}",
    "sync_line": "{target}: {new} new",
    "sync_line_gone": "{target}: gone: {error}",
    "sync_line_error": "{target}: error: {error}",
    "sync_nothing_new": "Sync finished: nothing new in {count} followed targets.",
    # -- downloads -------------------------------------------------------------------------------
    "template_fields": "Fields: {fields}. Any field takes a format spec: {examples}.",
    "template_select": "Select an image to see where it would be saved.",
    "template_image_error": "Image {id}: {error}",
    "template_would_save": "Image {id} would be saved as {path}.<its real extension>",
    "listing": "Listing images...",
    "retrying": "Retrying failed images...",
    "progress": "Downloading {done}/{total} images",
    "seconds_left": "{n} s left",
    "minutes_left": "{n} min left",
    "cancelled_listing": "Cancelled while listing the images: nothing was downloaded.",
    "nothing_to_download": "Nothing to download: no image matches this selection and NSFW levels.",
    "nothing_to_download_hidden": "Nothing to download: {hidden}.",
    "nothing_to_retry": "Nothing to retry: no download has failed.",
    "nothing_to_retry_hidden": "Nothing to retry: {hidden}.",
    "nothing_to_retry_cancelled": "Nothing to retry: no download has failed. The cancelled "
    "download was not finished: press Download all examples again to resume it (what was saved "
    "is skipped).",
    "counts": "downloaded {completed}, skipped {skipped}, failed {failed} of {total} images",
    "counts_cancelled": "cancelled {cancelled}",
    "saved_in": "Saved in {path}.",
    "sentence": "{text}.",
    "list_sep": "; ",
    "failures": "Failed:",
    "failure_group": "{count} × {reason} ({ids})",
    "failure_more_ids": "{ids} and {more} more",
    "resume_hint": "Press Download all examples again to resume the rest.",
    "finished": "Download finished: {completed} downloaded, {skipped} already there, "
    "{failed} failed.",
    "retry_finished": "Retry finished: {completed} downloaded, {skipped} already there, "
    "{failed} failed.",
    "none_saved_network": "None of the {total} images could be downloaded: Civitai or its image "
    "host could not be reached. Check your network connection, then press Retry failed.",
    "none_saved_disk": "None of the {total} images could be saved: the output folder could not "
    "be written ({reason}). Check the output folder, then press Retry failed.",
    "none_saved": "None of the {total} images could be downloaded ({reason}). Press Retry failed "
    "to try again.",
    "some_failed_network": "{failed} of {total} images failed to download: the host could not "
    "be reached. Check your network connection, then press Retry failed.",
    "some_failed_disk": "{failed} of {total} images could not be saved in the output folder "
    "({reason}). Check the folder, then press Retry failed.",
    "some_failed": "{failed} of {total} images failed to download ({reason}); press Retry failed "
    "to try them again.",
    "already_running": "A download is already running: wait for it to finish or press Cancel.",
    "no_download_running": "No download is running.",
    "cancelling": "Cancelling the running download ({count} images)...",
    "cancelling_listing": "Cancelling the running download while it is still listing images...",
    # -- drift: Civitai's answers changed (civitai/drift.py; one line per kind after a download) ---
    "drift_line": "Civitai's answers changed: {message}; please report it at the project's issue "
    "tracker (README: When Civitai changes)",
    "drift_meta": "{count} of {of} images came without their generation data although it was "
    "asked for (withMeta=true); prompts and settings are missing from their records",
    "drift_levels": "none of {of} images served was Mature or X although those levels were asked "
    "(the front that serves every level, civitai.red, filtered them out)",
    "drift_hosts": "{count} of {of} images are on a host this tool does not know ({example}); "
    "their downloads may fail or come from elsewhere",
    "drift_shape": "{count} of {of} answers of the image listing came in an unknown shape "
    "({example})",
    "drift_malformed": "{count} of {of} listed items were dropped as unusable (see the skipped "
    "images)",
    # -- recent tasks ----------------------------------------------------------------------------
    "no_tasks": "No downloads yet: the downloads you start appear here.",
    "task_model": "model {id}",
    "task_version": "version {id}",
    "task_user": "user {name}",
    "task_image": "image {id}",
    "task_filter": "filter link",
    "task_running": "running: {done} of {total}",
    "task_done": "done",
    "task_cancelled": "cancelled",
    "task_failed": "failed",
    # -- resources -------------------------------------------------------------------------------
    "resources_none": "This image names no resources.",
    "resources_yours": "yours:",
    "resources_page": "Civitai page",
    "resources_all_present": "All {count} resources are in your models.",
    "resources_missing": "{missing} of {total} missing ({size}).",
    "resources_set_folder": "Set the models folder (models_path) in {where} to download them.",
    "resources_no_folder": "No models folder: set the models folder (models_path) to your WebUI "
    "models folder (Stable-diffusion/, Lora/, embeddings/, VAE/) in {where}.",
    "resources_check_failed": "Could not check the resources: {error}",
    "resources_select_first": "Select an image first.",
    "resources_nothing": "Nothing to download.",
    "resources_large": "The missing files total {size}, over {limit} MB (resources.confirm_over_mb "
    "in {where}): tick 'Allow large downloads' and press again.",
    "resources_downloaded": "Downloaded {count} file(s) ({size}), verified.",
    "resources_present": "{count} already on disk (same SHA-256).",
    "resources_not_downloaded": "Not downloaded: {reasons}",
    "resources_all_failed": "None of the {count} missing files could be downloaded: {reasons}",
    "hashing": "hashing {name}",
    "fetching": "{name}: {done} of {total} bytes",
    # -- library (ui/library.py: the saved images, searched offline) ------------------------------
    "library_found": "{count} image(s)",
    "library_found_best": "{count} image(s) (the best {count})",
    "library_no_results": "No saved image matches.",
    "library_no_archive": "There is no download archive in {path}: choose a folder images were "
    "downloaded into.",
    "library_gone": "Image {id} is no longer in {folder}.",
    # -- settings (standalone) -------------------------------------------------------------------
    "setting_reload": "The language changes when the page is reloaded.",
}

#: The filter reasons of "8 hidden by filters (5 no generation data, 3 reactions)" (the words
#: the CLI prints too), translated as words.
FILTER_REASONS: Dict[str, str] = {
    "nsfw": "nsfw",
    "type": "type",
    "base model": "base model",
    "date": "date",
    "no generation data": "no generation data",
    "reactions": "reactions",
    "used-with": "used-with",
}


#: The reasons ``engine/failures.failure_kind`` groups failures by (the CLI's report shows the
#: same groups), as templates: ``jobs.failure_reason`` fills the fields from the reason's text.
#: Any other reason is the error's own sentence, shown as it is.
FAILURE_REASONS = (
    "host unreachable ({host})",
    "network error",
    "no longer on Civitai (HTTP 404)",
    "needs a Civitai API key (HTTP {status})",
    "Civitai asked to slow down (HTTP 429)",
    "Civitai's server failed (HTTP {status})",
    "disk full",
    "the server sent a web page instead of an image",
    "the download was cut off",
    "could not write the file ({error})",
    "unexpected error: {error}",
    "failed",
)


def say(name: str, /, **fields: Any) -> str:
    """The message ``name`` in the current language with its ``fields`` filled."""
    return t(MESSAGES[name], **fields)
