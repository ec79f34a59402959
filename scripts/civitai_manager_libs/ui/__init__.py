"""UI shell: the Gradio tab (inside WebUI and standalone).

`actions` (the handlers, re-exported by the root `civitai_gallery_action` facade), `tab`
(layout and wiring), `jobs` (background downloads), `downloads` (thumbnails for the gallery),
`gradio_compat` (one code path for Gradio 3, 4 and 6), `standalone` (`python main.py`),
`filters_row`, `library` (the Library mode), `resources_panel`, `send_to` (Send to txt2img).
"""
