# fluxwarden-kustomize, run by helm (plugin.yaml) with the rendered manifests on stdin and, as $1, the
# directory that fluxwarden.controllers.helm.postrender.prepare() wrote.
#
# The usual case, helm 4's combined strategy, is one kustomize build over the layers prepared in
# $1/chain: no Python starts. Other strategies, and any failure, go to the plugin's Python side (the
# controller's own interpreter), which also names the failing spec field in $1/error, since helm
# throws a plugin's stderr away.
dir=$1
python() {
    exec "${FLUXWARDEN_PLUGIN_PYTHON}" -P -m fluxwarden.controllers.helm.plugin "$dir"
}
[ -d "$dir/chain" ] || python
input=$dir/chain/input/helm-output.yaml
output=$dir/chain/output.yaml
rm -f "$dir/error" || exit 1
cat > "$input" || exit 1
read -r kustomize < "$dir/kustomize" || exit 1
if HOME=$dir "$kustomize" build "$dir/chain/top" > "$output" 2> /dev/null; then
    if [ -s "$output" ]; then cat "$output"; else echo ---; fi  # helm refuses an empty answer
    status=$?
    rm -f "$input" "$output"  # rendered Secrets do not wait on disk for the work dir's removal
    exit $status
fi
rm -f "$output"
python < "$input"  # it removes the input once read
