"""Sphinx extension: drop repeated script tags from every page.

Jupyter Book 1.0.4 with sphinx-thebe 0.3.1 adds the same inline configuration script twice (once
with filename None, once with ''), which raises "Identifier 'THEBE_JS_URL' has already been
declared" in the browser console.
"""


def _unique(app, pagename, templatename, context, doctree):
    """Keep the first of identical script entries (same file or inline body and attributes; priority ignored)."""
    seen, kept = set(), []
    for js in context.get("script_files", []):
        key = (getattr(js, "filename", None) or None, tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _unique, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
