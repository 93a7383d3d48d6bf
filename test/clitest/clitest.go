// Package clitest builds the project's binaries the way a release does (version injected with
// -ldflags -X) and runs them as a user would, for tests of their command-line behaviour: exit
// codes, stdout and stderr.
package clitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// VersionVar is the variable the builds set.
const VersionVar = "github.com/eventstream-operator/eventstream-operator/internal/version.Version"

// runTimeout bounds one run: every command under test answers at once, so a run that takes
// longer is hanging (for example retrying a connection that can never succeed).
const runTimeout = 30 * time.Second

// Version returns a version string unique to this test process, to inject and expect back.
func Version() string {
	return fmt.Sprintf("v0.0.0-clitest.%d", time.Now().UnixNano())
}

// BridgePackage is the bridge's main package, which several suites run as a process.
const BridgePackage = "github.com/eventstream-operator/eventstream-operator/cmd/bridge"

// Build compiles the main package pkg (an import path) into a temporary directory with
// VersionVar set to version, and returns the binary's path.
func Build(t testing.TB, pkg, version string) string {
	t.Helper()
	bin, err := Compile(t.TempDir(), pkg, version)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Compile is Build for callers without a testing.TB (a TestMain, a Ginkgo suite, a build
// shared by a test process): it compiles pkg into dir, which the caller removes, with
// VersionVar set to version unless version is empty.
func Compile(dir, pkg, version string) (string, error) {
	bin := filepath.Join(dir, path.Base(pkg))
	args := []string{"build", "-o", bin}
	if version != "" {
		args = append(args, "-ldflags", "-X "+VersionVar+"="+version)
	}
	if out, err := exec.Command("go", append(args, pkg)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// Result is what a run printed and how it ended.
type Result struct {
	Stdout, Stderr string
	// ExitCode is the process's exit status; -1 when it was killed after runTimeout.
	ExitCode int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.ExitCode, r.Stdout, r.Stderr)
}

// Run runs bin with args, stdin and an environment of only PATH, HOME and env ("KEY=value"),
// so that no RABBITMQ_URL or token of the developer's shell leaks in. A run still going after
// runTimeout is killed and reported with ExitCode -1.
func Run(t testing.TB, bin string, env []string, stdin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.ExitCode = -1
	case errors.As(err, &exitErr):
		r.ExitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", bin, err)
	}
	return r
}

// Case is one command line and what it must produce.
type Case struct {
	Name  string
	Args  []string
	Env   []string
	Stdin string
	// Exit is the expected exit code.
	Exit int
	// Stdout and Stderr must each contain every string listed.
	Stdout, Stderr []string
	// EmptyStdout requires that nothing is printed on stdout (errors go to stderr only).
	EmptyStdout bool
	// NotInStderr must not appear on stderr (a password, a usage dump burying the error).
	NotInStderr []string
}

// RunCases runs each case as a subtest of t against bin.
func RunCases(t *testing.T, bin string, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			r := Run(t, bin, c.Env, c.Stdin, c.Args...)
			if r.ExitCode != c.Exit {
				t.Errorf("%v: want exit %d\n%s", c.Args, c.Exit, r)
			}
			for _, want := range c.Stdout {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("%v: stdout lacks %q\n%s", c.Args, want, r)
				}
			}
			for _, want := range c.Stderr {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("%v: stderr lacks %q\n%s", c.Args, want, r)
				}
			}
			if c.EmptyStdout && r.Stdout != "" {
				t.Errorf("%v: stdout not empty\n%s", c.Args, r)
			}
			for _, bad := range c.NotInStderr {
				if strings.Contains(r.Stderr, bad) {
					t.Errorf("%v: stderr contains %q\n%s", c.Args, bad, r)
				}
			}
		})
	}
}
