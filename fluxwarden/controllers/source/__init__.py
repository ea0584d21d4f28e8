"""The source controller: GitRepository, HelmRepository and HelmChart artifacts, served over HTTP."""
