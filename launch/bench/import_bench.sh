#!/usr/bin/env bash
# import_bench.sh: how long `regdist data images` takes, and its peak memory, on N synthetic
# HxW RGB PNGs in 2 classes (default 8,200 at 256x256, the motivating small-data case).
# A benchmark, not a test: prints seconds and peak RSS of the import.
#   bash launch/bench/import_bench.sh [--bin build/regdist] [--n 8200] [--size 256]
#                                     [--threads T] [--keep]
# The images are made once by a small C program against libvips (libvips-dev is one of
# regdist's build packages; no python, no vips command line needed) and cached under
# ${TMPDIR:-/tmp}/regdist-import-bench-N-S; --keep also keeps the imported .h5 there.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/regdist n=8200 size=256 threads="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "import_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "import_bench: no regdist binary at $bin (build first, or --bin)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

work="${TMPDIR:-/tmp}/regdist-import-bench-$n-$size"
if [ ! -f "$work/.complete" ]; then
  rm -rf "$work"
  mkdir -p "$work/src"
  cat > "$work/src/make_images.c" <<'EOF'
// make_images DIR N SIZE: N RGB PNGs of SIZExSIZE in DIR/class0 and DIR/class1: smooth
// gradients (different per class and image) plus a little noise, so PNG compresses them
// about as well as photographs, not as well as flat colour.
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <vips/vips.h>
int main(int argc, char **argv) {
    if (argc != 4 || VIPS_INIT(argv[0])) return 2;
    int n = atoi(argv[2]), s = atoi(argv[3]);
    unsigned char *px = malloc((size_t)s * s * 3);
    char path[4096];
    unsigned r = 12345;
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/class%d", argv[1], c);
        mkdir(path, 0755);
    }
    for (int i = 0; i < n; i++) {
        int c = i % 2;
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
                for (int b = 0; b < 3; b++) {
                    r = r * 1103515245u + 12345u;
                    int v = (c ? x : y) * 255 / s + (i * 37 + b * 60) % 128 + (int)(r >> 28);
                    px[((size_t)y * s + x) * 3 + b] = (unsigned char)(v & 255);
                }
        VipsImage *im = vips_image_new_from_memory(px, (size_t)s * s * 3, s, s, 3, VIPS_FORMAT_UCHAR);
        snprintf(path, sizeof path, "%s/class%d/img%06d.png", argv[1], c, i);
        if (!im || vips_pngsave(im, path, NULL)) {
            fprintf(stderr, "make_images: %s\n", vips_error_buffer());
            return 1;
        }
        g_object_unref(im);
    }
    return 0;
}
EOF
  cc -O2 -o "$work/src/make_images" "$work/src/make_images.c" $(pkg-config --cflags --libs vips)
  echo "import_bench: making $n ${size}x${size} PNGs in $work/images (once)"
  mkdir -p "$work/images"
  "$work/src/make_images" "$work/images" "$n" "$size"
  touch "$work/.complete"
fi

out="$work/bench.h5"
args=(data images "$work/images" --out "$out")
[ -n "$threads" ] && args+=(--threads "$threads")
log="$work/time.log"
if [ -x /usr/bin/time ]; then
  /usr/bin/time -v -o "$log" "$bin" "${args[@]}"
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0;
                     for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log")
  cpu=$(awk -F': ' '/Percent of CPU/ {print $2}' "$log")
  echo "import_bench: $n images ${size}x${size}: ${secs} s, peak RSS ${rss} MiB, CPU ${cpu}" \
       "($(nproc) cores), $(du -m "$out" | cut -f1) MiB written"
else
  start=$(date +%s.%N)
  "$bin" "${args[@]}"
  echo "import_bench: $n images ${size}x${size}: $(echo "$(date +%s.%N) - $start" | bc) s" \
       "(no /usr/bin/time: peak RSS not measured)"
fi
[ "$keep" = 1 ] || rm -f "$out"
