#!/usr/bin/env bash
# Build .dvc/plots/offline.html: DVC's plots page with Vega, Vega-Lite and Vega-Embed inline, so
# `dvc plots show` (and `dvc exp show --html`-style renders) load nothing from the network.
# .dvc/config points plots.html_template at it. The versions are the ones dvc-render's own page
# loads from a CDN (dvc_render/vega.py), so the specs DVC writes render the same.
# Needs npm (the registry) once; the result is committed. Licenses: .dvc/plots/LICENSES.md.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
VERSIONS=(vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "${VERSIONS[@]}" >/dev/null && for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done)
out=.dvc/plots/offline.html
{
  printf '%s\n' '<!DOCTYPE html>' '<html>' '<head>' '    {refresh_tag}' '    <meta charset="utf-8">' \
    '    <title>DVC Plot (offline: Vega, Vega-Lite and Vega-Embed are inline)</title>'
  for pkg in "${VERSIONS[@]}"; do
    name=${pkg%@*}; version=${pkg#*@}
    js="$work/$name-$version/package/build/$name.min.js"
    if grep -q '</script' "$js"; then echo "$js contains </script>" >&2; exit 1; fi
    printf '    <script>/* %s %s, BSD-3-Clause (.dvc/plots/LICENSES.md) */\n' "$name" "$version"
    cat "$js"
    printf '\n    </script>\n'
  done
  printf '%s\n' '    <style>' '        table {' '            border-spacing: 15px;' '        }' '    </style>' '</head>' '<body>' \
    '    {plot_divs}' '</body>' '</html>'
} > "$out"
{
  echo "# Licenses of the scripts inlined in offline.html (built by scripts/vendor_vega.sh)"
  for pkg in "${VERSIONS[@]}"; do
    name=${pkg%@*}; version=${pkg#*@}
    printf '\n## %s %s (npm)\n\n```\n' "$name" "$version"
    cat "$work/$name-$version/package/LICENSE"
    printf '```\n'
  done
} > .dvc/plots/LICENSES.md
echo "wrote $out ($(wc -c < "$out") bytes)"
