package contract

import "testing"

func TestDeadLetterNames(t *testing.T) {
	if got := DeadLetterExchange("jobs"); got != "jobs.dlx" {
		t.Errorf("DeadLetterExchange = %q", got)
	}
	if got := DeadLetterQueue("jobs"); got != "jobs.dlq" {
		t.Errorf("DeadLetterQueue = %q", got)
	}
	if got := DeadLetterProgressQueue("jobs"); got != "jobs.dlq-progress" {
		t.Errorf("DeadLetterProgressQueue = %q", got)
	}
	for name, want := range map[string]struct {
		queue string
		ok    bool
	}{
		"jobs.dlq": {"jobs", true}, DeadLetterQueue("a.b"): {"a.b", true}, ".dlq": {"", false}, "jobs": {"", false},
	} {
		if queue, ok := QueueOfDeadLetterQueue(name); queue != want.queue && want.ok || ok != want.ok {
			t.Errorf("QueueOfDeadLetterQueue(%q) = %q, %v; want %q, %v", name, queue, ok, want.queue, want.ok)
		}
	}
}
