package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

// eventctlBinary builds cmd/eventctl with a version of its own and returns the binary and the
// version.
func eventctlBinary(t *testing.T) (bin, version string) {
	t.Helper()
	version = clitest.Version()
	return clitest.Build(t, "github.com/eventstream-operator/eventstream-operator/cmd/eventctl", version), version
}

// TestCommandLine runs the built eventctl: --version prints the version injected at build,
// help exits 0 on stdout, and every bad command line exits 2 with a message on stderr before
// anything connects (port 1 of RABBITMQ_URL refuses connections: a check done after
// connecting would show up as "connection refused" instead of the expected message).
func TestCommandLine(t *testing.T) {
	bin, version := eventctlBinary(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("k", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("too-short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broker := []string{"RABBITMQ_URL=amqp://user:s3cret@127.0.0.1:1/"}
	usageError := func(name string, env []string, want string, args ...string) clitest.Case {
		return clitest.Case{Name: name, Args: args, Env: env, Exit: 2, Stderr: []string{"eventctl: ", want},
			EmptyStdout: true, NotInStderr: []string{"s3cret", "connection refused", "Usage of"}}
	}
	help := func(name string, want string, args ...string) clitest.Case {
		return clitest.Case{Name: name, Args: args, Exit: 0, Stdout: []string{want}}
	}
	clitest.RunCases(t, bin, []clitest.Case{
		{Name: "version", Args: []string{"--version"}, Exit: 0, Stdout: []string{version + "\n"}},
		help("help", `"eventctl --version"`, "-h"),
		help("long help", "token     mint", "--help"),
		help("publish help", "-progress", "publish", "-h"),
		help("tail help", "usage: eventctl tail [flags] URL", "tail", "--help"),
		help("inspect help", "-queue", "inspect", "-h"),
		help("token help", "-secret-file", "token", "-h"),
		{Name: "no command", Exit: 2, Stderr: []string{"usage: eventctl", "eventctl: no command"}, EmptyStdout: true},
		usageError("unknown command", nil, `unknown command "pubish"`, "pubish"),

		usageError("publish progress", broker, "--progress 500 is outside 0..100", "publish", "--team", "42", "--job", "7", "--progress", "500"),
		usageError("publish team", broker, `--team: value "4.2" contains '.'`, "publish", "--team", "4.2", "--job", "7"),
		usageError("publish no job", broker, "--job: value is empty", "publish", "--team", "42"),
		usageError("publish count", broker, "--count 0: want at least 1", "publish", "--team", "42", "--job", "7", "--count", "0"),
		usageError("publish retry attempts", broker, "--retry-attempts 0", "publish", "--team", "42", "--job", "7", "--retry-attempts", "0"),
		usageError("publish rate", broker, "--rate -5", "publish", "--team", "42", "--job", "7", "--rate", "-5"),
		usageError("publish template", broker, "--routing-key-template", "publish", "--team", "42", "--job", "7", "--routing-key-template", "a.{x}y"),
		usageError("publish ca file", broker, "--amqp-ca-file", "publish", "--team", "42", "--job", "7", "--amqp-ca-file", "/nonexistent/ca.pem"),
		usageError("publish bad flag value", broker, `invalid value "half" for flag -progress`, "publish", "--progress", "half"),
		usageError("publish argument", broker, `unexpected argument "now"`, "publish", "--team", "42", "--job", "7", "now"),
		usageError("publish no url", nil, "RABBITMQ_URL is not set", "publish", "--team", "42", "--job", "7"),
		usageError("publish http url", []string{"RABBITMQ_URL=http://user:s3cret@127.0.0.1:1/"}, `RABBITMQ_URL has scheme "http"`, "publish", "--team", "42", "--job", "7"),
		usageError("inspect no url", nil, "RABBITMQ_URL is not set", "inspect"),
		usageError("inspect argument", broker, `unexpected argument "events.sse"`, "inspect", "events.sse"),

		usageError("tail no url", nil, "tail needs exactly one URL, got 0", "tail"),
		usageError("tail two urls", nil, "tail needs exactly one URL, got 2", "tail", "http://a/", "http://b/"),
		usageError("tail no scheme", nil, `URL scheme "localhost" is not http or https`, "tail", "localhost:8080/api/v1/events?team_id=42"),
		usageError("tail path only", nil, "URL has no scheme", "tail", "/api/v1/events"),
		usageError("tail other scheme", nil, `URL scheme "ws" is not http or https`, "tail", "ws://127.0.0.1:1/api/v1/events"),
		usageError("tail unparsable", nil, "URL is malformed", "tail", "http://[::1/api/v1/events?access_token=s3cret"),
		usageError("tail no host", nil, "URL has no host", "tail", "http:///api/v1/events"),
		usageError("tail retry", nil, "--retry 0s must be positive", "tail", "--retry=0s", "http://127.0.0.1:1/"),
		usageError("tail max reconnects", nil, "--max-reconnects -2", "tail", "--max-reconnects=-2", "http://127.0.0.1:1/"),
		usageError("tail token", []string{"EVENTCTL_TOKEN=a.b\nc"}, "EVENTCTL_TOKEN contains a control character", "tail", "http://127.0.0.1:1/"),
		usageError("tail header", nil, `--header "Authorization Bearer x"`, "tail", "--header", "Authorization Bearer x", "http://127.0.0.1:1/"),

		usageError("token no secret", nil, "--secret-file is required", "token", "--team", "42"),
		usageError("token no team", nil, "--team is required", "token", "--secret-file", secret),
		usageError("token bad team", nil, `--team: value "42.*" contains`, "token", "--secret-file", secret, "--team", "42.*"),
		usageError("token empty team", nil, "empty value in list", "token", "--secret-file", secret, "--team", "42,"),
		usageError("token ttl", nil, "--ttl 0s must be positive", "token", "--secret-file", secret, "--team", "42", "--ttl", "0"),
		usageError("token claim", nil, `--tenants-claim "sub" is a registered or scope claim`, "token", "--secret-file", secret, "--team", "42", "--tenants-claim", "sub"),
		usageError("token missing file", nil, "read secret: open /nonexistent/secret", "token", "--secret-file", "/nonexistent/secret", "--team", "42"),
		usageError("token short secret", nil, "shorter than 32 bytes", "token", "--secret-file", short, "--team", "42"),
		usageError("token empty stdin", nil, "HS256 secret in --secret-file - (stdin): empty", "token", "--secret-file", "-", "--team", "42"),
		usageError("token argument", nil, `unexpected argument "42"`, "token", "--secret-file", secret, "42"),
	})
}
