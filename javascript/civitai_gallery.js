// Civitai Gallery tab: small conveniences on top of the Gradio components.
// WebUI injects this file and provides gradioApp()/onUiLoaded(); the standalone app provides the
// same two helpers before running it. Everything is attached to `window` on purpose: the
// standalone app runs this file inside a function.
(function () {
    'use strict';

    function root() {
        return gradioApp().querySelector('#civitai_gallery_root');
    }

    function isTyping(target) {
        if (!target) return false;
        const tag = (target.tagName || '').toLowerCase();
        return tag === 'input' || tag === 'textarea' || tag === 'select' || target.isContentEditable;
    }

    function isVisible(element) {
        return !!element && element.offsetParent !== null;
    }

    // Left/right arrow keys page through the gallery when nothing editable has the focus.
    function onKey(event) {
        if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
        if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
        const tab = root();
        if (!isVisible(tab) || isTyping(event.target)) return;
        const id = event.key === 'ArrowLeft' ? '#civitai_gallery_prev' : '#civitai_gallery_next';
        const button = tab.querySelector(id + ' button, button' + id);
        if (button && !button.disabled) {
            event.preventDefault();
            button.click();
        }
    }

    window.civitaiGallery = {
        version: 1,
        root: root,
        ready: false,
    };

    onUiLoaded(function () {
        if (window.civitaiGallery.ready) return;
        window.civitaiGallery.ready = true;
        document.addEventListener('keydown', onKey);
    });
})();
