// Package deploy holds the files that deploy Routines — the Dockerfile,
// the compose file, the systemd units and the Kubernetes manifests — and
// the tests that keep them true: strict decoding against the Kubernetes
// API types, systemd-analyze verify, the compose file cross-checked
// against its env files, and every command line they hold parsed by the
// binary's own flags. It has no code of its own (docs/deploy.md).
package deploy
