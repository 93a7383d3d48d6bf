package amqp

import (
	"fmt"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// QueueType is the RabbitMQ queue type the bridge consumes.
type QueueType string

const (
	Classic QueueType = "classic"
	Quorum  QueueType = "quorum"
	Stream  QueueType = "stream"
)

// ParseQueueType reads classic, quorum or stream.
func ParseQueueType(s string) (QueueType, error) {
	switch QueueType(s) {
	case Classic, Quorum, Stream:
		return QueueType(s), nil
	}
	return "", fmt.Errorf("queue type %q: want classic, quorum or stream", s)
}

// declareTopology declares what the operator normally owns, for running the bridge by hand
// and for tests: the topic exchange, a fanout dead-letter exchange with its "<queue>.dlq",
// the queue and its binding. Classic and quorum queues get x-dead-letter-exchange as a queue
// argument here (the operator uses a policy instead); streams cannot dead-letter, the bridge
// republishes to the DLX itself.
func declareTopology(ch *amqp091.Channel, cfg Config) error {
	if err := ch.ExchangeDeclare(cfg.Exchange, "topic", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", cfg.Exchange, err)
	}
	if err := ch.ExchangeDeclare(cfg.DeadLetterExchange, "fanout", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dead-letter exchange %q: %w", cfg.DeadLetterExchange, err)
	}
	dlq := contract.DeadLetterQueue(cfg.Queue)
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dead-letter queue %q: %w", dlq, err)
	}
	if err := ch.QueueBind(dlq, "#", cfg.DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind dead-letter queue %q: %w", dlq, err)
	}
	args := amqp091.Table{"x-queue-type": string(cfg.QueueType)}
	if cfg.QueueType != Stream {
		args["x-dead-letter-exchange"] = cfg.DeadLetterExchange
	}
	if _, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %q: %w", cfg.Queue, err)
	}
	key := cfg.BindingKey
	if key == "" {
		key = cfg.Template.BindingKey()
	}
	if err := ch.QueueBind(cfg.Queue, key, cfg.Exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %q to exchange %q with %q: %w", cfg.Queue, cfg.Exchange, key, err)
	}
	return nil
}
