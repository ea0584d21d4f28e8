//go:build tools

// Package helm pins the helm CLI that the helm controller runs (v4, as Flux's helm-controller v1.6
// embeds) in its own module: helm v4 needs newer Kubernetes libraries than tests/cluster's kube-apiserver.
package helm

import _ "helm.sh/helm/v4/cmd/helm"
