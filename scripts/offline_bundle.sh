#!/usr/bin/env bash
# Build ONE file that installs lvm-search on an air-gapped machine that already has Python, torch
# and numpy: every other wheel it needs (Ray Tune, Optuna, ... and their dependencies), with Ray
# and pyarrow slimmed, in one tar.xz, plus the install.sh that installs it without a network.
#
#   scripts/offline_bundle.sh [--python 3.12] [--platform manylinux_2_28_x86_64]
#                             [--out dist/lvm-search-offline.tar.xz] [--with-report] [--with-gp]
#                             [--constraint FILE] [--no-strip] [--keep-work]
#
#   --python X.Y      target Python (default: the interpreter running this script)
#   --platform TAG    target platform tag, repeatable (default: this machine's). A manylinux
#                     tag also admits every older manylinux tag, as pip does on the target:
#                     manylinux_2_28_x86_64 (glibc >= 2.28, what torch >= 2.6 itself needs)
#                     or manylinux2014_x86_64 (= manylinux_2_17, glibc >= 2.17).
#   --out PATH        the bundle (default dist/lvm-search-offline.tar.xz; it unpacks to a folder
#                     named like the file: lvm-search-offline/)
#   --with-report     also ship matplotlib and what only it needs (Pillow, fontTools, kiwisolver,
#                     contourpy, ...) for `lvm-search report`: about 13 MB more. Left out by
#                     default; every other command works without.
#   --with-gp         also ship scipy, which Optuna's GPSampler needs (`sampler: gp`, and `auto`
#                     for an all-numeric space without early stopping): about 24 MB more. Left
#                     out by default; without it such a search stops at its start with one line.
#   --constraint FILE passed to pip download, e.g. the target's `pip freeze`, so that the chosen
#                     versions agree with the target's numpy and typing_extensions
#   --no-strip        keep the symbol tables of the compiled modules (they only name functions
#                     in native stack traces; stripping saves about 5 MB of the bundle)
#   --keep-work       keep the work folder (wheels before and after slimming) and print it
#
# Needs: bash, python3 with pip (PyPI reachable: the only network use is pip download and the
# build backend pip fetches to build lvm-search's wheel), tar, xz, and binutils' strip unless
# --no-strip. The python3 running this need not be the target's: pip download picks the
# target's wheels.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TARGET_PY=""
PLATFORMS=()
OUT="$ROOT/dist/lvm-search-offline.tar.xz"
WITH_REPORT=0
WITH_GP=0
CONSTRAINT=""
STRIP=1
KEEP_WORK=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "offline_bundle: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --python) TARGET_PY="${2:?--python needs a version, e.g. 3.12}"; shift 2 ;;
        --platform) PLATFORMS+=("${2:?--platform needs a tag}"); shift 2 ;;
        --out) OUT="${2:?--out needs a path}"; shift 2 ;;
        --with-report) WITH_REPORT=1; shift ;;
        --with-gp) WITH_GP=1; shift ;;
        --constraint) CONSTRAINT="$(cd "$(dirname "${2:?--constraint needs a file}")" && pwd)/$(basename "$2")"; shift 2 ;;
        --no-strip) STRIP=0; shift ;;
        --keep-work) KEEP_WORK=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

[[ "$OUT" == *.tar.xz ]] || die "--out must end in .tar.xz"
[[ -z "$CONSTRAINT" || -f "$CONSTRAINT" ]] || die "--constraint: no such file"
HOST_PY="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
TARGET_PY="${TARGET_PY:-$HOST_PY}"
[[ "$TARGET_PY" =~ ^3\.[0-9]+$ ]] || die "--python must look like 3.12"
if [[ "$STRIP" == 1 ]] && ! command -v strip >/dev/null; then
    die "strip not found (apt-get install binutils), or pass --no-strip"
fi
command -v xz >/dev/null || die "xz not found"

mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
NAME="$(basename "$OUT" .tar.xz)"            # the folder the bundle unpacks to
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lvm-offline.XXXXXX")"
if [[ "$KEEP_WORK" == 1 ]]; then
    trap 'echo "work folder kept: $WORK" >&2' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
BUNDLE="$WORK/$NAME"
mkdir -p "$WORK/raw" "$WORK/lvm" "$BUNDLE/wheels"

# What the target already has: torch and numpy, and what torch's own wheels bring (its CUDA
# libraries, triton, sympy/mpmath, networkx, jinja2, setuptools). These are never shipped.
# torch's small pure-Python dependencies that our packages also need (filelock, fsspec,
# typing_extensions, MarkupSafe) ARE shipped (~0.3 MB): pip installs them only where the
# target's copy is missing or too old for Ray, pydantic, SQLAlchemy or Mako.
PROVIDED="torch,numpy,triton,pytorch-triton,nvidia-*,cuda-*,sympy,mpmath,networkx,jinja2,setuptools"

# What is cut out of the big wheels (paths inside the wheel; * matches across /). Each cut was
# tested with a real `lvm-search run` (Tuner + OptunaSearch + ASHAScheduler on a fresh local
# ray.init) and `lvm-search report`; what each one is, and why it cannot be reached, is in the
# comment. Not cut, because Tune reaches them: ray/data (ray.air imports it eagerly),
# ray/dashboard's Python (the minimal dashboard and the per-node agent always start),
# ray/train (Tune's storage and checkpoints live there), ray/autoscaler (its monitor starts).
RAY_DROP=(
    "ray/jars/*"                    # 33 MB: Ray's Java workers (cross-language calls only)
    "ray/dashboard/client/build/*"  # 9 MB: the dashboard's web front end; we run no dashboard UI
    "ray/rllib/*"                   # reinforcement learning; Tune never imports it
    "ray/serve/*"                   # model serving; Tune never imports it
    "ray/llm/*"                     # LLM serving/batch; Tune never imports it
)
# pyarrow and pandas come with ray[tune] and cannot be left out: ray.tune imports both when it
# is imported (Tune's storage is pyarrow.fs; its progress reports and results are pandas). After
# slimming, pyarrow is still the largest part of the bundle after Ray (~19 MB of it).
PYARROW_DROP=(
    # Tune needs pyarrow for pyarrow.fs (local file system, copy_files), and ray.data (imported
    # by ray.air) for pyarrow.parquet: libparquet, dataset, acero and substrait stay.
    # pyarrow.fs imports the S3/GCS/Azure/HDFS modules inside try/except ImportError, and Ray's
    # storage does the same for S3FileSystem; the ELF libraries below are needed by no library
    # that stays (checked below: no kept binary names them).
    "pyarrow/libarrow_flight.so*" "pyarrow/libarrow_python_flight.so*" "pyarrow/_flight.*"
    "pyarrow/libarrow_s3.so*" "pyarrow/_s3fs.*" "pyarrow/_gcsfs.*" "pyarrow/_azurefs.*"
    "pyarrow/_hdfs.*" "pyarrow/_orc.*" "pyarrow/_dataset_orc.*" "pyarrow/_pyarrow_cpp_tests.*"
    "pyarrow/tests/*"               # pyarrow's own test suite
    "pyarrow/include/*" "pyarrow/src/*"  # C++ headers/sources for building against pyarrow
)
PANDAS_DROP=("pandas/tests/*")      # pandas' own test suite (18 MB unpacked)

# --- the helper that reads, checks and rewrites wheels (Python: zip + RECORD + markers) --------
cat > "$WORK/wheeltool.py" <<'PY'
"""Subcommands: requires, provided, slim, pin, verify. Standard library + packaging (or pip's copy)."""
import base64, csv, email.parser, fnmatch, hashlib, io, os, re, subprocess, sys, tempfile, zipfile
try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.markers import default_environment
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.markers import default_environment


def metadata(whl):
    with zipfile.ZipFile(whl) as z:
        name = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        return email.parser.Parser().parsestr(z.read(name).decode())


def matches(name, patterns):
    return any(fnmatch.fnmatchcase(canonicalize_name(name), canonicalize_name(p)) for p in patterns)


def requires(whl, skip):
    """The wheel's own (non-extra) requirements, less the packages named in `skip`."""
    for line in metadata(whl).get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker and "extra" in str(req.marker):
            continue
        if not matches(req.name, skip.split(",")):
            print(line)


def provided(wheel_file, patterns):
    """Exit 0 if the wheel is of a package that the target provides."""
    sys.exit(0 if matches(os.path.basename(wheel_file).split("-")[0], patterns.split(",")) else 1)


def pin(top_file, wheel_dir):
    """The top-level requirements, pinned to the versions in the bundle."""
    versions = {}
    for f in os.listdir(wheel_dir):
        name, version = f.split("-")[:2]
        versions[canonicalize_name(name)] = version
    for line in open(top_file):
        req = Requirement(line)
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        print(f"{req.name}{extras}=={versions[canonicalize_name(req.name)]}")


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [path, f"sha256={digest}", str(len(data))]


def slim(src, dest_dir, drops, strip):
    """Rewrite a wheel uncompressed (ZIP_STORED: xz then sees the raw bytes, which it packs far
    better than deflate's output), without the `drops` paths, optionally with stripped ELF
    binaries, and with a RECORD that lists what is left with fresh hashes and sizes."""
    dest = os.path.join(dest_dir, os.path.basename(src))
    removed, removed_bytes, stripped_bytes, kept_elf = [], 0, 0, {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        # The wheel's own .dist-info is at the top (Ray vendors others deeper down).
        dist_info = next(n.split("/")[0] for n in zin.namelist() if re.fullmatch(r"[^/]+\.dist-info/RECORD", n))
        # auditwheel rewrote the binaries of a wheel with a grafted <name>.libs/ folder using
        # patchelf, and strip can break such files: those wheels (here only Pillow) stay as built.
        strip = strip and not any(re.match(r"[^/]+\.libs/", n) for n in zin.namelist())
        dropped_pkgs = {d.split("/*")[0].replace("/", ".") for d in drops if d.endswith("/*")}
        rows = []
        for info in zin.infolist():
            path = info.filename
            if path.endswith("/") or path == f"{dist_info}/RECORD" or path.startswith(f"{dist_info}/RECORD."):
                continue  # directories, the old RECORD and its signatures
            if any(fnmatch.fnmatchcase(path, d) for d in drops):
                removed.append(path)
                removed_bytes += info.file_size
                continue
            data = zin.read(info)
            if path == f"{dist_info}/entry_points.txt" and dropped_pkgs:
                # No `serve` command that would only fail: drop scripts into removed packages.
                lines = data.decode().splitlines(keepends=True)
                data = "".join(
                    l for l in lines
                    if not any(re.search(rf"=\s*{re.escape(p)}[.:]", l) for p in dropped_pkgs)
                ).encode()
            if data[:4] == b"\x7fELF":
                if strip:
                    before = len(data)
                    data = strip_elf(data)
                    stripped_bytes += before - len(data)
                kept_elf[path] = data
            out = zipfile.ZipInfo(path, date_time=info.date_time)
            out.external_attr = info.external_attr  # keeps the executable bit of raylet etc.
            out.compress_type = zipfile.ZIP_STORED
            zout.writestr(out, data)
            rows.append(record_line(path, data))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerows(rows)
        w.writerow([f"{dist_info}/RECORD", "", ""])
        rec = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2000, 1, 1, 0, 0, 0))
        rec.external_attr = 0o644 << 16
        zout.writestr(rec, buf.getvalue().encode())
    check_record(dest)
    # A removed shared library must not be one that a kept binary loads.
    for lib in {os.path.basename(p) for p in removed if re.search(r"/lib[^/]*\.so(\.|$)", p)}:
        users = [p for p, d in kept_elf.items() if lib.encode() + b"\0" in d]
        if users:
            sys.exit(f"{os.path.basename(src)}: removed {lib} is still needed by {users[:3]}")
    what = [f"removed {len(removed)} files ({removed_bytes / 1e6:.1f} MB)"] if drops else []
    what += [f"stripped {stripped_bytes / 1e6:.1f} MB of symbols"] if stripped_bytes > 1e5 else []
    if what:
        print(f"  {os.path.basename(src)}: {', '.join(what)}")


def check_record(whl):
    """Read the written wheel back: RECORD lists every file once, with its true hash and size."""
    with zipfile.ZipFile(whl) as z:
        record = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/RECORD", n))
        rows = {r[0]: r[1:] for r in csv.reader(io.StringIO(z.read(record).decode())) if r}
        files = [n for n in z.namelist() if not n.endswith("/")]
        assert len(files) == len(set(files)) == len(rows), f"{whl}: RECORD does not list each file once"
        for n in files:
            if n != record:
                assert rows[n] == record_line(n, z.read(n))[1:], f"{whl}: RECORD is wrong for {n}"


def strip_elf(data):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    try:
        # --strip-unneeded keeps the dynamic symbol table that loading and linking need.
        r = subprocess.run(["strip", "--strip-unneeded", f.name], capture_output=True)
        if r.returncode != 0:  # e.g. another architecture: keep it as it is
            return data
        with open(f.name, "rb") as g:
            return g.read()
    finally:
        os.unlink(f.name)


def target_env(py, platforms):
    """Environment markers of the target (PEP 508), from --python and --platform."""
    env = default_environment()
    env["python_version"] = py
    env["python_full_version"] = py + ".0"
    if platforms:
        tag = platforms[0]
        if "linux" in tag:
            env.update(sys_platform="linux", platform_system="Linux", os_name="posix")
        elif tag.startswith("macosx"):
            env.update(sys_platform="darwin", platform_system="Darwin", os_name="posix")
        elif tag.startswith("win"):
            env.update(sys_platform="win32", platform_system="Windows", os_name="nt")
        m = re.search(r"(x86_64|aarch64|arm64|ppc64le|s390x|i686|armv7l|amd64)$", tag)
        if m:
            env["platform_machine"] = {"amd64": "AMD64"}.get(m.group(1), m.group(1))
    return env


def verify(wheel_dir, reqs_file, provided, py, platforms):
    """Every requirement reachable from the top-level ones, with the target's markers and the
    extras asked for, is met by a bundled wheel's version or is one the target provides.
    Prints what is assumed of the target; fails on anything missing or in conflict."""
    env = target_env(py, platforms)
    wheels = {}
    for f in os.listdir(wheel_dir):
        if f.endswith(".whl"):
            md = metadata(os.path.join(wheel_dir, f))
            wheels[canonicalize_name(md["Name"])] = (md["Version"], md.get_all("Requires-Dist") or [])
    todo = [(Requirement(l), "lvm-search") for l in open(reqs_file).read().split("\n") if l.strip()]
    seen, assumed, problems, used = set(), {}, [], set()
    while todo:
        req, who = todo.pop()
        name = canonicalize_name(req.name)
        if matches(name, provided.split(",")):
            assumed.setdefault(name, set()).add(f"{req.specifier or 'any'} (for {who})")
            continue
        if name not in wheels:
            problems.append(f"{req} (needed by {who}) has no wheel in the bundle")
            continue
        version, deps = wheels[name]
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req} (needed by {who}) but the bundle has {name} {version}")
        used.add(name)
        for extra in sorted(req.extras) + [""]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for line in deps:
                dep = Requirement(line)
                if dep.marker is None or dep.marker.evaluate({**env, "extra": extra}):
                    todo.append((dep, f"{name}{'[' + extra + ']' if extra else ''}"))
    for name in sorted(set(wheels) - used - {"lvm-search"}):
        problems.append(f"{name}: a wheel that nothing in the bundle needs")
    for name, why in sorted(assumed.items()):
        print(f"  assumed on the target: {name} {'; '.join(sorted(why))}")
    if problems:
        sys.exit("missing or in conflict:\n  " + "\n  ".join(problems))
    print(f"  all requirements of {len(used)} bundled packages are met")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "requires":
        requires(args[0], args[1])
    elif cmd == "provided":
        provided(args[0], args[1])
    elif cmd == "pin":
        pin(args[0], args[1])
    elif cmd == "slim":
        src, dest, strip, drops = args[0], args[1], args[2] == "1", args[3:]
        slim(src, dest, drops, strip)
    elif cmd == "verify":
        verify(args[0], args[1], args[2], args[3], args[4:])
PY
tool() { "$PYTHON" "$WORK/wheeltool.py" "$@"; }

# --- 1. lvm-search's own wheel, built from a copy of the checkout ------------------------------
# A copy of what git tracks or would track (so no build/ or egg-info lands in the checkout, and
# untracked new modules are included); outside git, the folder as it is.
echo "== building lvm-search's wheel from $ROOT"
if git -C "$ROOT" rev-parse --show-toplevel >/dev/null 2>&1; then
    mkdir -p "$WORK/src"
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -f "$f" ]] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -C "$WORK/src" -xf -
    SRC="$WORK/src"
else
    SRC="$ROOT"
fi
"$PYTHON" -m pip wheel -q --no-deps -w "$WORK/lvm" "$SRC"
LVM_WHEEL="$(ls "$WORK"/lvm/lvm_search-*.whl)"

# --- 2. download every wheel the target lacks, for the target -----------------------------------
# The top-level list is lvm-search's own requirements, less what the target provides (so pip
# never even looks at torch: its CUDA wheels are GBs). numpy still comes along as a dependency
# of pandas and matplotlib; it is deleted below.
LEFT_OUT=""                                  # requirements left out on purpose (see --help)
WITHOUT=""                                   # and what each costs, for install.sh's header
if [[ "$WITH_REPORT" != 1 ]]; then
    LEFT_OUT="$LEFT_OUT,matplotlib"
    WITHOUT="$WITHOUT, without matplotlib: \`lvm-search report\` is not available"
fi
if [[ "$WITH_GP" != 1 ]]; then
    LEFT_OUT="$LEFT_OUT,scipy"
    WITHOUT="$WITHOUT, without scipy: \`sampler: gp\` is not available"
fi
tool requires "$LVM_WHEEL" "$PROVIDED$LEFT_OUT" > "$WORK/top.txt"
# All that lvm-search needs on the target (what the check in step 3 starts from).
tool requires "$LVM_WHEEL" "${LEFT_OUT#,}" > "$WORK/needs.txt"

PIP_TARGET=(--only-binary=:all:)
if [[ "$TARGET_PY" != "$HOST_PY" || "${#PLATFORMS[@]}" -gt 0 ]]; then
    PIP_TARGET+=(--python-version "$TARGET_PY" --implementation cp)
    # pip expands manylinux2014 to older tags but not manylinux_2_N: list them all ourselves.
    for p in "${PLATFORMS[@]:-}"; do
        [[ -n "$p" ]] || continue
        if [[ "$p" =~ ^manylinux(_2_([0-9]+)|2014|2010|1)_(.+)$ ]]; then
            arch="${BASH_REMATCH[3]}"
            case "${BASH_REMATCH[1]}" in 2014) glibc=17 ;; 2010) glibc=12 ;; 1) glibc=5 ;; *) glibc="${BASH_REMATCH[2]}" ;; esac
            for ((g = glibc; g >= 5; g--)); do PIP_TARGET+=(--platform "manylinux_2_${g}_${arch}"); done
            if ((glibc >= 17)); then PIP_TARGET+=(--platform "manylinux2014_${arch}"); fi
            if ((glibc >= 12)); then PIP_TARGET+=(--platform "manylinux2010_${arch}"); fi
            PIP_TARGET+=(--platform "manylinux1_${arch}")
        else
            PIP_TARGET+=(--platform "$p")
        fi
    done
fi
if [[ -n "$CONSTRAINT" ]]; then PIP_TARGET+=(--constraint "$CONSTRAINT"); fi
PLATFORM_TEXT="${PLATFORMS[*]:-}"
PLATFORM_TEXT="${PLATFORM_TEXT:-the platform of the build machine}"
echo "== downloading the dependencies for Python $TARGET_PY, $PLATFORM_TEXT"
sed 's/^/  /' "$WORK/top.txt"
"$PYTHON" -m pip download -q --dest "$WORK/raw" "${PIP_TARGET[@]}" -r "$WORK/top.txt"

# --- 3. keep what the target lacks; slim the big ones; store all uncompressed -------------------
echo "== slimming (strip symbols: $([[ $STRIP == 1 ]] && echo yes || echo no))"
for whl in "$WORK"/raw/*.whl "$LVM_WHEEL"; do
    if tool provided "$whl" "$PROVIDED"; then
        echo "  $(basename "$whl"): the target has it, not shipped"
        continue
    fi
    case "$(basename "$whl" | cut -d- -f1 | tr '[:upper:]' '[:lower:]')" in
        ray) tool slim "$whl" "$BUNDLE/wheels" "$STRIP" "${RAY_DROP[@]}" ;;
        pyarrow) tool slim "$whl" "$BUNDLE/wheels" "$STRIP" "${PYARROW_DROP[@]}" ;;
        pandas) tool slim "$whl" "$BUNDLE/wheels" "$STRIP" "${PANDAS_DROP[@]}" ;;
        *) tool slim "$whl" "$BUNDLE/wheels" "$STRIP" ;;
    esac
done

echo "== checking that every requirement is met"
tool pin "$WORK/top.txt" "$BUNDLE/wheels" > "$BUNDLE/requirements.txt"  # what install.sh installs
tool verify "$BUNDLE/wheels" "$WORK/needs.txt" "$PROVIDED" "$TARGET_PY" "${PLATFORMS[@]:-}"
LVM_FILE="$(basename "$LVM_WHEEL")"

# --- 4. install.sh and the archive --------------------------------------------------------------
# install.sh installs the pinned requirements from the bundle alone (--no-index), then
# lvm-search with --no-deps: its own requirement on torch/numpy is the target's business (checked
# by `pip check` at the end), and without matplotlib or scipy (left out) pip would refuse it.
UNMET_OK=""                                  # pip check's complaints about them
for pkg in ${LEFT_OUT//,/ }; do UNMET_OK="$UNMET_OK -e 'requires $pkg'"; done
cat > "$BUNDLE/install.sh" <<EOF
#!/usr/bin/env bash
# Installs lvm-search and its dependencies from this folder alone, into the Python that runs
# \`\${PYTHON:-python3} -m pip\` (activate your venv or conda env first). Needs torch and numpy there.
# Built for Python $TARGET_PY, $PLATFORM_TEXT$WITHOUT.
set -euo pipefail
here="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
py="\${PYTHON:-python3}"
"\$py" -c 'import torch, numpy' || { echo "install torch and numpy first" >&2; exit 1; }
"\$py" -m pip install --no-index --find-links "\$here/wheels" -r "\$here/requirements.txt" "\$@"
"\$py" -m pip install --no-index --no-deps "\$here/wheels/$LVM_FILE" "\$@"
# Any requirement that the target's own packages (torch, numpy, ...) leave unmet.
problems="\$("\$py" -m pip check 2>&1 | grep -v -e '^No broken requirements'$UNMET_OK || true)"
if [[ -n "\$problems" ]]; then echo "installed, but pip check reports:" >&2; echo "\$problems" >&2; exit 1; fi
"\$py" -c 'import lvm_search.search.tuner; print("lvm-search", __import__("lvm_search").__version__, "ready")'
EOF
chmod +x "$BUNDLE/install.sh"

echo "== packing"
# One xz block with a dictionary as large as the input: the wheels are stored uncompressed, so
# xz sees everything that repeats across files (Ray's gcs_server, raylet and _raylet.so share
# most of their code: 16 MB packed together, 23 MB apart). -T0 would cut the input into blocks
# of 192 MiB and pack ~7% worse. Unpacking needs 256 MiB of memory; packing ~3 GB, ~5 minutes.
tar -C "$WORK" --owner=0 --group=0 --sort=name -cf - "$NAME" \
    | xz -T1 --lzma2=preset=9e,dict=256MiB > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
unpacked="$(du -sm "$BUNDLE" | cut -f1)"
echo "$OUT: $(awk -v b="$(stat -c %s "$OUT")" 'BEGIN { printf "%.1f", b / 1e6 }') MB" \
    "($(ls "$BUNDLE/wheels" | wc -l) wheels, $unpacked MB unpacked)"
echo "largest wheels (unpacked MB):"
ls -S "$BUNDLE/wheels" | head -6 | while read -r w; do
    echo "  $(du -m "$BUNDLE/wheels/$w" | cut -f1) $w"
done
echo
echo "On the air-gapped machine (Python $TARGET_PY with torch and numpy; activate its venv first):"
echo
echo "  tar xJf $(basename "$OUT") && $NAME/install.sh"
echo
echo "which runs: pip install --no-index --find-links $NAME/wheels -r $NAME/requirements.txt"
echo "            pip install --no-index --no-deps $NAME/wheels/$LVM_FILE"
