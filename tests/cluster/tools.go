//go:build tools

// Package cluster pins the real binaries the tests run: kube-apiserver, etcd, kustomize, helm.
package cluster

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/kustomize/kustomize/v5"
)
