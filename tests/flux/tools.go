//go:build tools

// Package flux pins the upstream Flux release whose CRDs the e2e tests install: Flux 2.9.5
// (github.com/fluxcd/flux2/v2, whose manifests/crds names the controller versions below).
// source-, kustomize- and helm-controller ship config/crd/bases in their module zips; go.mod requires
// them (and flux2) without importing a package, so `go mod tidy` would drop them: crds.sh checks.
// The other controllers' main modules are not served: their CRDs are generated from their api
// modules with controller-gen, as Flux's Makefiles do.
package flux

import (
	_ "github.com/fluxcd/image-automation-controller/api/v1"
	_ "github.com/fluxcd/image-reflector-controller/api/v1"
	_ "github.com/fluxcd/notification-controller/api/v1"
	_ "github.com/fluxcd/notification-controller/api/v1beta3"
	_ "github.com/fluxcd/source-watcher/api/v2/v1beta1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
