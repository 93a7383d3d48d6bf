// Package apps proves the examples a team copies (examples/nextjs, examples/python) against a
// real bridge process and the real broker on this machine: a Celery worker and an aio-pika
// publisher publish, `next build` + `next start` serve the page, headless Chromium shows it.
package apps

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

var (
	// scratch holds what the run builds once (the bridge binary, the Next.js build).
	scratch string
	// jwtSecret is the run's HS256 secret shared by the bridge and the Next.js token route.
	jwtSecret string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if scratch, err = os.MkdirTemp("", "eventstream-apps-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(scratch)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	jwtSecret = hex.EncodeToString(secret)
	return m.Run()
}

// bridgeBinary builds cmd/bridge once per run.
func bridgeBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(scratch, "bridge")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	bin, err := clitest.Compile(scratch, clitest.BridgePackage, "")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
