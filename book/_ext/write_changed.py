"""Sphinx extension: an incremental render writes only the changed pages, unless what others see of them changed.

On a kept render folder Sphinx re-reads the pages whose source changed and, left alone, writes only those:
a reference on an unchanged page to a label that a changed page no longer has would then go unchecked,
and the navigation of unchanged pages would keep an old title. So for every changed page this compares
what other pages can point at or show (its title, its section tree, its labels) before and after it is
read; when any of that differs, or pages were added or removed, every page is written and every reference
checked, as in a full build. (A full build, with no kept folder, writes every page anyway.)
"""


def _targets(env, docname: str) -> tuple:
    """What other pages can link to or display of `docname`."""
    std = env.domaindata.get("std", {})
    labels = sorted((k, tuple(v)) for k, v in std.get("labels", {}).items() if v and v[0] == docname)
    anon = sorted((k, tuple(v)) for k, v in std.get("anonlabels", {}).items() if v and v[0] == docname)
    title = env.titles[docname].astext() if docname in env.titles else None
    toc = env.tocs[docname].astext() if docname in env.tocs else None
    return title, toc, labels, anon


def _before(app, env, added, changed, removed):
    """Record the targets of the pages about to be re-read (the environment still holds their old state)."""
    app._targets_before = {d: _targets(env, d) for d in set(changed) | set(removed)}
    app._pages_added_or_removed = bool(added or removed)
    return []


def _after(app, env):
    """Every page to write when a changed page's targets differ (or pages came or went), else none extra."""
    before = getattr(app, "_targets_before", {})
    if getattr(app, "_pages_added_or_removed", False) or any(_targets(env, d) != t for d, t in before.items()):
        return sorted(env.found_docs)
    return []


def setup(app):
    app.connect("env-get-outdated", _before)
    app.connect("env-updated", _after)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
