package app

import (
	"github.com/eventstream-operator/eventstream-operator/internal/contract"

	"flag"
	"io"
	"strings"
	"testing"
)

func parse(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg := BindFlags(fs, func(k string) string { return env[k] })
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return cfg, cfg.Validate()
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	env := map[string]string{
		EnvURL: "amqp://u:p@h/", EnvExchange: "env.x", EnvQueue: "env.q",
		EnvBindingKey: "team.#", EnvPrefetch: "7",
	}
	cfg, err := parse(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Exchange != "env.x" || cfg.Queue != "env.q" || cfg.BindingKey != "team.#" || cfg.Prefetch != 7 || cfg.URL != "amqp://u:p@h/" {
		t.Fatalf("environment defaults not applied: %+v", cfg)
	}
	cfg, err = parse(t, env, "--exchange=flag.x", "--queue=flag.q", "--binding-key=a.*", "--prefetch=9")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Exchange != "flag.x" || cfg.Queue != "flag.q" || cfg.BindingKey != "a.*" || cfg.Prefetch != 9 {
		t.Fatalf("flags did not win: %+v", cfg)
	}
	cfg, _ = parse(t, map[string]string{EnvURL: "amqp://x/"})
	if cfg.Exchange != "events.topic" || cfg.Queue != "events.sse" || cfg.Prefetch != contract.DefaultPrefetch || cfg.Listen != ":8080" ||
		cfg.MetricsListen != ":9090" || cfg.Path != "/api/v1/events" || cfg.RoutingKeyTemplate != "team.{team_id}.job.{job_id}.status" ||
		cfg.MaxConnectionsPerSubject != 100 || cfg.MaxConnectionsPerSubject >= cfg.MaxConnectionsPerTenant {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestCredentialsHaveNoFlag(t *testing.T) {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	BindFlags(fs, func(string) string { return "" })
	fs.VisitAll(func(f *flag.Flag) {
		if strings.Contains(f.Name, "url") || strings.Contains(f.Name, "password") || strings.Contains(f.Name, "uri") {
			t.Errorf("flag --%s could carry credentials on the command line", f.Name)
		}
	})
}

func TestValidateNamesEveryProblem(t *testing.T) {
	_, err := parse(t, nil, "--queue-type=lazy", "--overflow=block", "--routing-key-template=a.{x}y",
		"--prefetch=0", "--path=events", "--log-format=xml", "--binding-key=a..b", "--heartbeat=0s",
		"--max-connections-per-subject=-1")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"RABBITMQ_URL is not set", `queue type "lazy"`, `overflow policy "block"`,
		"whole segment", "--prefetch 0", "--path", "--log-format", "binding key", "--heartbeat",
		"--max-connections-per-subject must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := parse(t, map[string]string{EnvURL: "amqp://x/"}, "--tenant-param=org_id"); err == nil || !strings.Contains(err.Error(), "org_id") {
		t.Errorf("tenant param outside the template: %v", err)
	}
}
