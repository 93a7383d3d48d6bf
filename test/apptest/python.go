package apptest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// DebianPython is the interpreter whose packages hold python3-celery, python3-aio-pika and
// python3-kombu (a python3 earlier on PATH, e.g. pyenv's, does not see them).
const DebianPython = "/usr/bin/python3"

// PythonEnv returns the environment the Python examples read (RABBITMQ_URL,
// RABBITMQ_EVENTS_EXCHANGE), after checking that Debian's packages are importable.
func PythonEnv(t T, amqpURI, exchange string) []string {
	t.Helper()
	if out, err := exec.Command(DebianPython, "-c", "import celery, aio_pika, kombu").CombinedOutput(); err != nil {
		Missing(t, "Debian's python3-celery, python3-aio-pika, python3-kombu are missing (run hack/python.sh): "+string(out))
	}
	return append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1",
		"RABBITMQ_URL="+amqpURI, "RABBITMQ_EVENTS_EXCHANGE="+exchange)
}

// PythonCommand runs Debian's python3 in examples/python with env.
func PythonCommand(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(DebianPython, args...)
	cmd.Dir = filepath.Join(Root(), "examples", "python")
	cmd.Env = env
	return cmd
}

// StartCeleryWorker runs the example's Celery worker on taskQueue (one solo process) until the
// test ends.
func StartCeleryWorker(t T, env []string, taskQueue string) {
	t.Helper()
	StartProcess(t, "celery worker", PythonCommand(env, "-m", "celery", "-A", "tasks", "worker",
		"--pool=solo", "--queues="+taskQueue, "--without-gossip", "--without-mingle", "--loglevel=INFO"))
}

// SubmitJob sends tasks.process_job(team, job, steps, stepSeconds) to taskQueue with
// `celery call`. Celery declares a direct exchange named like the queue.
func SubmitJob(t T, env []string, taskQueue, team, job string, steps int, stepSeconds float64) {
	t.Helper()
	args, _ := json.Marshal([]any{team, job, steps, stepSeconds})
	cmd := PythonCommand(env, "-m", "celery", "-A", "tasks", "call", "tasks.process_job", "--args="+string(args), "--queue="+taskQueue)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("celery call: %v\n%s", err, out)
	}
}

// PublishWithAioPika runs the example's aio-pika publisher for one event; it succeeds only
// when the broker confirmed the event and routed it to a queue.
func PublishWithAioPika(t T, env []string, team, job, status string, progress int, message string) {
	t.Helper()
	cmd := PythonCommand(env, "publisher.py", team, job, status, strconv.Itoa(progress), message)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("publisher.py %s %s %s: %v\n%s", team, job, status, err, out)
	}
}

// PublishWithCelery publishes one event with the Celery example's publish_status, as its task
// does, and returns the interpreter's combined output and error.
func PublishWithCelery(env []string, team, job, status string, progress int, message string) ([]byte, error) {
	args, _ := json.Marshal([]any{team, job, status, progress, message})
	return PythonCommand(env, "-c", "import json, sys, tasks; tasks.publish_status(*json.loads(sys.argv[1]))", string(args)).CombinedOutput()
}
