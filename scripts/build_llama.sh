#!/usr/bin/env bash
# llama.cpp for the harness, compiled once per machine from the llama_cpp_python sdist (which carries llama.cpp's
# sources): pip builds the llama-cpp-python wheel in a build folder of ours, then the same build folder, configured
# again with llama.cpp's tools on, builds the `llama-server` target only, reusing every object the wheel's build
# compiled (the server adds its own files). Both are kept in
#   ${XDG_CACHE_HOME:-~/.cache}/spark_eval/llama/<version>-<hash of version, cmake args and machine>/
# so another clone on this machine installs the wheel and links the server in seconds. Then the wheel is installed
# into <venv> and llama-server linked into <venv>/bin (where spark_eval.models.llama_server finds it).
#
# usage: scripts/build_llama.sh <venv> <llama-cpp-python version> "<cmake args>"
set -euo pipefail
venv=$1 version=$2 cmake_args=${3-}
key=$(printf '%s\n%s\n%s\n' "$version" "$cmake_args" "$(uname -m)" | sha256sum | cut -c1-12)
root=${XDG_CACHE_HOME:-$HOME/.cache}/spark_eval/llama
kept=$root/$version-$key
mkdir -p "$root"
exec 9>"$kept.lock"
flock 9  # two clones setting up at once: the second waits and reuses the first one's build

if [ ! -x "$kept/llama-server" ] || ! ls "$kept"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "compiling llama.cpp $version once for this machine (the wheel and llama-server; about 6 min on 2 cores)"
  work=$(mktemp -d "$kept.build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # the server's build runs cmake on the folder pip's build leaves: both need a cmake (3.21+) and ninja that outlive
  # pip's build environment, so without them on PATH they are taken from the registry into the work folder
  if ! command -v ninja >/dev/null || ! printf '3.21\n%s\n' "$(cmake --version 2>/dev/null | sed -n 's/^cmake version //p')" \
      | sort -V -C; then
    "$venv/bin/pip" install -q --target "$work/tools" cmake ninja
    export PATH=$work/tools/bin:$PATH PYTHONPATH=$work/tools
  fi
  "$venv/bin/pip" download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
  tar xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
  src=$work/llama_cpp_python-$version
  start=$SECONDS
  CMAKE_ARGS="$cmake_args" "$venv/bin/pip" wheel -q --no-deps -w "$work/out" -C build-dir="$work/build" "$src"
  echo "llama-cpp-python's wheel: $((SECONDS - start)) s"
  start=$SECONDS
  # the same build folder, with the server on: mtmd then comes from llama.cpp's tools (llama-cpp-python adds it
  # itself only when the tools are off), no UI is fetched, and every library finds its neighbours beside it
  cmake -S "$src" -B "$work/build" -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAVA_BUILD=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DCMAKE_BUILD_RPATH='$ORIGIN' >"$work/server.log" 2>&1 \
    && cmake --build "$work/build" --target llama-server -j "$(nproc)" >>"$work/server.log" 2>&1 \
    || { tail -n 40 "$work/server.log" >&2; exit 1; }
  echo "llama-server from the same build: $((SECONDS - start)) s"
  cp -a "$work/build/bin/llama-server" "$work/build/bin/"*.so* "$work/out/"
  "$work/out/llama-server" --version >/dev/null 2>&1 || { echo "the llama-server built in $work does not run" >&2; exit 1; }
  rm -rf "$kept"
  mv "$work/out" "$kept"
fi

wheel=$(ls "$kept"/llama_cpp_python-*.whl | head -n 1)
"$venv/bin/pip" install -q "$wheel[server]"
ln -sfn "$kept/llama-server" "$venv/bin/llama-server"
