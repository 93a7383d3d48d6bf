package apps

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// debianPython is the interpreter whose packages hold python3-celery, python3-aio-pika and
// python3-kombu (a python3 earlier on PATH, e.g. pyenv's, does not see them).
const debianPython = "/usr/bin/python3"

// pythonExamples returns the environment the examples read (RABBITMQ_URL,
// RABBITMQ_EVENTS_EXCHANGE), after checking that Debian's packages are importable.
func pythonExamples(t *testing.T, amqpURI, exchange string) []string {
	t.Helper()
	if out, err := exec.Command(debianPython, "-c", "import celery, aio_pika, kombu").CombinedOutput(); err != nil {
		requireTool(t, "Debian's python3-celery, python3-aio-pika, python3-kombu are missing (hack/test.sh installs them): "+string(out))
	}
	return append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1",
		"RABBITMQ_URL="+amqpURI, "RABBITMQ_EVENTS_EXCHANGE="+exchange)
}

func pythonCommand(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(debianPython, args...)
	cmd.Dir = filepath.Join(root, "examples", "python")
	cmd.Env = env
	return cmd
}

// startCeleryWorker runs the example's Celery worker on taskQueue (one solo process).
func startCeleryWorker(t *testing.T, env []string, taskQueue string) {
	t.Helper()
	startProcess(t, "celery worker", pythonCommand(env, "-m", "celery", "-A", "tasks", "worker",
		"--pool=solo", "--queues="+taskQueue, "--without-gossip", "--without-mingle", "--loglevel=INFO"))
}

// submitJob sends tasks.process_job(team, job, steps, stepSeconds) to taskQueue with `celery call`.
func submitJob(t *testing.T, env []string, taskQueue, team, job string, steps int, stepSeconds float64) {
	t.Helper()
	args, _ := json.Marshal([]any{team, job, steps, stepSeconds})
	cmd := pythonCommand(env, "-m", "celery", "-A", "tasks", "call", "tasks.process_job", "--args="+string(args), "--queue="+taskQueue)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("celery call: %v\n%s", err, out)
	}
}

// publishWithAioPika runs the example's aio-pika publisher for one event; it succeeds only
// when the broker confirmed the event and routed it to a queue.
func publishWithAioPika(t *testing.T, env []string, team, job, status string, progress int, message string) {
	t.Helper()
	cmd := pythonCommand(env, "publisher.py", team, job, status, strconv.Itoa(progress), message)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("publisher.py %s %s %s: %v\n%s", team, job, status, err, out)
	}
}
