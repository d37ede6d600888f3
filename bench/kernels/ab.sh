#!/usr/bin/env bash
# Kernel A/B across revisions: the runtime headers at git revision A (default HEAD) against the
# working tree's (or revision B's), built into one program and called in turns on the same buffers
# (ab_main.cpp).  Run from the repository root:
#   bench/kernels/ab.sh [A [B]] [-- THREADS [REPS [ROW_SUBSTRING [cold|coldw|coldx]]]]
#   bench/kernels/ab.sh HEAD~1 -- 2 40 resnet       # the last commit's kernel change, ResNet rows
#   bench/kernels/ab.sh HEAD~1 -- 2 40 resnet cold  # the same, weights and input as a model finds them
set -euo pipefail
revs=()
while [[ $# -gt 0 && "$1" != "--" ]]; do revs+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
a=${revs[0]:-HEAD}
b=${revs[1]:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
headers() {  # $1 revision ("" = working tree), $2 destination include dir
  mkdir -p "$2/dydca"
  if [[ -z "$1" ]]; then
    cp runtime_cpp/include/dydca/*.h "$2/dydca/"
  else
    for f in $(git ls-tree --name-only "$1" runtime_cpp/include/dydca/); do
      git show "$1:$f" > "$2/dydca/$(basename "$f")"
    done
  fi
}
headers "$a" "$tmp/a"
headers "$b" "$tmp/b"
flags=(-O3 -march=native -std=c++17 -fPIC)
for side in a b; do
  g++ "${flags[@]}" -I"$tmp/$side" -Ddydca=dydca_$side "-DAB(x)=${side}_##x" -c bench/kernels/ab_kernels.cpp \
    -o "$tmp/$side.o" &
done
wait
g++ "${flags[@]}" bench/kernels/ab_main.cpp "$tmp/a.o" "$tmp/b.o" -o "$tmp/ab" -lpthread
echo "a: ${a}   b: ${b:-working tree}"
"$tmp/ab" "$@"
