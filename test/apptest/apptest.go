// Package apptest runs the examples a team copies (examples/nextjs, examples/python) for
// tests: `next build` and `next start`, a Celery worker and the aio-pika publisher, and a
// headless Chromium tab that reads what the Next.js page shows. test/apps uses it on the host;
// the e2e suite can use it against the local cluster.
package apptest

import (
	"os"
	"path/filepath"
	"runtime"
)

// T is the part of testing.TB (and of Ginkgo's GinkgoT()) this package uses.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	TempDir() string
}

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Missing fails the test under EVENTSTREAM_REQUIRE_INTEGRATION=1 (make test) and skips it
// otherwise, saying what is missing.
func Missing(t T, reason string) {
	t.Helper()
	if os.Getenv("EVENTSTREAM_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}
