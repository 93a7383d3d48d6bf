package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/internal/cli"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

func runInspect(_ context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("eventctl inspect", flag.ContinueOnError)
	queueDefault := getenv(contract.EnvEventsQueue)
	if queueDefault == "" {
		queueDefault = contract.DefaultQueue
	}
	queue := fs.String("queue", queueDefault, "queue to inspect (env RABBITMQ_EVENTS_QUEUE)")
	fs.Usage = usageFunc(fs, "eventctl inspect [flags]")
	if err := cli.Parse(fs, args, stdout, false); err != nil {
		return err
	}
	if err := cli.NoArgs(fs); err != nil {
		return err
	}
	if *queue == "" {
		return cli.Usagef("--queue must not be empty")
	}
	if err := checkRabbitMQURL(getenv); err != nil {
		return cli.Usage(err)
	}
	url := getenv(contract.EnvRabbitMQURL)
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	for _, name := range []string{*queue, contract.DeadLetterQueue(*queue)} {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			var amqpErr *amqp.Error
			if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
				fmt.Fprintf(stdout, "%s\tnot found\n", name)
				if ch, err = conn.Channel(); err != nil {
					return fmt.Errorf("open channel: %w", err)
				}
				continue
			}
			return fmt.Errorf("inspect queue %q: %w", name, err)
		}
		// Streams report 0 ready messages over AMQP 0-9-1; use the management UI for their size.
		fmt.Fprintf(stdout, "%s\tmessagesReady=%d\tconsumers=%d\n", name, q.Messages, q.Consumers)
	}
	return nil
}
