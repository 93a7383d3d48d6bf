package contract

import "strings"

// Suffixes of the broker objects named after a stream's queue.
const (
	deadLetterExchangeSuffix = ".dlx"
	deadLetterQueueSuffix    = ".dlq"
	deadLetterProgressSuffix = ".dlq-progress"
)

// DeadLetterExchange is the dead-letter exchange of queue: "<queue>.dlx" (fanout, so routing
// keys are kept).
func DeadLetterExchange(queue string) string { return queue + deadLetterExchangeSuffix }

// DeadLetterQueue is the dead-letter queue of queue: "<queue>.dlq".
func DeadLetterQueue(queue string) string { return queue + deadLetterQueueSuffix }

// DeadLetterProgressQueue is where the dead-letter leader of a stream queue records how far it
// dead-lettered (bridge/amqp/deadletter.go): "<queue>.dlq-progress". The bridges declare it,
// the operator deletes it with the stream.
func DeadLetterProgressQueue(queue string) string { return queue + deadLetterProgressSuffix }

// QueueOfDeadLetterQueue returns the queue whose dead-letter queue is name, and whether name
// is one ("jobs.dlq" → "jobs", true).
func QueueOfDeadLetterQueue(name string) (string, bool) {
	queue, ok := strings.CutSuffix(name, deadLetterQueueSuffix)
	return queue, ok && queue != ""
}
