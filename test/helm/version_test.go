package helm

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

const releaseRepository = "ghcr.io/eventstream-operator/eventstream-operator"

// TestOneVersion: the chart's appVersion is the project's version, and everything that names a
// version follows it: hack/version.sh (read by the Makefile, hack/image.sh and the Dockerfile),
// the image the chart deploys by default (operator and bridges), the image config/default and
// make dist install, and `--version` of the binaries `make build` builds.
func TestOneVersion(t *testing.T) {
	root := kubetest.ProjectRoot()
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	version := chart.AppVersion
	if version == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	releaseImage := releaseRepository + ":" + version

	out, err := exec.Command(filepath.Join(root, "hack", "version.sh")).Output()
	if err != nil {
		t.Fatalf("hack/version.sh: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != version {
		t.Errorf("hack/version.sh prints %q, Chart.yaml appVersion is %q", got, version)
	}

	objects := render(t)
	_, c := operatorPod(t, objects)
	if c["image"] != releaseImage {
		t.Errorf("the chart deploys %v by default, want %s", c["image"], releaseImage)
	}
	if args := toStrings(c["args"]); !slices.Contains(args, "--bridge-image="+releaseImage) {
		t.Errorf("the chart's bridges run another image: %v", args)
	}

	kustomized, err := exec.Command(kubetest.Kubectl(t), "kustomize", filepath.Join(root, "config", "default")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, kustomized)
	}
	if n := strings.Count(string(kustomized), releaseImage); n != 2 {
		t.Errorf("config/default names %s %d times, want 2 (operator image, BRIDGE_IMAGE): its images: entry differs from appVersion", releaseImage, n)
	}

	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// No container engine here to build it: the Dockerfile's default must be hack/version.sh.
	if !strings.Contains(string(dockerfile), "${VERSION:-$(hack/version.sh)}") {
		t.Error("the Dockerfile does not default the binaries' version to hack/version.sh")
	}

	bin := t.TempDir()
	build := exec.Command("make", "--no-print-directory", "build", "BIN="+bin)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	for _, name := range []string{"operator", "bridge", "eventctl"} {
		out, err := exec.Command(filepath.Join(bin, name), "--version").Output()
		if err != nil {
			t.Errorf("%s --version: %v", name, err)
			continue
		}
		if got := strings.TrimSpace(string(out)); got != version {
			t.Errorf("%s --version prints %q, want appVersion %q", name, got, version)
		}
	}
}
