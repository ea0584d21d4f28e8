//go:build tools

// Package storage pins the real storage servers that issue 12's source tests run on loopback:
// versitygw (an S3 gateway over a local directory) and the CNCF distribution registry (OCI).
// They live in their own module: their dependencies would conflict with tests/cluster's kube-apiserver.
package storage

import (
	_ "github.com/distribution/distribution/v3/cmd/registry"
	_ "github.com/versity/versitygw/cmd/versitygw"
)
