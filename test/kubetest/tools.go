package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Missing reports that something a test needs is not on this machine: the test fails under
// EVENTSTREAM_REQUIRE_INTEGRATION=1 (make test installs everything, so it must be there) and
// is skipped otherwise, with how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("EVENTSTREAM_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// Helm is the pinned helm: $HELM, else the project's bin/helm (hack/tool.sh helm).
func Helm(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		bin = filepath.Join(ProjectRoot(), "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		Missing(t, "helm not found at %s: run `hack/tool.sh helm` or make test", bin)
	}
	return bin
}

// Kubectl is $KUBECTL, else kubectl on PATH, else the project's bin/k8s/kubectl.
func Kubectl(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("KUBECTL"); bin != "" {
		return bin
	}
	if bin, err := exec.LookPath("kubectl"); err == nil {
		return bin
	}
	bin := filepath.Join(ProjectRoot(), "bin", "k8s", "kubectl")
	if _, err := os.Stat(bin); err != nil {
		Missing(t, "kubectl not found on PATH nor in bin/k8s: run hack/build-k8s.sh kubectl or make test")
	}
	return bin
}
