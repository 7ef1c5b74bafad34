#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Obtains the calibration and evaluation texts for `parallama imatrix`, `perplexity` and `kld`:
# two public-domain Jane Austen novels (Project Gutenberg texts) shipped by the Debian package
# r-cran-janeaustenr (package licence MIT; the novels themselves are in the public domain).
#   models/text/calibration.txt  Pride and Prejudice (1813)  imatrix calibration only
#   models/text/eval.txt         Emma (1815)                 perplexity / KLD evaluation only
# The package is downloaded with `apt-get download` and unpacked into models/text/.deb (nothing is
# installed system-wide, R is not needed): its data/Rdata.rdb holds each novel as a zlib-compressed,
# R-serialized character vector (one element per line), which a few lines of Python decode.
# Prints the two paths (calibration first). Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/models/text"
cal="$dir/calibration.txt"
ev="$dir/eval.txt"
if [ -s "$cal" ] && [ -s "$ev" ]; then echo "$cal"; echo "$ev"; exit 0; fi
mkdir -p "$dir/.deb"
cd "$dir/.deb"
if ! ls r-cran-janeaustenr_*.deb >/dev/null 2>&1; then
  echo "fetch-text: downloading the Debian package r-cran-janeaustenr (about 1.6 MB) ..." >&2
  # apt-get download needs current package lists; refresh them once if the first try fails.
  if ! apt-get download -qq r-cran-janeaustenr >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >&2
    apt-get download -qq r-cran-janeaustenr >&2
  fi
fi
deb=$(ls r-cran-janeaustenr_*.deb | head -n1)
rm -rf x && mkdir x && dpkg-deb -x "$deb" x
rdb=$(find x -path '*janeaustenr/data/Rdata.rdb' | head -n1)
if [ -z "$rdb" ]; then echo "fetch-text: $deb has no janeaustenr/data/Rdata.rdb" >&2; exit 1; fi
python3 - "$rdb" "$cal" "$ev" <<'PY'
import os, struct, sys, zlib

def novels(path):
    """Yields each character vector of an R lazy-load database (.rdb) as a list of lines."""
    data = open(path, "rb").read()
    pos = 0
    while pos + 4 <= len(data):
        d = zlib.decompressobj()
        blob = d.decompress(data[pos + 4:])  # 4-byte big-endian uncompressed length, then zlib
        pos = len(data) - len(d.unused_data)
        yield parse_strsxp(blob)

def parse_strsxp(b):
    if b[:2] != b"X\n":
        raise SystemExit("fetch-text: not an XDR R serialization")
    i = 2
    def u32():
        nonlocal i
        v = struct.unpack(">i", b[i:i + 4])[0]
        i += 4
        return v
    version = u32(); u32(); u32()
    if version == 3:
        n = u32(); i += n  # native encoding name
    flags = u32()
    if flags & 0xFF != 16:  # STRSXP without attributes
        raise SystemExit(f"fetch-text: expected a character vector, got R type {flags & 0xFF}")
    n = u32()
    lines = []
    for _ in range(n):
        f = u32(); ln = u32()
        if ln < 0:
            lines.append("")
            continue
        s = b[i:i + ln]; i += ln
        lines.append(s.decode("latin-1") if f & (1 << 14) else s.decode("utf-8"))  # LATIN1_MASK
    return lines

books = {}
for lines in novels(sys.argv[1]):
    title = next((l for l in lines if l.strip()), "").strip().upper()
    books[title] = lines
for title, out in (("PRIDE AND PREJUDICE", sys.argv[2]), ("EMMA", sys.argv[3])):
    if title not in books:
        raise SystemExit(f"fetch-text: '{title}' not found in the package (have: {', '.join(books)})")
    text = "\n".join(books[title]).strip() + "\n"
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)
PY
echo "$cal"
echo "$ev"
