package main

import (
	"testing"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

// TestCommandLine runs the built bridge: --version prints the version injected at build,
// -h/--help print the flags on stdout and exit 0, and a command line or RABBITMQ_URL the
// bridge can never run with exits 2 at start with a message (never the password) instead of
// retrying a connection forever.
func TestCommandLine(t *testing.T) {
	version := clitest.Version()
	bin := clitest.Build(t, "github.com/eventstream-operator/eventstream-operator/cmd/bridge", version)
	const goodURL = "RABBITMQ_URL=amqp://user:s3cret@127.0.0.1:1/"
	// Loopback ports chosen by the kernel, and no auth keys needed: if a check is missing, the
	// bridge starts and retries the broker, and the run times out instead of clashing.
	startable := []string{"--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", "--auth-mode=none"}
	usageError := func(name, env, want string, args ...string) clitest.Case {
		return clitest.Case{Name: name, Args: append(append([]string{}, startable...), args...), Env: []string{env},
			Exit: 2, Stderr: []string{"bridge: ", want}, EmptyStdout: true, NotInStderr: []string{"s3cret", "Usage of"}}
	}
	clitest.RunCases(t, bin, []clitest.Case{
		{Name: "version", Args: []string{"--version"}, Exit: 0, Stdout: []string{version + "\n"}},
		{Name: "help", Args: []string{"-h"}, Exit: 0, Stdout: []string{"-prefetch", "-auth-mode", "-version"}},
		{Name: "long help", Args: []string{"--help"}, Exit: 0, Stdout: []string{"-listen"}},
		usageError("unknown flag", goodURL, "flag provided but not defined: -no-such-flag (see bridge -h)", "--no-such-flag"),
		usageError("bad value", goodURL, `invalid value "many" for flag -prefetch`, "--prefetch=many"),
		usageError("out of range", goodURL, "--prefetch 0 is outside 1..65535", "--prefetch=0"),
		usageError("argument", goodURL, `unexpected argument "serve"`, "serve"),
		usageError("no url", "", "RABBITMQ_URL is not set"),
		usageError("http url", "RABBITMQ_URL=http://user:s3cret@127.0.0.1:15672/", `RABBITMQ_URL has scheme "http"`),
		usageError("no scheme", "RABBITMQ_URL=user:s3cret@127.0.0.1:5672", "RABBITMQ_URL has no scheme"),
		usageError("unparsable url", "RABBITMQ_URL=amqp://user:s3cret@127.0.0.1:port/", "RABBITMQ_URL is not a valid URI"),
	})
}
