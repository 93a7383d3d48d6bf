package apps

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/apptest"
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
	buildErr  error
)

// builtNextApp builds the app on the first call, with the run's secret in the environment of
// `next build` so that a leak into the client bundle would show.
func builtNextApp(t *testing.T) *nextApp {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		apptest.Missing(t, "Node.js not found: run hack/node.sh")
	}
	buildOnce.Do(func() {
		port, err := bench.FreePort()
		if err != nil {
			buildErr = err
			return
		}
		app := &nextApp{dir: filepath.Join(scratch, "nextjs"), bridgeAddr: "127.0.0.1:" + strconv.Itoa(port)}
		if buildErr = apptest.BuildNextApp(app.dir, "http://"+app.bridgeAddr, "EVENTS_JWT_SECRET="+jwtSecret); buildErr == nil {
			built = app
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// startNext runs `next start` with the token route's secret and token lifetime.
func startNext(t *testing.T, app *nextApp, lifetime time.Duration) string {
	t.Helper()
	return apptest.StartNext(t, app.dir, "EVENTS_JWT_SECRET="+jwtSecret,
		"EVENTS_TOKEN_TTL_SECONDS="+strconv.Itoa(int(lifetime.Seconds())))
}
