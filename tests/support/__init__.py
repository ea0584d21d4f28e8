"""Test-only helpers: real components (kube-apiserver, etcd, CLIs) started for the suite."""
