// Package browsertest locates the headless Chromium that browser tests drive (Debian's
// chromium, installed by hack/chromium.sh).
package browsertest

import (
	"os"
	"testing"

	"github.com/chromedp/chromedp"
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

// AllocatorOptions are the options every browser test starts Chromium with: headless, as root
// without a sandbox, a profile of its own in userDataDir, and no background traffic (this
// machine's network is closed, and Chromium's own connections would be refused many at a time).
func AllocatorOptions(browserPath, userDataDir string) []chromedp.ExecAllocatorOption {
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browserPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(userDataDir),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
}
