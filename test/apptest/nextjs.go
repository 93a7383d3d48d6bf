package apptest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BuildNextApp copies examples/nextjs's sources to dir, installs its node_modules with
// hack/node.sh (Node from Debian, npm ci cached by lockfile) and runs `next build` with
// bridgeURL as the rewrite target (compiled into the build) and env added to the environment.
func BuildNextApp(dir, bridgeURL string, env ...string) error {
	if err := copySources(filepath.Join(Root(), "examples", "nextjs"), dir); err != nil {
		return fmt.Errorf("copy examples/nextjs: %w", err)
	}
	if out, err := exec.Command(filepath.Join(Root(), "hack", "node.sh"), dir).CombinedOutput(); err != nil {
		return fmt.Errorf("hack/node.sh: %w: %s", err, out)
	}
	build := exec.Command(filepath.Join(dir, "node_modules", ".bin", "next"), "build")
	build.Dir = dir
	build.Env = append(append(os.Environ(), "NEXT_TELEMETRY_DISABLED=1", "EVENTS_BRIDGE_URL="+bridgeURL), env...)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("next build: %w: %s", err, out)
	}
	return nil
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

// StartNext runs `next start` of the app built in dir on a free loopback port with env added
// to the environment (EVENTS_JWT_SECRET, EVENTS_TOKEN_TTL_SECONDS), and returns its base URL
// once it answers.
func StartNext(t T, dir string, env ...string) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "node_modules", ".bin", "next"), "start", "--hostname", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "NEXT_TELEMETRY_DISABLED=1"), env...)
	StartProcess(t, "next start", cmd)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("next start: %s/ did not answer 200 within 60s (last: %v)", base, err)
		}
		time.Sleep(100 * time.Millisecond) // readiness poll, bounded by the deadline
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
