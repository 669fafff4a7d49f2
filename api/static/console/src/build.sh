#!/usr/bin/env bash
# Rebuilds the committed console bundle (../graphiql.js, ../graphiql.css, ../THIRD_PARTY_LICENSES.txt)
# from the exact versions in package-lock.json. Only needed when upgrading GraphiQL; the server never
# runs it. Needs node and npm with access to the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
cp package.json package-lock.json entry.jsx console.css licenses.mjs "$work/"
(cd "$work" && npm ci --no-audit --no-fund && node_modules/.bin/esbuild entry.jsx --bundle --minify \
  --format=iife --target=es2020 --define:process.env.NODE_ENV='"production"' --legal-comments=none \
  --loader:.woff=dataurl --loader:.woff2=dataurl --metafile=out/meta.json --outfile=out/graphiql.js \
  && node licenses.mjs > out/THIRD_PARTY_LICENSES.txt) || { rm -rf "$work"; exit 1; }
cp "$work"/out/graphiql.js "$work"/out/graphiql.css "$work"/out/THIRD_PARTY_LICENSES.txt ..
rm -rf "$work"
