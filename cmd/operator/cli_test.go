package main

import (
	"testing"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

// TestCommandLine runs the built operator: --version prints the version injected at build,
// -h/--help print the flags on stdout and exit 0, and a bad command line exits 2 with a
// message naming the problem before anything connects to a cluster.
func TestCommandLine(t *testing.T) {
	version := clitest.Version()
	bin := clitest.Build(t, "github.com/eventstream-operator/eventstream-operator/cmd/operator", version)
	usageError := func(name string, want string, args ...string) clitest.Case {
		return clitest.Case{Name: name, Args: args, Exit: 2, Stderr: []string{"operator: " + want},
			EmptyStdout: true, NotInStderr: []string{"Usage of"}}
	}
	clitest.RunCases(t, bin, []clitest.Case{
		{Name: "version", Args: []string{"--version"}, Exit: 0, Stdout: []string{version + "\n"}},
		{Name: "help", Args: []string{"-h"}, Exit: 0, Stdout: []string{"-resync-period", "-kubeconfig", "-zap-log-level", "-version"}},
		{Name: "long help", Args: []string{"--help"}, Exit: 0, Stdout: []string{"-watch-namespaces"}},
		usageError("unknown flag", "flag provided but not defined: -no-such-flag (see operator -h)", "--no-such-flag"),
		usageError("bad duration", `invalid value "soon" for flag -resync-period`, "--resync-period=soon"),
		usageError("negative duration", "--resync-period -1s must be positive", "--resync-period=-1s"),
		usageError("zero qps", "--broker-qps 0 must be a positive number", "--broker-qps=0"),
		usageError("zero reconciles", "--max-concurrent-reconciles 0 must be at least 1", "--max-concurrent-reconciles=0"),
		usageError("bad namespace", `--watch-namespaces: "Team_A" is not a namespace name`, "--watch-namespaces=default,Team_A"),
		usageError("bad pull secret", `--bridge-image-pull-secrets: "Bad_Secret" is not a Secret name`, "--bridge-image-pull-secrets=registry,Bad_Secret"),
		usageError("argument", `unexpected argument "run"`, "run"),
	})
}
