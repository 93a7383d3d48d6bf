package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	amqp "github.com/rabbitmq/amqp091-go"
)

func runInspect(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eventctl inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	queueDefault := getenv("RABBITMQ_EVENTS_QUEUE")
	if queueDefault == "" {
		queueDefault = "events.sse"
	}
	queue := fs.String("queue", queueDefault, "queue to inspect (env RABBITMQ_EVENTS_QUEUE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	url := getenv("RABBITMQ_URL")
	if url == "" {
		return errors.New("RABBITMQ_URL is not set")
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	for _, name := range []string{*queue, *queue + ".dlq"} {
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
