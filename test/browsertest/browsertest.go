// Package browsertest locates the headless Chromium that browser tests drive (Debian's
// chromium, installed by hack/chromium.sh).
package browsertest

import (
	"os"
	"testing"
)

// Chromium returns $CHROMIUM or /usr/bin/chromium. When it is missing the test is skipped
// with a reason, or fails under EVENTSTREAM_REQUIRE_INTEGRATION=1 (make test).
func Chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("EVENTSTREAM_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("Chromium not found at %s: run hack/chromium.sh", path)
		}
		t.Skipf("Chromium not found at %s: run hack/chromium.sh or set CHROMIUM", path)
	}
	return path
}
