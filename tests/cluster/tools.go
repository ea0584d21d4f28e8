//go:build tools

// Package cluster pins the real binaries the tests run: kube-apiserver, etcd, kustomize (helm: ../helm).
package cluster

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/kustomize/kustomize/v5"
)
