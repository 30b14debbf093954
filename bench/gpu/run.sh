#!/bin/sh
# The WebGPU benches on a bare Linux GPU machine (an NVIDIA driver, no Node, no npm, no network).
#
#   bench/gpu/run.sh pack    here, in the project root: bundles the benches (matmul with its
#                            2048³-8192³ on-device cases and f16 8192³ on subgroup matrices
#                            where the adapter has them, reduce, mlp-train-step with the large MLPs,
#                            fused-elementwise, conv2d with its batch-32 ResNet-like layer) with
#                            esbuild, carries Node, Dawn and the Vulkan/EGL
#                            loaders, and writes .dev/gpu-bench.tar.xz
#   bench/gpu/run.sh run     on the GPU machine, in a directory holding gpu-bench.tar.xz and this
#                            script: unpacks, installs the loaders, runs every bench with --big
#                            against the WebGPU peers (then reduce, matmul and mlp-train-step again
#                            with RHEO_TUNE=1), and leaves JSON lines in results/*.jsonl
#
# Copy both files over (e.g. `scp .dev/gpu-bench.tar.xz bench/gpu/run.sh gpu:`), then on the GPU
# machine: `sh run.sh run`. The tuned runs write their table to results/webgpu-tuning.json
# (`importTuning` reads it back). Each bench run is cut off after 15 minutes.
set -eu

pack() {
  root=$(pwd)
  [ -f package.json ] && [ -d bench ] || { echo "run 'pack' in the project root" >&2; exit 1; }
  out=$root/.dev/gpu-bench
  rm -rf "$out" && mkdir -p "$out/b" "$out/gl"
  grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo /.dev/ >> .git/info/exclude
  # the Vulkan/EGL loaders: the driver ships its ICD, not the loader
  lists=$(mktemp -d); mkdir -p "$lists/partial"
  o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
  # shellcheck disable=SC2086
  apt-get $o update >/dev/null
  # shellcheck disable=SC2086
  (cd "$out/gl" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
  rm -rf "$lists"
  xz -T2 -6 -c "$(command -v node)" > "$out/node.xz"
  for f in matmul reduce mlp-train-step fused-elementwise conv2d; do
    npx esbuild "bench/$f.ts" --bundle --platform=node --format=esm --target=node20 --external:webgpu \
      --log-level=warning --outfile="$out/b/$f.mjs" \
      --banner:js="import { createRequire } from 'module'; const require = createRequire(import.meta.url);"
  done
  mkdir -p "$out/b/node_modules"
  cp -r node_modules/webgpu "$out/b/node_modules/"
  for d in "$out"/b/node_modules/webgpu/dist/*/; do
    case "$d" in */linux-x64/) ;; *) rm -rf "$d" ;; esac
  done
  cp node_modules/highs/build/highs.wasm "$out/b/"
  # the WebAssembly peers' files are not needed: only the WebGPU peers run there
  XZ_OPT=-T2 tar -C "$root/.dev" -cJf "$root/.dev/gpu-bench.tar.xz" gpu-bench
  rm -rf "$out"
  ls -l "$root/.dev/gpu-bench.tar.xz"
  echo "copy .dev/gpu-bench.tar.xz and bench/gpu/run.sh to the GPU machine, then: sh run.sh run"
}

run() {
  here=$(pwd)
  tar -xJf gpu-bench.tar.xz
  for f in gpu-bench/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig 2>/dev/null || true
  R=$here/gpu-bench
  xz -dc "$R/node.xz" > "$R/node" && chmod +x "$R/node"
  export PATH="$R:$PATH"
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
  export RHEO_TUNING_CACHE="$here/results/webgpu-tuning.json"
  mkdir -p "$here/results"
  peers=--peers=tfjs-webgpu,jax-js-webgpu
  cd "$R/b"
  for f in reduce matmul mlp-train-step fused-elementwise conv2d; do
    echo "== $f" >&2
    # matmul's f16 case on subgroup matrices needs Dawn's experimental feature, which Node's Dawn
    # lists only with its unsafe APIs allowed
    unsafe=0; [ "$f" = matmul ] && unsafe=1
    RHEO_WEBGPU_UNSAFE_APIS=$unsafe timeout 900 node "$f.mjs" --big "$peers" > "$here/results/$f.jsonl" || echo "$f exited with $?" >&2
  done
  # again with the autotuner (variants timed on the device; the table lands in results/)
  for f in reduce matmul mlp-train-step; do
    echo "== $f, tuned" >&2
    unsafe=0; [ "$f" = matmul ] && unsafe=1
    RHEO_WEBGPU_UNSAFE_APIS=$unsafe RHEO_TUNE=1 timeout 900 node "$f.mjs" --big "$peers" > "$here/results/$f.tuned.jsonl" || echo "$f (tuned) exited with $?" >&2
  done
  echo "results in $here/results" >&2
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: $0 pack|run" >&2; exit 2 ;;
esac
