"""HTML documentation pages -> one JSONL document per page, the input of ``lvm-search embed``.

Used by ``scripts/build_pretrain_corpus.sh`` (which pins the sources); standard library only.

A page's paragraphs are the text of its ``<p>`` elements (and DocBook's ``<div class="para">``,
which the Debian handbook uses instead), outside navigation, sidebars, headers, footers and code.
A paragraph is kept only if it looks like prose, by the rules the shared data sets used
(``shared/data/README.md``, "Cleaning"): at least 60 characters and 8 words, at least 72 % letters
among non-space characters, some sentence punctuation, at most 0.15 code-like tokens per word.
A paragraph already kept from an earlier page of the same package is dropped: API references
repeat inherited descriptions on every page, and copies would teach the model to predict copies.

    python scripts/pretrain_corpus.py OUT.jsonl NAME=FOLDER [NAME=FOLDER ...]

Documents are titled ``NAME/relative/path.html``, in sorted order, so reruns give the same file.
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

SKIP_TAGS = {"nav", "footer", "header", "aside", "script", "style", "pre", "table"}
SKIP_CLASSES = re.compile(r"sphinxsidebar|related|footer|navigation|toctree|headerlink|sidebar|breadcrumb")
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html", "index-all.html"}
# a start tag of these ends an open <p>: HTML lets a page leave out </p>
BLOCK_TAGS = {"p", "div", "pre", "table", "ul", "ol", "dl", "blockquote", "section", "h1", "h2", "h3", "h4"}
VOID_TAGS = {"br", "img", "hr", "meta", "link", "input", "wbr", "area", "base", "col", "source"}
CODE_TOKEN = re.compile(r"_|\(\)|->|=")


class Paragraphs(HTMLParser):
    """The text of a page's paragraph elements that sit outside skipped elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, bool]] = []  # (tag, skipped) of each open element
        self.skipped = 0  # how many open elements are skipped
        self.current: list[str] | None = None  # text of the paragraph being read
        self.current_depth = 0
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in VOID_TAGS:
            return
        if tag in BLOCK_TAGS and any(t == "p" for t, _ in self.open):
            self.handle_endtag("p")
        a = dict(attrs)
        # <html> and <body> classes describe the page's layout ("sidebar-visible"), not a part of it
        marked = tag not in ("html", "body") and bool(SKIP_CLASSES.search(a.get("class") or ""))
        skip = tag in SKIP_TAGS or marked or a.get("role") == "navigation"
        self.open.append((tag, skip))
        self.skipped += skip
        is_paragraph = tag == "p" or (tag == "div" and (a.get("class") or "") == "para")
        if is_paragraph and not self.skipped and self.current is None:
            self.current, self.current_depth = [], len(self.open)

    def handle_endtag(self, tag: str) -> None:
        # HTML leaves some end tags out: close everything up to the matching open tag
        if not any(t == tag for t, _ in self.open):
            return
        while self.open:
            t, skip = self.open.pop()
            self.skipped -= skip
            if self.current is not None and len(self.open) < self.current_depth:
                self.found.append(" ".join(" ".join(self.current).split()))
                self.current = None
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.current is not None and not self.skipped:
            self.current.append(data)


def is_prose(paragraph: str) -> bool:
    words = paragraph.split()
    letters = re.sub(r"\s", "", paragraph)
    if len(paragraph) < 60 or len(words) < 8:
        return False
    if sum(c.isalpha() for c in letters) / len(letters) < 0.72:
        return False
    if not re.search(r"[.!?]", paragraph):
        return False
    return sum(bool(CODE_TOKEN.search(w)) for w in words) / len(words) <= 0.15


def documents(name: str, folder: Path):
    """(title, text) of each page of one package with at least one prose paragraph."""
    seen: set[str] = set()
    pages = sorted(p for p in folder.rglob("*.html") if p.is_file() and p.name not in SKIP_PAGES)
    for page in pages:
        parser = Paragraphs()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        kept = [p for p in parser.found if is_prose(p) and p not in seen]
        seen.update(kept)
        if kept:
            yield f"{name}/{page.relative_to(folder).as_posix()}", "\n\n".join(kept)


def main(out: str, sources: list[str]) -> None:
    counts = {}
    with open(out, "w", encoding="utf-8") as f:
        for source in sources:
            name, _, folder = source.partition("=")
            pages = chars = 0
            for title, text in documents(name, Path(folder)):
                f.write(json.dumps({"id": title, "text": text}, ensure_ascii=False) + "\n")
                pages, chars = pages + 1, chars + len(text)
            counts[name] = {"pages": pages, "chars": chars}
            print(f"{name}: {pages} pages, {chars} characters of prose", flush=True)
    Path(out).with_suffix(".counts.json").write_text(json.dumps(counts, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
