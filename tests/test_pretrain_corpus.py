"""scripts/pretrain_corpus.py: the pretraining corpus's pages -> prose paragraphs (issue 32)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pretrain_corpus.py"
spec = importlib.util.spec_from_file_location("pretrain_corpus", SCRIPT)
pretrain_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pretrain_corpus)

PROSE = "The server keeps one connection per client, and closes it when the client has been idle too long."
OTHER = "A checkpoint records the settings of the model, so that a later run can load it without guessing."
PAGE = f"""<html><body class="sidebar-visible">
<nav><p>{PROSE.replace("server", "menu")}</p></nav>
<div class="sphinxsidebar"><p>{PROSE.replace("server", "sidebar")}</p></div>
<div role="main"><h1>Title</h1><p>{PROSE.replace("keeps", "<code>keeps</code>")}
<div class="para">{OTHER}</div>
<p>x = f(a_b) -> c_d = e_f() and g_h = i_j() for k_l in m_n.</p><p>Too short.</p>
<pre><p>{OTHER.replace("checkpoint", "code block")}</p></pre>
</div></body></html>"""


def test_paragraphs_are_the_pages_prose_outside_navigation_and_code(tmp_path):
    parser = pretrain_corpus.Paragraphs()
    parser.feed(PAGE)
    kept = [p for p in parser.found if pretrain_corpus.is_prose(p)]
    # the body's class does not hide the page; inline code keeps its words; nav, sidebar and <pre>
    # are left out; code-like and short paragraphs are not prose
    assert kept == [PROSE, OTHER]


def test_a_package_keeps_each_paragraph_once_and_writes_one_document_per_page(tmp_path):
    site = tmp_path / "html"
    (site / "b").mkdir(parents=True)
    (site / "a.html").write_text(PAGE)
    (site / "b" / "c.html").write_text(f"<p>{OTHER}</p><p>{OTHER.replace('model', 'search')}</p>")
    (site / "genindex.html").write_text(f"<p>{PROSE.replace('server', 'index')}</p>")
    out = tmp_path / "pages.jsonl"
    pretrain_corpus.main(str(out), [f"docs={site}"])
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["id"] for d in docs] == ["docs/a.html", "docs/b/c.html"]
    assert docs[0]["text"] == f"{PROSE}\n\n{OTHER}"
    assert docs[1]["text"] == OTHER.replace("model", "search")  # the repeated paragraph is dropped
    counts = json.loads(out.with_suffix(".counts.json").read_text())
    assert counts == {"docs": {"pages": 2, "chars": len(docs[0]["text"]) + len(docs[1]["text"])}}
