package apps

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/bench"
)

// tokenLifetime is the Next.js token route's token lifetime here: short, so that the page
// refreshes its token several times while a job runs.
const tokenLifetime = 5 * time.Second

// nextApp is examples/nextjs built once per run, in a copy outside the source tree.
type nextApp struct {
	dir        string
	bridgeAddr string // the bridge address compiled into the rewrite: tests start the bridge on it
}

var (
	buildOnce sync.Once
	built     *nextApp
	buildErr  string
)

// builtNextApp runs hack/node.sh (Node and the cached node_modules) and `next build` on the
// first call, with the run's secret in the environment so a leak into the bundle would show.
func builtNextApp(t *testing.T) *nextApp {
	t.Helper()
	buildOnce.Do(func() { built, buildErr = buildNextApp() })
	if buildErr != "" {
		requireTool(t, buildErr)
	}
	return built
}

func buildNextApp() (*nextApp, string) {
	if _, err := exec.LookPath("npm"); err != nil && os.Getenv("EVENTSTREAM_REQUIRE_INTEGRATION") != "1" {
		return nil, "npm not found: run hack/node.sh"
	}
	dir := filepath.Join(scratch, "nextjs")
	if err := copySources(filepath.Join(root, "examples", "nextjs"), dir); err != nil {
		return nil, "copy examples/nextjs: " + err.Error()
	}
	if out, err := exec.Command(filepath.Join(root, "hack", "node.sh"), dir).CombinedOutput(); err != nil {
		return nil, "hack/node.sh: " + err.Error() + ": " + string(out)
	}
	port, err := bench.FreePort()
	if err != nil {
		return nil, err.Error()
	}
	app := &nextApp{dir: dir, bridgeAddr: "127.0.0.1:" + strconv.Itoa(port)}
	build := exec.Command(filepath.Join(dir, "node_modules", ".bin", "next"), "build")
	build.Dir = dir
	build.Env = append(os.Environ(), "NEXT_TELEMETRY_DISABLED=1",
		"EVENTS_BRIDGE_URL=http://"+app.bridgeAddr, "EVENTS_JWT_SECRET="+jwtSecret)
	if out, err := build.CombinedOutput(); err != nil {
		return nil, "next build: " + err.Error() + ": " + string(out)
	}
	return app, ""
}

// requireTool fails the test under EVENTSTREAM_REQUIRE_INTEGRATION=1 (make test) and skips it
// otherwise, saying what is missing.
func requireTool(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("EVENTSTREAM_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// startNext runs `next start` on a free port with the token route's secret and returns the
// app's base URL once it answers.
func startNext(t *testing.T, app *nextApp) string {
	t.Helper()
	port, err := bench.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(app.dir, "node_modules", ".bin", "next"), "start", "--hostname", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Dir = app.dir
	cmd.Env = append(os.Environ(), "NEXT_TELEMETRY_DISABLED=1",
		"EVENTS_JWT_SECRET="+jwtSecret, "EVENTS_TOKEN_TTL_SECONDS="+strconv.Itoa(int(tokenLifetime.Seconds())))
	startProcess(t, "next start", cmd)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("next start: %s/ did not answer 200 within 60s (last error %v)", base, err)
		}
		time.Sleep(100 * time.Millisecond) // readiness poll, bounded by the deadline
	}
}

// copySources copies the app's sources from src to dst, without what npm and Next.js generate.
func copySources(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch d.Name() {
		case "node_modules", ".next", "next-env.d.ts":
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, strings.TrimPrefix(path, src))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
