// Package kubetest locates the Kubernetes binaries that envtest runs (kube-apiserver, etcd,
// kubectl), built from Go modules by hack/build-k8s.sh.
package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// AssetsDir returns KUBEBUILDER_ASSETS, or the project's bin/k8s when that holds the
// binaries; otherwise an error saying how to get them.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	dir := filepath.Join(ProjectRoot(), "bin", "k8s")
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("kube-apiserver not found in %s: run `make test` (or hack/build-k8s.sh) to build it", dir)
	}
	return dir, nil
}

// CRDDir is the directory of the generated CRDs.
func CRDDir() string {
	return filepath.Join(ProjectRoot(), "config", "crd", "bases")
}

// ProjectRoot is the repository root, found from this file's location.
func ProjectRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
