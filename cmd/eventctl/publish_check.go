package main

import (
	"errors"
	"flag"
	"fmt"
	"math"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/internal/cli"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// checkPublishFlags checks the parsed publish command line and RABBITMQ_URL before anything
// connects, so that a typo is reported as such (exit 2) and not as a broker error. It names
// every problem it finds.
func checkPublishFlags(fs *flag.FlagSet, f publishFlags, getenv func(string) string) error {
	if err := cli.NoArgs(fs); err != nil {
		return err
	}
	var errs []error
	if err := checkRabbitMQURL(getenv); err != nil {
		errs = append(errs, err)
	}
	if f.exchange == "" {
		errs = append(errs, errors.New("--exchange must not be empty"))
	}
	tmpl, err := events.ParseTemplate(f.template)
	if err != nil {
		errs = append(errs, fmt.Errorf("--routing-key-template: %w", err))
	}
	if f.progress < 0 || f.progress > 100 {
		errs = append(errs, fmt.Errorf("--progress %d is outside 0..100", f.progress))
	}
	if f.retry.Attempts < 1 || f.retry.InitialBackoff <= 0 || f.retry.MaxBackoff <= 0 {
		errs = append(errs, fmt.Errorf("--retry-attempts %d, --retry-backoff %v, --retry-max-backoff %v: want at least 1 attempt and positive pauses",
			f.retry.Attempts, f.retry.InitialBackoff, f.retry.MaxBackoff))
	}
	if f.count < 1 {
		errs = append(errs, fmt.Errorf("--count %d: want at least 1", f.count))
	}
	if math.IsNaN(f.rate) || math.IsInf(f.rate, 0) || f.rate < 0 {
		errs = append(errs, fmt.Errorf("--rate %v: want events per second, 0 or more (0: as fast as confirms allow)", f.rate))
	}
	if f.caFile != "" {
		if _, err := loadCA(f.caFile); err != nil {
			errs = append(errs, err)
		}
	}
	if !f.stdin {
		for _, field := range []struct{ flag, value string }{{"--team", f.team}, {"--job", f.job}} {
			if err := events.ValidSegmentValue(field.value); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field.flag, err))
			}
		}
		if f.evType == "" {
			errs = append(errs, errors.New("--type must not be empty"))
		}
		if tmpl != nil && len(errs) == 0 {
			ev := events.Event{Type: f.evType, TeamID: f.team, JobID: f.job, Status: f.status}
			if _, err := ev.RoutingKey(tmpl); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return cli.Usage(errors.Join(errs...))
}

// checkRabbitMQURL checks RABBITMQ_URL, where the AMQP URI with credentials comes from; the
// error never repeats the URI.
func checkRabbitMQURL(getenv func(string) string) error {
	url := getenv(contract.EnvRabbitMQURL)
	if url == "" {
		return errors.New("RABBITMQ_URL is not set (the AMQP URI with credentials comes only from the environment)")
	}
	if err := events.ValidateAMQPURI(url); err != nil {
		return fmt.Errorf("RABBITMQ_URL %w", err)
	}
	return nil
}
